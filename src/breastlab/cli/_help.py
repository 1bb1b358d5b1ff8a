"""Help text in the usual Unix form, for every command.

Typer's rich help shows ``<bool>`` after every flag, ``<str>`` for free text and
``{name}`` / ``[name]...`` for arguments. Flags take no value, so they get no type; fixed
choices (``Literal[...]``) are listed; arguments read ``NAME`` / ``[NAME]...``. Typer has
no setting for this, hence the small override of two display methods.
"""
from __future__ import annotations

from typing import Any


def install() -> None:
    """Patch Typer's help display once (idempotent)."""
    from typer import core

    if getattr(core, "_breastlab_help", False):
        return
    option_display = core.TyperOption.display_type_rich

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) or getattr(self, "is_bool_flag", False):
            return None
        text = option_display(self, ctx)
        if text in ("<str>", "<text>"):
            return "TEXT"
        if isinstance(text, str) and text.startswith("<") and text.endswith(">") and "|" in text:
            return "[" + text[1:-1] + "]"
        return text

    def usage_name(self: Any) -> str:
        name = str(self.display_name_raw).upper()
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    core.TyperOption.display_type_rich = display_type_rich
    if hasattr(core.TyperArgument, "_usage_display_name"):
        core.TyperArgument._usage_display_name = usage_name
    core._breastlab_help = True
