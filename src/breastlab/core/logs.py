"""Logging is the one channel for what a command says (not its results, which go to stdout
or files): one console handler on the ``breastlab`` logger, installed by the CLI for the
command it runs, and the run log (``training.runlog.RunLog``) while a training run is open.

Warnings and errors reach stderr as ``breastlab COMMAND: warning: ...``; ``BREASTLAB_DEBUG=1``
shows INFO and DEBUG too.
"""
from __future__ import annotations

import logging
import os

CONSOLE_HANDLER = "breastlab-console"


class _ConsoleFormatter(logging.Formatter):
    def __init__(self, command: str) -> None:
        super().__init__()
        self.command = command

    def format(self, record: logging.LogRecord) -> str:
        from breastlab.core.progress import terminal_safe

        level = record.levelname.lower()
        return terminal_safe(f"{self.command}: {level}: {record.getMessage()}")


def setup_logging(command: str = "breastlab") -> logging.Handler:
    """Send ``breastlab`` warnings (INFO with ``BREASTLAB_DEBUG``) to stderr, prefixed with
    ``command``; replaces an earlier console handler (idempotent). Returns the handler."""
    from breastlab.core.progress import console

    logger = logging.getLogger("breastlab")
    for h in list(logger.handlers):
        if getattr(h, "name", "") == CONSOLE_HANDLER:
            logger.removeHandler(h)
    handler = _RichStderr(console)
    handler.name = CONSOLE_HANDLER
    handler.setFormatter(_ConsoleFormatter(command))
    debug = bool(os.environ.get("BREASTLAB_DEBUG"))
    handler.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.addHandler(handler)
    if debug:
        logger.setLevel(logging.DEBUG)
    return handler


class _RichStderr(logging.Handler):
    """Lines through the shared Rich console (stderr), so they print above progress bars."""

    def __init__(self, console) -> None:  # noqa: ANN001
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from rich.text import Text

            self.console.print(Text(self.format(record)), soft_wrap=True)
        except Exception:  # noqa: BLE001 - logging never raises
            self.handleError(record)
