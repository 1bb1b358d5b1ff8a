"""Layouts of the converted tree: ``bids``, ``nnunet``, ``odelia`` (see docs/export.md)."""
from __future__ import annotations

LAYOUTS = ("bids", "nnunet", "odelia")


def get_layout(name: str):
    """The layout module for ``name`` (each has ``plan(sets, **options)`` and ``write(results, writer, **options)``)."""
    if name == "bids":
        from breastlab.convert.layouts import bids as mod
    elif name == "nnunet":
        from breastlab.convert.layouts import nnunet as mod
    elif name == "odelia":
        from breastlab.convert.layouts import odelia as mod
    else:
        raise ValueError(f"unknown layout {name!r}; choose one of {', '.join(LAYOUTS)}")
    return mod
