"""``sort_exam``: scan → group into image sets → label → write outputs → export.

>>> result = sort_exam(["/data/exam"], out_dir="sorted")        # doctest: +SKIP
>>> [(s.set_id, s.label, s.b_value) for s in result.sets]      # doctest: +SKIP
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from breastlab.dicom.records import InstanceRecord, SkippedFile
from breastlab.mri.classify import LabelledSet, classify_image_sets
from breastlab.mri.diffusion import DEFAULT_B_THRESHOLD
from breastlab.mri.grouping import group_image_sets


@dataclass
class SortResult:
    sets: list[LabelledSet]
    skipped: list[SkippedFile]
    n_records: int
    out_dir: Path | None = None
    export_dir: Path | None = None
    outputs: dict[str, Path] = field(default_factory=dict)
    export_counts: dict[str, int] = field(default_factory=dict)
    # filled by image-model fusion (breastlab.seriesmodels.fusion.fuse_result)
    fusion: dict[str, Any] = field(default_factory=dict)
    image_rows: list[dict[str, Any]] = field(default_factory=list)
    image_instances: list[dict[str, Any]] = field(default_factory=list)
    image_columns: dict[str, dict[str, Any]] = field(default_factory=dict)

    def labels(self) -> list[str]:
        return [s.label for s in self.sets]

    def by_label(self, label: str) -> list[LabelledSet]:
        return [s for s in self.sets if s.label == label]

    def rows(self, *, keep_phi: bool = False) -> list[dict[str, Any]]:
        from breastlab.mri.outputs import series_row

        return [series_row(s, keep_phi=keep_phi) for s in self.sets]


def sort_records(
    records: Sequence[InstanceRecord],
    *,
    b_threshold: float = DEFAULT_B_THRESHOLD,
) -> list[LabelledSet]:
    """The pure part: records → labelled image sets (no files touched)."""
    return classify_image_sets(group_image_sets(records), b_threshold=b_threshold)


def check_paths(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike | None,
    export_dir: str | os.PathLike | None = None,
) -> None:
    """Raise ``ValueError`` (one line) unless inputs, ``out_dir`` and ``export_dir`` can work together.

    Nothing is written. Checked: every input exists; each output folder can be
    published (:func:`breastlab.core.publish.check_target`: not a file, not a folder
    breastlab did not write, a writable parent, not under /proc, /sys or /dev);
    no output folder is, holds or lies inside an input folder; ``--out`` and
    ``--export`` are neither the same folder nor one inside the other.
    """
    from breastlab.core.publish import OutputError, check_target

    resolved_inputs = []
    for p in inputs:
        text = os.fspath(p)
        path = text[1:] if text.startswith("@") else text
        if not os.path.lexists(path):
            raise ValueError(f"no such file or folder: {path}")
        resolved_inputs.append(Path(os.path.realpath(path)))
    outs = [(name, Path(os.path.realpath(d))) for name, d in (("--out", out_dir), ("--export", export_dir))
            if d is not None]
    for name, real in outs:
        if any(real == v or Path(v) in real.parents for v in VIRTUAL_ROOTS):
            raise ValueError(f"{name} {real} is on a virtual file system")
        try:
            check_target(real, LEGACY_OUTPUTS if name == "--out" else ())
        except OutputError as exc:
            raise ValueError(f"{name}: {exc}") from None
        for src in resolved_inputs:
            if real == src or src in real.parents and src.is_dir():
                raise ValueError(f"{name} {real} must not be inside the input folder {src}")
            if real in src.parents:
                raise ValueError(f"{name} {real} would replace the folder holding the input {src}")
    if len(outs) == 2:
        (_, out), (_, exp) = outs
        if out == exp or out in exp.parents or exp in out.parents:
            raise ValueError("--out and --export must be separate folders, neither inside the other")


VIRTUAL_ROOTS = ("/proc", "/sys", "/dev")
#: what ``--out`` held before output sets had a manifest: such a folder may be replaced
LEGACY_OUTPUTS = frozenset({"series.csv", "series.json", "instances.csv", "skipped.csv", "provenance.json"})


def sort_exam(
    inputs: Sequence[str | os.PathLike],
    *,
    out_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    b_threshold: float = DEFAULT_B_THRESHOLD,
    keep_phi: bool = False,
    export_dir: str | os.PathLike | None = None,
    export_mode: str = "link",
    progress: bool = True,
    image_models: Sequence[Any] | None = None,
) -> SortResult:
    """Sort the DICOM files under ``inputs`` (files, folders or list files) into labelled image sets.

    Writes ``series.csv``, ``series.json``, ``instances.csv``, ``skipped.csv``,
    ``provenance.json`` and ``manifest.json`` into ``out_dir`` (when given) and links or
    copies files into ``export_dir/<study>/<label>[_b<value>]/`` (when given). Inputs are
    never modified. Each output folder is locked before the scan (a concurrent run on the
    same folder raises ``breastlab.core.publish.OutputLocked`` at once), built in a
    staging folder and published whole (:func:`breastlab.core.publish.staged_outputs`):
    it holds the previous complete set or this run's, never a mix.

    ``image_models`` (from ``breastlab.seriesmodels.fusion.load_models``) add the image
    path: they label UNKNOWN / low-confidence sets and header-less PNG/JPEG/NIfTI files,
    and cross-check the header rules; export and outputs then follow the fused labels.
    Without them the header rules alone decide.

    Raises ``ValueError`` (see :func:`check_paths`) or
    ``breastlab.core.publish.OutputError`` before any work when the paths cannot work.
    """
    import contextlib

    from breastlab.core.publish import staged_outputs
    from breastlab.dicom.scan import scan_paths

    check_paths(inputs, out_dir, export_dir)  # ValueError before any work
    with contextlib.ExitStack() as stack:
        # lock and stage before any work; the export (entered last) is published first
        out_stage = (stack.enter_context(staged_outputs(out_dir, replaceable=LEGACY_OUTPUTS))
                     if out_dir is not None else None)
        export_stage = stack.enter_context(staged_outputs(export_dir)) if export_dir is not None else None
        result = _sort_into(inputs, scan_paths, out_dir, out_stage, export_dir, export_stage, workers=workers,
                            b_threshold=b_threshold, keep_phi=keep_phi, export_mode=export_mode,
                            progress=progress, image_models=image_models)
    return result


def _sort_into(inputs, scan_paths, out_dir, out_stage, export_dir, export_stage, *, workers, b_threshold,  # noqa: ANN001
               keep_phi, export_mode, progress, image_models) -> SortResult:
    scan = scan_paths(list(inputs), workers=workers, progress=progress, drop_duplicates=True)
    sets = sort_records(scan.records, b_threshold=b_threshold)
    result = SortResult(sets=sets, skipped=list(scan.skipped), n_records=len(scan.records))
    if image_models:
        from breastlab.seriesmodels.fusion import fuse_result

        fuse_result(result, image_models)
        sets = result.sets

    export_paths = None
    if export_stage is not None:
        from breastlab.mri.export import export_sets

        export_paths, counts = export_sets(sets, export_stage, mode=export_mode, protected=[],
                                           publish_as=export_dir)
        result.export_dir = Path(export_dir)
        result.export_counts = counts

    if out_stage is not None:
        from breastlab.core.provenance import fingerprint_files, run_manifest
        from breastlab.mri.outputs import label_counts, write_outputs

        files = sorted({r.path for r in scan.records})
        config = {
            "inputs": [os.fspath(p) for p in inputs],
            "b_threshold": b_threshold,
            "keep_phi": keep_phi,
            "export_dir": None if export_dir is None else os.fspath(export_dir),
            "export_mode": export_mode if export_dir is not None else None,
            "classifier": "header rules",
        }
        manifest = run_manifest(config, data_fingerprint=fingerprint_files(files, content=False))
        manifest["summary"] = {
            "n_files": getattr(scan, "n_files", None),
            "n_records": len(scan.records),
            "n_image_sets": len(sets),
            "n_skipped": len(scan.skipped),
            "skipped_reasons": dict(sorted(Counter(s.reason for s in scan.skipped).items())),
            "labels": label_counts(sets),
            "export": result.export_counts or None,
        }
        written = write_outputs(out_stage, sets, result.skipped, keep_phi=keep_phi, manifest=manifest,
                                export_paths=export_paths)
        if image_models:
            from breastlab.seriesmodels.fusion import write_fused_outputs

            write_fused_outputs(out_stage, result, keep_phi=keep_phi, export_paths=export_paths)
        result.out_dir = Path(out_dir)
        result.outputs = {name: Path(out_dir) / Path(path).name for name, path in written.items()}
    return result
