"""The truth table: a reviewer's label per image set, the one reader and writer of it.

A truth table is a CSV with one row per reviewed image set (``TRUTH_COLUMNS``): the
set id of the sort it was made from, the series and SOP Instance UIDs (or the frame
range of a multi-frame file) that say which images it covers in any later sort, the
reviewer's label, what the sorter said, whether the reviewer confirmed or corrected it,
and a note. It holds no patient name or ID and no file path. ``review.html`` exports it;
``breastlab sort --truth`` and ``breastlab mri train --truth`` read it.

Matching a truth row to a set of a (possibly newer) sort (:func:`match_truth`): the same
set id in the same series; else the set of that series sharing most SOP Instance UIDs
(and frames); else the only set of that series. Rows that match nothing are reported,
never guessed.

Example:
    >>> rows = [TruthRow("study-ab_s3_0", "1.2.3", (("1.2.3.4", None),), Label.T2WI)]
    >>> sets = [{"set_id": "study-ab_s3_0", "series_uid": "1.2.3", "label": "T1"}]
    >>> match_truth(rows, sets, {}).pairs
    [('study-ab_s3_0', <Label.T2WI: 'T2WI'>, 'T1')]
"""
from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from breastlab.core import atomic
from breastlab.core.errors import UsageError
from breastlab.core.labels import LABELS, Label

TRUTH_COLUMNS = (
    "set_id", "study", "series_uid", "series_number", "image_set", "sop_instance_uids", "frames",
    "label", "sorter_label", "status", "note",
)
#: images of a set: (SOP Instance UID, frame index or None)
Images = tuple[tuple[str, int | None], ...]


class TruthTableError(UsageError):
    """A truth table cannot be read (one-line message naming the file and line)."""


@dataclass(frozen=True)
class TruthRow:
    """One reviewed image set."""

    set_id: str
    series_uid: str
    images: Images
    label: Label
    sorter_label: str = ""
    status: str = ""  # confirmed | corrected
    note: str = ""
    study: str = ""
    series_number: str = ""
    image_set: str = ""

    @property
    def sop_uids(self) -> set[str]:
        return {uid for uid, _ in self.images}


def parse_label(value: str) -> Label | None:
    """The label spelled ``value`` (exact, then case-insensitive), or ``None``."""
    v = (value or "").strip()
    if v in {str(x) for x in LABELS}:
        return Label(v)
    return next((x for x in LABELS if str(x).lower() == v.lower()), None)


def _frames_text(frames: Sequence[int]) -> str:
    """Frame indices as ranges: ``0-3 7``."""
    out, run = [], []
    for f in sorted(set(frames)):
        if run and f == run[-1] + 1:
            run.append(f)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [f]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return " ".join(out)


def _parse_frames(text: str) -> list[int]:
    frames: list[int] = []
    for part in (text or "").split():
        lo, _, hi = part.partition("-")
        frames.extend(range(int(lo), int(hi or lo) + 1))
    return frames


def encode_images(images: Images) -> tuple[str, str]:
    """``(sop_instance_uids, frames)`` cells: distinct UIDs in order, space-separated; frames as ranges.

    Frames are written when the set is frames of one multi-frame file (one UID).
    """
    uids = list(dict.fromkeys(uid for uid, _ in images if uid))
    frames = [f for _, f in images if f is not None]
    return " ".join(uids), (_frames_text(frames) if len(uids) == 1 and frames else "")


def decode_images(uids: str, frames: str) -> Images:
    """The inverse of :func:`encode_images`."""
    uid_list = (uids or "").split()
    frame_list = _parse_frames(frames)
    if len(uid_list) == 1 and frame_list:
        return tuple((uid_list[0], f) for f in frame_list)
    return tuple((u, None) for u in uid_list)


def read_truth(path: str | os.PathLike) -> list[TruthRow]:
    """Read a truth table; raises :class:`TruthTableError` (one line) when it cannot be used."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [(h or "").strip() for h in (reader.fieldnames or [])]
            if "label" not in header or not ({"set_id", "series_uid"} & set(header)):
                raise TruthTableError(f"{path}: not a truth table (needs a label column and set_id or "
                                      f"series_uid; found {', '.join(header) or 'no header'})")
            rows = []
            for line, raw in enumerate(reader, start=2):
                row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if isinstance(v, str)}
                if not any(row.values()):
                    continue
                label = parse_label(row.get("label", ""))
                if label is None:
                    raise TruthTableError(f"{path} line {line}: {row.get('label', '')!r} is not a label "
                                          f"(one of {', '.join(LABELS)})")
                if not row.get("set_id") and not row.get("series_uid"):
                    raise TruthTableError(f"{path} line {line}: neither set_id nor series_uid")
                try:
                    images = decode_images(row.get("sop_instance_uids", ""), row.get("frames", ""))
                except ValueError:
                    raise TruthTableError(f"{path} line {line}: frames {row.get('frames')!r} is not a "
                                          "list of ranges like '0-3 7'") from None
                rows.append(TruthRow(
                    set_id=row.get("set_id", ""), series_uid=row.get("series_uid", ""), images=images,
                    label=label, sorter_label=row.get("sorter_label", ""), status=row.get("status", ""),
                    note=row.get("note", ""), study=row.get("study", ""),
                    series_number=row.get("series_number", ""), image_set=row.get("image_set", ""),
                ))
    except UnicodeDecodeError as exc:
        raise TruthTableError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    except csv.Error as exc:
        raise TruthTableError(f"{path}: not a CSV file ({exc})") from None
    except OSError as exc:
        raise TruthTableError(f"{path}: {exc.strerror or exc}") from None
    return rows


def truth_record(row: TruthRow) -> dict[str, str]:
    """One CSV row of the table (``TRUTH_COLUMNS``)."""
    uids, frames = encode_images(row.images)
    return {"set_id": row.set_id, "study": row.study, "series_uid": row.series_uid,
            "series_number": row.series_number, "image_set": row.image_set, "sop_instance_uids": uids,
            "frames": frames, "label": str(row.label), "sorter_label": row.sorter_label, "status": row.status,
            "note": row.note}


def write_truth(path: str | os.PathLike, rows: Iterable[TruthRow]) -> Path:
    """Write a truth table atomically (the same columns and cells the page exports)."""
    return atomic.write_csv(Path(path), (truth_record(r) for r in rows), TRUTH_COLUMNS)


@dataclass
class TruthMatch:
    """Truth rows matched to the sets of a sort: ``pairs`` (set id, truth label, sorter label)."""

    pairs: list[tuple[str, Label, str]] = field(default_factory=list)
    unmatched: list[tuple[TruthRow, str]] = field(default_factory=list)  # row, why

    def by_set(self) -> dict[str, Label]:
        return {set_id: label for set_id, label, _ in self.pairs}


def match_truth(rows: Sequence[TruthRow], sets: Sequence[Mapping[str, object]],
                images: Mapping[str, Images]) -> TruthMatch:
    """Match truth rows to series rows of a sort (``set_id``, ``series_uid``, ``label``).

    ``images`` maps a set id to its (SOP Instance UID, frame) pairs (from instances.csv);
    see the module docstring for the order of the rules. A set matched twice keeps the
    first row; the later ones are reported as unmatched.
    """
    by_id = {str(s["set_id"]): s for s in sets}
    by_series: dict[str, list[Mapping[str, object]]] = {}
    for s in sets:
        by_series.setdefault(str(s.get("series_uid") or ""), []).append(s)
    out = TruthMatch()
    taken: set[str] = set()
    for row in rows:
        hit = by_id.get(row.set_id) if row.set_id else None
        if hit is not None and row.series_uid and str(hit.get("series_uid")) != row.series_uid:
            hit = None
        if hit is None and row.series_uid in by_series:
            candidates = by_series[row.series_uid]
            if row.images:
                wanted = set(row.images)
                overlap = [(len(wanted & set(images.get(str(s["set_id"]), ()))), s) for s in candidates]
                best = max(overlap, key=lambda t: t[0])
                hit = best[1] if best[0] else None
            elif len(candidates) == 1:
                hit = candidates[0]
        if hit is None:
            why = "series not in this sort" if row.series_uid not in by_series else "no set shares its images"
            out.unmatched.append((row, why))
            continue
        set_id = str(hit["set_id"])
        if set_id in taken:
            out.unmatched.append((row, f"set {set_id} already has a truth row"))
            continue
        taken.add(set_id)
        out.pairs.append((set_id, row.label, str(hit.get("label") or "")))
    return out
