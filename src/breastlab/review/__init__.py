"""Reviewing a sort: the review page, the truth table and the sorter's agreement with it (torch-free)."""
