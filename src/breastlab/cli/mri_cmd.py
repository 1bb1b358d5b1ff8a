"""CLI: (not yet built)."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to app (filled in by the feature that owns it)."""
