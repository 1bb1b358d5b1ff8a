"""Case assembly: one row per case, one column per view, from DICOM, a manifest, or class folders.

Three kinds of input (see ``docs/cases.md``):

* **DICOM** files or folders: read with :func:`breastlab.dicom.scan.scan_paths`; the view
  of each image comes from :func:`~breastlab.multiview.views.view_from_record`; images are
  grouped into cases by (PatientID, StudyInstanceUID) (``group_by="study"``), by PatientID
  (``"patient"``) or by folder (``"folder"``). Labels come from a labels CSV.
* A **manifest** CSV: one row per image with a path and (any of) case id, patient id, view,
  laterality, label. Relative paths are resolved against the manifest's folder.
* **Image folders** without a manifest: the top folder name is the class
  (``busi/benign/*.png`` → label 0). With a one-view set each image is a case; with a
  multi-view set the images of one folder are one case and their views come from file names.

Output: :class:`CaseTable`, written as ``cases.csv`` (``case_id, patient_id, label`` then one
path column per view) plus ``cases_problems.csv`` listing every problem with a reason.
Identifiers are pseudonymised (short salted SHA-256) unless ``keep_phi``.

The table and its file: ``multiview.case_table``; the sources: ``multiview.case_sources``
(both re-exported here, the public entry point).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from breastlab.core.vocab import DuplicatePolicy, MissingPolicy
from breastlab.multiview.case_sources import (
    Item,
    LabelEntry,
    drop_pixel_duplicates,
    expand_inputs,
    items_from_dicom,
    items_from_images,
    items_from_manifest,
    read_labels,
)
from breastlab.multiview.case_table import (
    BASE_COLUMNS,
    BREAST_LABEL_COLUMNS,
    DUPLICATE_POLICIES,
    GROUP_BY,
    INFO_COLUMNS,
    MISSING_POLICIES,
    NON_VIEW_COLUMNS,
    PROBLEM_COLUMNS,
    Case,
    CaseAssemblyError,
    CaseTable,
    Problem,
    parse_label,
    parse_label_map,
    problems_path,
    pseudonym,
    read_cases,
    write_cases,
)
from breastlab.multiview.views import View, ViewSet, resolve_view_set

__all__ = ["BASE_COLUMNS", "BREAST_LABEL_COLUMNS", "Case", "CaseAssemblyError", "CaseTable",
           "DUPLICATE_POLICIES", "GROUP_BY", "INFO_COLUMNS", "MISSING_POLICIES",
           "NON_VIEW_COLUMNS", "PROBLEM_COLUMNS", "Problem", "assemble_cases", "parse_label",
           "parse_label_map", "problems_path", "pseudonym", "read_cases", "write_cases"]


# --------------------------------------------------------------------------- assembly

def assemble_cases(
    inputs: Sequence[str | Path] | str | Path = (),
    *,
    view_set: str | Sequence[str] | ViewSet | None = None,
    manifest: str | Path | None = None,
    labels: str | Path | None = "auto",
    label_map: Mapping[str, Any] | None = None,
    missing: MissingPolicy | str = MissingPolicy.ERROR,
    duplicates: DuplicatePolicy | str = DuplicatePolicy.ERROR,
    group_by: str = "study",
    keep_phi: bool = False,
    salt: str = "",
    workers: int | None = None,
    progress: bool = False,
) -> CaseTable:
    """Assemble cases from DICOM, a manifest, or image folders (module docstring).

    ``missing``: ``error`` (raise :class:`CaseAssemblyError`), ``drop`` (leave the case out),
    ``duplicate-contralateral`` (copy the other breast's same projection; drop when that is
    missing too) or ``blank`` (empty path: the loader feeds a blank image).
    ``duplicates`` (two files for one view of one case): ``error``, ``first`` (keep the first
    by path) or ``drop`` (leave the case out). ``labels``: a CSV (id column + label) matched
    against case ids, PatientIDs, StudyInstanceUIDs, manifest case ids or case folder names;
    ``"auto"`` uses ``labels.csv`` at the top of a single input folder when present.
    Every problem is in ``table.problems``; with ``error`` policies the exception carries it.

    Example:
        One-view images in class folders (the BUSI form): each image is a case.

        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp()) / "us"
        >>> for cls in ("benign", "malignant"):
        ...     (root / cls).mkdir(parents=True)
        ...     Image.new("L", (8, 8)).save(root / cls / f"{cls}_1.png")
        >>> table = assemble_cases(root, view_set="single")
        >>> table.columns, sorted(table.label_counts().items())
        (['case_id', 'patient_id', 'label', 'image'], [(0, 1), (1, 1)])
    """
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {', '.join(MISSING_POLICIES)}, not {missing!r}")
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates must be one of {', '.join(DUPLICATE_POLICIES)}, not {duplicates!r}")
    if group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)}, not {group_by!r}")
    vs = resolve_view_set(view_set)
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    input_paths = [Path(p) for p in inputs]
    problems: list[Problem] = []

    if manifest is not None:
        roots = [p if p.is_dir() else p.parent for p in input_paths]
        items = items_from_manifest(Path(manifest), roots, vs, label_map, problems)
    else:
        if not input_paths:
            raise ValueError("no inputs: give DICOM/image folders or a manifest")
        images, others = expand_inputs(input_paths)
        for p in others:
            if not p.exists():
                problems.append(Problem("missing-file", "input not found", path=str(p)))
        others = [p for p in others if p.exists()]
        items = items_from_images(images, vs, label_map, problems)
        items += items_from_dicom(others, vs, group_by, workers, progress, problems)

    drop_pixel_duplicates(items, problems)
    label_table: dict[str, LabelEntry] | None = None
    if labels == "auto":
        labels = None
        if manifest is None and len(input_paths) == 1 and (input_paths[0] / "labels.csv").is_file():
            labels = input_paths[0] / "labels.csv"
    if labels is not None:
        label_table = read_labels(Path(labels), label_map)

    table, fatal = _build(items, vs, problems, missing=missing, duplicates=duplicates,
                          keep_phi=keep_phi, salt=salt, label_table=label_table)
    if fatal:
        shown = "\n".join(f"  - {line}" for line in fatal[:12])
        more = f"\n  ... and {len(fatal) - 12} more" if len(fatal) > 12 else ""
        raise CaseAssemblyError(
            f"{len(fatal)} case problem(s) under missing={missing!r}, duplicates={duplicates!r}:\n"
            f"{shown}{more}\nChoose a policy (--missing drop|duplicate-contralateral|blank, "
            "--duplicates first|drop) or fix the inputs; see docs/cases.md.",
            table,
        )
    return table


def _build(items: list[Item], vs: ViewSet, problems: list[Problem], *, missing: str,
           duplicates: str, keep_phi: bool, salt: str,
           label_table: dict[str, LabelEntry] | None) -> tuple[CaseTable, list[str]]:
    groups: dict[tuple, list[Item]] = defaultdict(list)
    for item in items:
        groups[item.group].append(item)

    fatal: list[str] = []
    cases: list[Case] = []
    sources: Counter = Counter()
    used_ids: dict[str, tuple] = {}
    display_count: Counter = Counter(g[0].display for g in groups.values())
    display_seen: Counter = Counter()

    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        group = sorted(groups[key], key=lambda it: it.path)
        first = group[0]
        if keep_phi:
            display_seen[first.display] += 1
            case_id = first.display or "case"
            if display_count[first.display] > 1:
                case_id = f"{case_id}_{display_seen[first.display]}"
            patient_id = first.patient
        else:
            case_id = pseudonym(*key, prefix="C", salt=salt)
            patient_id = pseudonym(first.patient, prefix="P", salt=salt)
        if case_id in used_ids and used_ids[case_id] != key:  # pragma: no cover - 48-bit clash
            case_id = pseudonym(*key, prefix="C", salt=salt, length=24)
        used_ids[case_id] = key

        # exact duplicate instances (same SOPInstanceUID in two files)
        by_uid: dict[str, Item] = {}
        kept: list[Item] = []
        for it in group:
            if it.uid and it.uid in by_uid:
                problems.append(Problem("duplicate-instance",
                                        f"same SOPInstanceUID as {by_uid[it.uid].path}; ignored",
                                        path=it.path, case_id=case_id))
                continue
            if it.uid:
                by_uid[it.uid] = it
            kept.append(it)

        slots: dict[str, list[Item]] = defaultdict(list)
        odd: list[Item] = []
        for it in kept:
            if it.slot is None:
                odd.append(it)
                if it.view is not None:
                    problems.append(Problem("view-not-in-set",
                                            f"view {it.view.name} is not in the view set "
                                            f"({','.join(vs.views)}); ignored",
                                            path=it.path, case_id=case_id, view=it.view.name))
                else:
                    problems.append(Problem("unparseable-view", it.note or "no recognisable view",
                                            path=it.path, case_id=case_id))
            else:
                slots[it.slot].append(it)
        if not slots:
            problems.append(Problem("no-usable-view", f"{len(kept)} file(s), none in the view set; "
                                    "no case made", case_id=case_id, path=first.path))
            continue

        drop = False
        paths: dict[str, str | None] = {}
        for slot, its in slots.items():
            if len(its) > 1:
                names = " and ".join(i.path for i in its[:3])
                if duplicates == "error":
                    fatal.append(f"case {case_id}: {len(its)} files for {slot}: {names}")
                    problems.append(Problem("duplicate-view", f"{len(its)} files for {slot}: {names}",
                                            path=its[1].path, case_id=case_id, view=slot))
                elif duplicates == "drop":
                    drop = True
                    problems.append(Problem("duplicate-view",
                                            f"{len(its)} files for {slot}: {names}; case dropped",
                                            path=its[1].path, case_id=case_id, view=slot))
                else:
                    for extra in its[1:]:
                        problems.append(Problem("duplicate-view",
                                                f"kept {its[0].path}, ignored this file",
                                                path=extra.path, case_id=case_id, view=slot))
            paths[slot] = its[0].path
            sources[its[0].source] += 1

        filled: dict[str, str] = {}
        absent = [v for v in vs.views if v not in paths]
        if absent:
            have = ", ".join(v for v in vs.views if v in paths)
            odd_note = (f"; {len(odd)} file(s) in this case had no usable view, e.g. {odd[0].path}"
                        if odd else "")
            for v in absent:
                if missing == "error":
                    fatal.append(f"case {case_id}: missing {v} (has {have}){odd_note}")
                    problems.append(Problem("missing-view", f"missing {v} (has {have}){odd_note}",
                                            case_id=case_id, view=v, path=first.path))
                elif missing == "drop":
                    drop = True
                    problems.append(Problem("missing-view", f"missing {v} (has {have}); case dropped",
                                            case_id=case_id, view=v, path=first.path))
                elif missing == "blank":
                    filled[v] = "blank"
                    problems.append(Problem("missing-view", f"missing {v} (has {have}); left blank",
                                            case_id=case_id, view=v, path=first.path))
                else:  # duplicate-contralateral
                    other = View.from_name(v).contralateral().name
                    if paths.get(other):
                        filled[v] = f"contralateral:{other}"
                        problems.append(Problem("missing-view",
                                                f"missing {v}; filled with {other} (contralateral copy)",
                                                case_id=case_id, view=v, path=paths[other] or ""))
                    else:
                        drop = True
                        problems.append(Problem("missing-view",
                                                f"missing {v} and its contralateral {other}; case dropped",
                                                case_id=case_id, view=v, path=first.path))
            for v, how in filled.items():
                paths[v] = paths[how.split(":", 1)[1]] if how.startswith("contralateral:") else None
        if drop:
            continue

        # labels: per breast where the images name one, the exam label is the worst breast
        labels_found = {it.label for it in group if it.label is not None}
        label: Any = None
        breast_labels: dict[str, Any] = {}
        if "drop" in labels_found:
            problems.append(Problem("excluded-label",
                                    f"label {first.label_raw!r} is mapped to drop; case left out",
                                    case_id=case_id, path=first.path))
            continue
        by_side: dict[str, set] = defaultdict(set)
        for it in group:
            if it.label is not None and it.view is not None and not vs.any_image:
                by_side[it.view.laterality].add(it.label)
        if len(labels_found) > 1 and by_side and all(len(v) == 1 for v in by_side.values()):
            breast_labels = {side: next(iter(v)) for side, v in by_side.items()}
            label = max(breast_labels.values())
        elif len(labels_found) > 1:
            problems.append(Problem("label-conflict",
                                    f"files of this case carry labels {sorted(labels_found)}; label left empty",
                                    case_id=case_id, path=first.path))
        elif labels_found:
            label = labels_found.pop()
            if by_side:
                breast_labels = {side: label for side in by_side}
        if label_table is not None:
            keys = [case_id, *(k for it in group for k in it.keys)]
            match = next((k for k in keys if k in label_table), None)
            if match is None:
                problems.append(Problem("no-label", "case not found in the labels file",
                                        case_id=case_id, path=first.path))
            else:
                entry = label_table[match]
                label = entry.label
                if label == "drop" or "drop" in entry.breasts.values():
                    problems.append(Problem("excluded-label", "labels file maps this case to drop",
                                            case_id=case_id, path=first.path))
                    continue
                breast_labels = dict(entry.breasts)
        elif label is None and any(it.label_raw for it in group):
            raw = next(it.label_raw for it in group if it.label_raw)
            problems.append(Problem("unknown-label",
                                    f"label {raw!r} is neither malignant nor benign; left empty "
                                    "(use a label map, e.g. --label-map normal=0)",
                                    case_id=case_id, path=first.path))
        if vs.any_image:
            breast_labels = {}
        makers = sorted({it.manufacturer for it in group if it.manufacturer})
        case = Case(case_id, patient_id, label, {v: paths.get(v) for v in vs.views}, filled,
                    breast_labels={k_: int(v) for k_, v in breast_labels.items()},
                    convention=first.convention, manufacturer="/".join(makers))
        cases.append(case)

    return CaseTable(vs, cases, problems, sources), fatal
