"""``--export DIR2``: files arranged as ``DIR2/<study>/<label>[_b<value>]/<file>``.

* ``<study>`` is a pseudonym (``study-`` + 10 hex digits of SHA-256 of the
  StudyInstanceUID): never the patient name or ID.
* When several image sets of one study would share a folder, each gets a
  suffix: ``_p<phase>`` for DCE sets, otherwise ``_s<series>`` (plus ``-<set>``
  when one series holds several).
* Files are hard-linked (``mode="link"``, falling back to a copy when linking
  fails, e.g. across file systems) or copied (``mode="copy"``). Each file is
  written under a temporary name and renamed, so a folder never holds a
  half-written file. Inputs are never written to. An enhanced multi-frame file
  whose frames fall in several image sets appears in each of their folders.
* Note: a hard link *is* the input file. Do not edit exported files in place;
  use ``--copy`` if you will.
"""
from __future__ import annotations

import os
import shutil
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from breastlab.mri.classify import LabelledSet

MODES = ("link", "copy")


def folder_name(ls: LabelledSet) -> str:
    return ls.label + (f"_b{ls.b_value:g}" if ls.b_value is not None else "")


def plan_folders(sets: Sequence[LabelledSet]) -> dict[str, str]:
    """set_id → relative folder ``<study>/<label>[_b<value>][suffix]``."""
    by_folder: dict[tuple[str, str], list[LabelledSet]] = defaultdict(list)
    for ls in sets:
        by_folder[(ls.study, folder_name(ls))].append(ls)
    plan: dict[str, str] = {}
    for (study, base), members in by_folder.items():
        if len(members) == 1:
            plan[members[0].set_id] = f"{study}/{base}"
            continue
        multi = {ls.image_set.series_uid for ls in members if ls.image_set.n_sets_in_series > 1}
        for ls in members:
            st = ls.image_set
            if ls.summary.dce_phase is not None and ls.label.startswith("DCE"):
                suffix = f"_p{ls.summary.dce_phase}"
            else:
                suffix = f"_s{st.series_number if st.series_number is not None else 'x'}"
                if st.series_uid in multi:
                    suffix += f"-{st.index}"
            plan[ls.set_id] = f"{study}/{base}{suffix}"
    # a DCE phase suffix can still collide across two dynamic acquisitions: make unique
    seen: dict[str, int] = {}
    for set_id, folder in sorted(plan.items()):
        if folder in seen:
            seen[folder] += 1
            plan[set_id] = f"{folder}-{seen[folder]}"
        else:
            seen[folder] = 1
    return plan


def _place(src: str, dest: Path, mode: str) -> str:
    """Link or copy ``src`` to ``dest`` atomically; returns 'link', 'copy' or 'exists'."""
    if dest.exists():
        try:
            if os.path.samefile(src, dest):
                return "exists"
        except OSError:
            pass
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    if tmp.exists():
        tmp.unlink()
    how = "copy"
    if mode == "link":
        try:
            os.link(src, tmp)
            how = "link"
        except OSError:
            how = "copy"
    if how == "copy":
        shutil.copy2(src, tmp)
    os.replace(tmp, dest)
    return how


def export_sets(
    sets: Sequence[LabelledSet],
    export_dir: str | Path,
    *,
    mode: str = "link",
    protected: Sequence[str | Path] = (),
) -> tuple[dict[tuple[str, str], str], dict[str, int]]:
    """Place every image set's files; returns ((set_id, source path) → exported path, counts).

    ``protected`` are input paths that must never be a destination.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    root = Path(export_dir).resolve()
    inputs = {os.path.realpath(p) for ls in sets for p in (r.path for r in ls.image_set.records)}
    inputs |= {os.path.realpath(p) for p in protected}
    plan = plan_folders(sets)
    placed: dict[tuple[str, str], str] = {}
    counts = {"link": 0, "copy": 0, "exists": 0}
    for ls in sets:
        folder = root / plan[ls.set_id]
        folder.mkdir(parents=True, exist_ok=True)
        names: dict[str, str] = {}  # file name → source already placed here
        for r in ls.image_set.records:
            if (ls.set_id, r.path) in placed:
                continue  # another frame of the same file
            name = Path(r.path).name
            stem, suffix = os.path.splitext(name)
            n = 1
            while name in names and names[name] != r.path:
                n += 1
                name = f"{stem}_{n}{suffix}"
            names[name] = r.path
            dest = folder / name
            if os.path.realpath(dest) in inputs:
                raise ValueError(f"export would overwrite an input file: {dest}")
            counts[_place(r.path, dest, mode)] += 1
            placed[(ls.set_id, r.path)] = str(dest)
    return placed, counts
