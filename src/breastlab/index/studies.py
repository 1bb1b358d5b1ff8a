"""Per-study reuse of output rows: re-runs that cost what changed.

A sort into an ``--out`` that already holds a sort stores, beside its header index, each
study's output rows (series.csv/series.json and instances.csv rows) keyed by the study's
*fingerprint*: a digest of the identities of its kept rows (path, size, mtime, ctime,
inode, frame; :meth:`breastlab.index.view._IndexView.study_fingerprints`) and of the
sorter's settings and code (:func:`settings_key`). On the next run a study whose
fingerprint is unchanged is not read back, grouped or labelled: its rows are copied.
New, changed or removed studies are sorted again; the outputs equal a full run's.

The rows live in ``OUT/index/_studies.parquet`` (listed with its SHA-256 in the index
manifest, so a planted or edited file is ignored), in study order, so the previous rows
are read in one streaming pass (memory: one batch of studies).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

STUDIES_NAME = "_studies.parquet"
#: per study: its series.csv rows (JSON), and its instances.csv rows as the CSV text written (UTF-8 bytes,
#: surrogate escapes kept: a path that is not UTF-8 comes back byte for byte)
SCHEMA = pa.schema([("study_key", pa.string()), ("fingerprint", pa.string()),
                    ("series", pa.string()), ("instances", pa.binary())])
SETTINGS_KEY = b"breastlab.study_settings"
ROWS_FORMAT = "rows/2"  # instances as CSV text (rows/1: JSON)
_FLUSH_BYTES = 4 << 20  # text buffered before a row group is written (memory: about this much)


def settings_key(b_threshold: float, keep_phi: bool) -> str:
    """The sorter's settings and version: the package version and a digest of the sorting code."""
    import breastlab
    from breastlab import mri

    digest = hashlib.sha256()
    folder = Path(mri.__file__).parent
    for path in sorted(folder.glob("*.py")) + [folder.parent / "dicom" / "records.py",
                                               folder.parent / "core" / "labels.py"]:
        with open(path, "rb") as fh:
            digest.update(path.name.encode() + b"\0" + fh.read())
    from breastlab.core.csvcells import verbatim

    return (f"{breastlab.__version__};{digest.hexdigest()[:16]};b={b_threshold!r};phi={keep_phi};"
            f"verbatim={verbatim()};{ROWS_FORMAT}")


class PreviousStudies:
    """The previous run's study rows (verified), read in study order."""

    def __init__(self, path: Path | None, settings: str) -> None:
        self.fingerprints: dict[str, str] = {}
        self._path = path
        self._rows: Iterator[tuple[str, str, str]] | None = None
        self._current: tuple[str, str, str] | None = None
        if path is None:
            return
        try:
            meta = pq.read_schema(path).metadata or {}
            if meta.get(SETTINGS_KEY) != settings.encode():
                self._path = None
                return
            cols = pq.read_table(path, columns=["study_key", "fingerprint"])
            self.fingerprints = dict(zip(cols.column(0).to_pylist(), cols.column(1).to_pylist()))
        except Exception:  # noqa: BLE001 - unreadable: nothing is reused, everything is sorted
            self._path, self.fingerprints = None, {}

    def hits(self, current: dict[str, str]) -> set[str]:
        """Studies whose fingerprint is unchanged."""
        return {key for key, fp in current.items() if self.fingerprints.get(key) == fp}

    def _stream(self) -> Iterator[tuple[str, str, str]]:
        pf = pq.ParquetFile(self._path)
        for batch in pf.iter_batches(batch_size=64, columns=["study_key", "series", "instances"]):
            yield from zip(*(batch.column(i).to_pylist() for i in range(3)))

    def rows(self, key: str) -> tuple[str, str]:
        """(series JSON, instances CSV text) of ``key``; keys must be asked in increasing order."""
        if self._rows is None:
            self._rows = self._stream()
        while self._current is None or self._current[0] < key:
            self._current = next(self._rows)
        if self._current[0] != key:
            raise KeyError(key)
        return self._current[1], self._current[2].decode("utf-8", "surrogateescape")


class StudyWriter:
    """This run's study rows, written in study order into ``path`` (then published with the index)."""

    def __init__(self, path: Path, settings: str) -> None:
        self.path = path
        self._writer = pq.ParquetWriter(path, SCHEMA.with_metadata({SETTINGS_KEY: settings.encode()}),
                                        compression="zstd")
        self._buffer: list[tuple[str, str, str, str]] = []
        self._bytes = 0

    def add(self, key: str, fingerprint: str, series: str | list[dict[str, Any]], instances: str) -> None:
        """One study's rows: series.csv rows (JSON text or dicts), instances.csv text as written."""
        if not isinstance(series, str):
            series = json.dumps(series, default=str)
        self._buffer.append((key, fingerprint, series, instances.encode("utf-8", "surrogateescape")))
        self._bytes += len(series) + len(instances)
        if self._bytes >= _FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            cols = list(zip(*self._buffer))
            self._writer.write_table(pa.Table.from_arrays([pa.array(c, t) for c, t in zip(cols, SCHEMA.types)],
                                                          schema=SCHEMA))
            self._buffer, self._bytes = [], 0

    def close(self) -> None:
        self._flush()
        self._writer.close()
        with open(self.path, "rb") as fh:
            os.fsync(fh.fileno())

    def abort(self) -> None:
        self._writer.close()
        self.path.unlink(missing_ok=True)
