"""Rich progress bars shared by every long-running command (``Reporter``: one per command),
and text made safe for a terminal."""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def make_progress(*, transient: bool = False, disable: bool = False) -> Progress:
    """A progress bar writing to stderr (stdout stays clean for tables and CSV)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=disable,
    )


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(value: object, max_len: int | None = None) -> str:
    """``value`` as text that cannot drive a terminal.

    C0/C1 control characters (ESC, BEL, CR, ...; escape sequences lose their ESC and
    print as plain text), bidirectional overrides and zero-width characters become
    ``?``; surrogate escapes (bytes of a file name that are not UTF-8) are shown as
    ``\\xNN``. Header text and paths are passed through this before they are printed.
    Rich markup is not interpreted by callers that print the result as ``Text``.
    """
    text = value if isinstance(value, str) else str(value)
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    text = _CONTROL.sub("?", text)
    text = "".join("?" if unicodedata.category(ch) == "Cs" else ch for ch in text) if not text.isascii() else text
    if max_len is not None and len(text) > max_len:
        text = text[: max_len - 1] + "…"
    return text


# --------------------------------------------------------------------------- the reporter
class Reporter:
    """The one progress reporter of a command: Rich bars on stderr when ``enabled``.

    A command sets it once (``with reporting(enabled):``, from its ``--progress`` /
    ``-q`` flag); the code doing the work asks ``reporter()`` for bars instead of taking a
    ``progress`` argument. Outside a command, bars show when stderr is a terminal.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = bool(enabled)

    def bars(self, *, transient: bool = False) -> Progress | None:
        """A started-on-demand progress display, or ``None`` when reporting is off."""
        return make_progress(transient=transient) if self.enabled else None


_CURRENT: ContextVar[Reporter | None] = ContextVar("breastlab_reporter", default=None)


def reporter() -> Reporter:
    """The reporter of the running command (default: bars when stderr is a terminal)."""
    current = _CURRENT.get()
    return current if current is not None else Reporter(console.is_terminal)


@contextmanager
def reporting(enabled: bool) -> Iterator[Reporter]:
    """Make a reporter the current one for the work inside the block."""
    token = _CURRENT.set(Reporter(enabled))
    try:
        yield _CURRENT.get()  # type: ignore[misc]
    finally:
        _CURRENT.reset(token)
