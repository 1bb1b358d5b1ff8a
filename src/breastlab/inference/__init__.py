"""Applying a saved diagnosis model to new cases: predictions, decisions and heat maps."""
