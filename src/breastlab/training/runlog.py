"""What a training run says while it runs: ``train.log`` (plain lines), ``train_log.jsonl``
(one JSON object per event) in the run folder, and plain lines on stdout when stdout is not
a terminal (a batch job, ``| tee``, a notebook), where progress bars would show nothing.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from breastlab.core import rundir


class RunLog:
    """Append-only run log; use as a context manager (files are closed on exit)."""

    def __init__(self, run_dir: str | Path, *, echo: bool | None = None,
                 stream: TextIO | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.stream = stream or sys.stdout
        # a terminal shows progress bars; anything else gets plain lines
        self.echo = (not _isatty(self.stream)) if echo is None else echo
        self._text: TextIO | None = None
        self._json: TextIO | None = None

    def __enter__(self) -> RunLog:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._text = open(self.run_dir / rundir.TRAIN_LOG, "a", encoding="utf-8")
        self._json = open(self.run_dir / rundir.TRAIN_EVENTS, "a", encoding="utf-8")
        return self

    def __exit__(self, *exc: Any) -> None:
        for fh in (self._text, self._json):
            if fh is not None:
                fh.close()
        self._text = self._json = None

    def event(self, kind: str, message: str, **fields: Any) -> None:
        """One event: a line in train.log (and on stdout when not a terminal), a JSON line."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        line = f"{stamp} {message}"
        if self._text is not None:
            self._text.write(line + "\n")
            self._text.flush()
        if self._json is not None:
            self._json.write(json.dumps({"time": stamp, "event": kind, **fields},
                                        default=_jsonable) + "\n")
            self._json.flush()
        if self.echo:
            print(message, file=self.stream, flush=True)
        elif kind == "warning":  # warnings are shown even beside progress bars or with -q
            print(message, file=sys.stderr, flush=True)

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
