"""What a training run says while it runs, as a ``logging`` handler: ``train.log`` (plain
lines) and ``train_log.jsonl`` (one JSON object per event) in the run folder, and plain
lines on stdout when stdout is not a terminal (a batch job, ``| tee``, a notebook), where
progress bars would show nothing.

Logging is the one channel: while a run is open, every ``breastlab`` logger's records at
INFO and above (the run's events, and any library warning such as a skipped case) go to
``train.log``; warnings reach the terminal through the command's console handler
(``core.logs``) or, in the Python API, Python's last-resort handler on stderr.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from breastlab.core import rundir

#: the logger of run events (``RunLog.event``); a child of ``breastlab``
RUN_LOGGER = "breastlab.run"


class RunLog(logging.Handler):
    """Append-only run log; use as a context manager (attached to the ``breastlab`` logger
    and files closed on exit)."""

    def __init__(self, run_dir: str | Path, *, echo: bool | None = None,
                 stream: TextIO | None = None) -> None:
        super().__init__(logging.INFO)
        self.run_dir = Path(run_dir)
        self.stream = stream or sys.stdout
        # a terminal shows progress bars; anything else gets plain lines
        self.echo = (not _isatty(self.stream)) if echo is None else echo
        self._text: TextIO | None = None
        self._json: TextIO | None = None
        self._logger = logging.getLogger("breastlab")
        self._level = self._logger.level

    def __enter__(self) -> RunLog:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._text = open(self.run_dir / rundir.TRAIN_LOG, "a", encoding="utf-8")
        self._json = open(self.run_dir / rundir.TRAIN_EVENTS, "a", encoding="utf-8")
        self._logger.addHandler(self)
        if self._logger.getEffectiveLevel() > logging.INFO:  # the run's events are INFO
            self._logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)
        for fh in (self._text, self._json):
            if fh is not None:
                fh.close()
        self._text = self._json = None

    def event(self, kind: str, message: str, **fields: Any) -> None:
        """One event of the run (``start``, ``model``, ``epoch``, ``warning``, ``end``),
        logged on ``breastlab.run``: warnings at WARNING, the rest at INFO."""
        level = logging.WARNING if kind == "warning" else logging.INFO
        logging.getLogger(RUN_LOGGER).log(level, message, extra={"event": kind,
                                                                 "fields": fields})

    def emit(self, record: logging.LogRecord) -> None:
        """A line in train.log (and on stdout when not a terminal), a JSON line."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string never stops training
            message = str(record.msg)
        kind = getattr(record, "event", None) or (
            "warning" if record.levelno >= logging.WARNING else "info")
        fields = dict(getattr(record, "fields", None) or {})
        line = message
        if record.levelno >= logging.WARNING:
            fields.setdefault("text", message)
            line = f"warning: {message}"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        if self._text is not None:
            self._text.write(f"{stamp} {line}\n")
            self._text.flush()
        if self._json is not None:
            self._json.write(json.dumps({"time": stamp, "event": kind, **fields},
                                        default=_jsonable) + "\n")
            self._json.flush()
        if record.levelno < logging.WARNING:
            if self.echo:
                print(message, file=self.stream, flush=True)
        elif not _console_handler():  # the Python API: warnings still reach the terminal
            print(line, file=sys.stderr, flush=True)


    def epoch(self, what: str, row: dict[str, Any]) -> None:
        """A per-epoch line: ``resnet18 repeat 1 epoch 3/30 loss 0.61 val AUC 0.72 ...``."""
        def f(key: str) -> str:
            v = row.get(key)
            return "n/a" if v is None or v != v else f"{v:.3f}"
        message = (f"{what} epoch {int(row['epoch']) + 1}/{row.get('epochs', '?')} "
                   f"train loss {f('train_loss')} acc {f('train_acc')} | val loss {f('val_loss')} "
                   f"acc {f('val_acc')} AUC {f('val_auc')} | {row.get('seconds', 0):.1f} s"
                   + (" *best" if row.get("best") else ""))
        self.event("epoch", message, model=what, **row)


def _console_handler() -> bool:
    """A command's console handler (``core.logs``) shows warnings already."""
    from breastlab.core.logs import CONSOLE_HANDLER

    return any(getattr(h, "name", "") == CONSOLE_HANDLER
               for lg in (logging.getLogger("breastlab"), logging.getLogger())
               for h in lg.handlers)


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _jsonable(x: Any) -> Any:
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)
