"""``--export DIR2``: files arranged as ``DIR2/<study>/<label>[_b<value>]/<file>``.

* ``<study>`` is a pseudonym (``study-`` + 10 hex digits of SHA-256 of the
  StudyInstanceUID): never the patient name or ID.
* When several image sets of one study would share a folder, each gets a
  suffix: ``_p<phase>`` for DCE sets, otherwise ``_s<series>`` (plus ``-<set>``
  when one series holds several).
* Files are hard-linked (``mode="link"``, falling back to a copy when linking
  fails, e.g. across file systems) or copied (``mode="copy"``); a symbolic link
  among the inputs is resolved, so its target is placed. The whole export is
  built in a staging folder and published in one step
  (:func:`breastlab.core.publish.staged_outputs`), so it is never half-written.
  Names longer than 255 bytes are shortened (extension kept). Inputs are never written to. An enhanced multi-frame file
  whose frames fall in several image sets appears in each of their folders.
* Note: a hard link *is* the input file. Do not edit exported files in place;
  use ``--copy`` if you will.
"""
from __future__ import annotations

import contextlib
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


#: longest file name (bytes) most file systems accept
NAME_MAX = 255


def safe_name(name: str, suffix_room: int = 0) -> str:
    """``name`` shortened (keeping its extension) so that its bytes, plus ``suffix_room``, fit NAME_MAX.

    Names that are not valid UTF-8 keep their bytes (surrogate escapes); ``.``, ``..``
    and empty names become ``file``.
    """
    if name in ("", ".", "..") or "/" in name:
        name = "file"
    stem, ext = os.path.splitext(name)
    if len(os.fsencode(ext)) > 32:
        stem, ext = name, ""
    limit = NAME_MAX - suffix_room - len(os.fsencode(ext))
    raw = os.fsencode(stem)
    if len(raw) > limit:
        stem = os.fsdecode(raw[:limit])
        while len(os.fsencode(stem)) > limit:  # a cut inside a multi-byte character
            stem = stem[:-1]
    return stem + ext


def _place(src: str, dest: Path, mode: str) -> str:
    """Link or copy the file behind ``src`` (symbolic links resolved) to ``dest``.

    Returns 'link', 'copy' or 'exists' (``dest`` already is that file). In a fresh
    staging folder (see ``export_sets``) ``dest`` is new and written directly; an
    existing ``dest`` is replaced through a short temporary name and a rename.
    """
    real = os.path.realpath(src)
    if os.path.lexists(dest):
        try:
            if os.path.samefile(real, dest):
                return "exists"
        except OSError:
            pass
        target = dest.with_name(f".{os.getpid()}-{os.urandom(4).hex()}.tmp")
    else:
        target = dest
    how = "copy"
    try:
        if mode == "link":
            try:
                os.link(real, target, follow_symlinks=False)
                how = "link"
            except OSError:
                pass
        if how == "copy":
            shutil.copy2(real, target)
        if target != dest:
            os.replace(target, dest)
    except BaseException:
        if target != dest:
            with contextlib.suppress(OSError):
                os.unlink(target)
        raise
    return how


def export_sets(
    sets: Sequence[LabelledSet],
    export_dir: str | Path,
    *,
    mode: str = "link",
    protected: Sequence[str | Path] = (),
    publish_as: str | Path | None = None,
) -> tuple[dict[tuple[str, str], str], dict[str, int]]:
    """Place every image set's files; returns ((set_id, source path) → exported path, counts).

    ``export_dir`` should be a fresh staging folder (``breastlab.core.publish``);
    ``publish_as`` is the folder it will be published as, used for the returned paths.
    ``protected`` are input paths that must never be a destination.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    root = Path(export_dir).resolve()
    final = Path(os.path.abspath(publish_as)) if publish_as is not None else root
    inputs = {os.path.realpath(p) for ls in sets for p in (r.path for r in ls.image_set.records)}
    inputs |= {os.path.realpath(p) for p in protected}
    plan = plan_folders(sets)
    placed: dict[tuple[str, str], str] = {}
    counts = {"link": 0, "copy": 0, "exists": 0}
    for ls in sets:
        rel = plan[ls.set_id]
        folder = root / rel
        folder.mkdir(parents=True, exist_ok=True)
        names: dict[str, str] = {}  # file name → source already placed here
        for r in ls.image_set.records:
            if (ls.set_id, r.path) in placed:
                continue  # another frame of the same file
            name = safe_name(Path(r.path).name)
            stem, suffix = os.path.splitext(name)
            n = 1
            while name in names and names[name] != r.path:
                n += 1
                name = safe_name(f"{stem}_{n}{suffix}")
                if name in names:  # shortening ate the counter: shorten more
                    name = safe_name(stem, len(f"_{n}{suffix}")) + f"_{n}{suffix}"
            names[name] = r.path
            dest = folder / name
            if os.path.realpath(dest) in inputs:
                raise ValueError(f"export would overwrite an input file: {dest}")
            counts[_place(r.path, dest, mode)] += 1
            placed[(ls.set_id, r.path)] = str(final / rel / name)
    return placed, counts
