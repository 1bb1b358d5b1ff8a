"""``sort_exam``: scan → group into image sets → label → write outputs → export.

Example:
    Sort a small synthetic GE exam (written by :mod:`breastlab.phantom.mri`):

    >>> import tempfile
    >>> from breastlab.phantom.mri import write_mri_phantom
    >>> exam = Path(tempfile.mkdtemp()) / "exam"
    >>> _ = write_mri_phantom(exam, vendors=("GE",), n_slices=4, matrix=32)
    >>> result = sort_exam([exam], out_dir=exam.parent / "sorted", workers=1, progress=False)
    >>> sorted({str(s.label) for s in result.sets})  # doctest: +NORMALIZE_WHITESPACE
    ['ADC', 'DCE_delayed', 'DCE_early', 'DCE_pre', 'DWI_high', 'DWI_low', 'LOCALIZER', 'MIP', 'SUB',
     'T1', 'T2WI', 'T2WI_FS']
    >>> [(s.label, s.b_value) for s in result.by_label("DWI_high")]
    [(<Label.DWI_HIGH: 'DWI_high'>, 800.0)]
    >>> sorted(p.name for p in result.outputs.values())
    ['instances.csv', 'provenance.json', 'series.csv', 'series.json', 'skipped.csv']
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from breastlab.dicom.records import InstanceRecord, SkippedFile
from breastlab.mri.classify import LabelledSet, classify_image_sets
from breastlab.mri.diffusion import DEFAULT_B_THRESHOLD
from breastlab.mri.grouping import group_image_sets


@dataclass
class SortResult:
    """What ``sort_exam`` built, complete before any output was written.

    ``sets`` are the final (fused, when image models ran) labelled sets, in output order;
    after a streaming sort for the command line (``keep_records=False``) they are *light*
    (records dropped, ``n_images`` kept: :func:`breastlab.mri.stream.light_set`) and only
    the first :data:`SUMMARY_SETS` are kept (memory flat in the size of the archive);
    ``n_sets`` and ``labels`` count them all. The image-model fields
    are filled by fusion, study by study, before writing: ``fusion`` (the summary that
    provenance.json records), ``image_columns`` (set_id → image columns of series.csv),
    ``image_rows`` / ``image_instances`` (header-less PNG/JPEG/NIfTI sets the models
    labelled alone).
    """

    sets: list[LabelledSet]
    skipped: list[SkippedFile]
    n_records: int
    out_dir: Path | None = None
    export_dir: Path | None = None
    outputs: dict[str, Path] = field(default_factory=dict)
    export_counts: dict[str, int] = field(default_factory=dict)
    fusion: dict[str, Any] = field(default_factory=dict)
    image_rows: list[dict[str, Any]] = field(default_factory=list)
    image_instances: list[dict[str, Any]] = field(default_factory=list)
    image_columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_files: int | None = None
    index: dict[str, Any] = field(default_factory=dict)  # files read / reused from the header index
    n_sets: int = 0  # every image set written (``sets`` may hold only the first ones: ``keep_records=False``)
    labels: dict[str, int] = field(default_factory=dict)  # image sets per label

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
    convert_dir: str | os.PathLike | None = None,
) -> None:
    """Raise ``ValueError`` (one line) unless inputs and the output folders can work together.

    Nothing is written. Checked: every input exists; each output folder can be
    published (:func:`breastlab.core.publish.check_target`: not a file, not a folder
    breastlab did not write, a writable parent, not under /proc, /sys or /dev);
    no output folder is, holds or lies inside an input folder; ``--out`` and
    ``--export`` and ``--convert`` are pairwise neither the same folder nor one inside the other.
    """
    from breastlab.core.publish import OutputError, check_target

    resolved_inputs = []
    for p in inputs:
        text = os.fspath(p)
        path = text[1:] if text.startswith("@") else text
        if not os.path.lexists(path):
            raise ValueError(f"no such file or folder: {path}")
        resolved_inputs.append(Path(os.path.realpath(path)))
    every = [(name, Path(os.path.realpath(d))) for name, d in (("--out", out_dir), ("--export", export_dir),
                                                               ("--convert", convert_dir)) if d is not None]
    outs = [(name, real) for name, real in every if name != "--convert"]  # --convert: convert/cli.py checks it
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
    for i, (name_a, a) in enumerate(every):
        for name_b, b in every[i + 1:]:
            if a == b or a in b.parents or b in a.parents:
                raise ValueError(f"{name_a} and {name_b} must be separate folders, neither inside the other")


VIRTUAL_ROOTS = ("/proc", "/sys", "/dev")
#: image sets kept in ``SortResult.sets`` by a summary-only sort (``keep_records=False``)
SUMMARY_SETS = 50
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
    full: bool = False,
    keep_records: bool = True,
    open_archives: bool = True,
    engine: str = "default",
    scheduler: str | None = None,
    finish: Any = None,
) -> SortResult:
    """Sort the DICOM files under ``inputs`` (files, folders or list files) into labelled image sets.

    Writes ``series.csv``, ``series.json``, ``instances.csv``, ``skipped.csv``,
    ``provenance.json``, ``manifest.json`` and the header index ``index/`` into
    ``out_dir`` (when given) and links or copies files into
    ``export_dir/<study>/<label>[_b<value>]/`` (when given). Inputs are never modified.
    Each output folder is locked before the scan (a concurrent run on the same folder
    raises ``breastlab.core.publish.OutputLocked`` at once), built in a staging folder
    and published whole (:func:`breastlab.core.publish.staged_outputs`): it holds the
    previous complete set or this run's, never a mix.

    Headers are read in committed batches into the header index
    (:mod:`breastlab.index.store`); a re-run on the same ``out_dir`` reads only new or
    changed files (``full=True`` reads everything), and a killed run resumes from its
    last batch. Grouping, rules, image models, export and outputs then run one study
    at a time (:mod:`breastlab.mri.stream`): memory does not grow with the number of
    studies. ``keep_records=False`` keeps only light sets in the result (for a summary
    table) instead of every record. ``.zip``/``.tar(.gz)`` inputs are read member by
    member without unpacking (:mod:`breastlab.dicom.archives`), unless
    ``open_archives=False`` or an export is asked for (exported files must exist on disk).
    ``engine="dask"`` reads headers and runs each study's rules on a Dask cluster
    (``scheduler`` address, or a LocalCluster of ``workers`` processes):
    :mod:`breastlab.index.dask_engine`; the outputs are the same.

    ``image_models`` (from ``breastlab.seriesmodels.fusion.load_models``) add the image
    path: they label UNKNOWN / low-confidence sets and header-less PNG/JPEG/NIfTI files,
    and cross-check the header rules; export and outputs then follow the fused labels.
    Without them the header rules alone decide.

    ``finish`` (e.g. :class:`breastlab.review.sortstep.ReviewStep`) is called with the
    staging folder once series.json and instances.csv are complete; what it writes there
    is published with the set, and the dict it returns is added to provenance.json.

    Raises ``ValueError`` (see :func:`check_paths`) or
    ``breastlab.core.publish.OutputError`` before any work when the paths cannot work.
    """
    import contextlib
    import tempfile

    from breastlab.core.publish import staged_outputs
    from breastlab.dicom.archives import read_closed, read_open
    from breastlab.dicom.scan import iter_inputs
    from breastlab.index.store import HeaderIndex

    check_paths(inputs, out_dir, export_dir)  # ValueError before any work
    open_archives = open_archives and export_dir is None
    with contextlib.ExitStack() as stack:
        # lock and stage before any work; the export (entered last) is published first
        out_stage = (stack.enter_context(staged_outputs(out_dir, replaceable=LEGACY_OUTPUTS))
                     if out_dir is not None else None)
        export_stage = stack.enter_context(staged_outputs(export_dir)) if export_dir is not None else None
        if out_dir is not None:
            index = HeaderIndex(out_dir, full=full, keep_phi=keep_phi, open_archives=open_archives)
        else:  # no output folder: a throw-away index
            index = HeaderIndex(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="breastlab-index-")))
                                / "out", keep_phi=keep_phi, open_archives=open_archives)
        index.open()
        stack.callback(index.close)
        walk_skipped: list = []
        files = iter_inputs(list(inputs), walk_skipped)  # a stream: walked into the index's state
        n_workers = workers if workers is not None else (os.cpu_count() or 1)
        reader = read_open if open_archives else read_closed
        client = None
        if engine == "dask":
            from breastlab.index.dask_engine import dask_client

            client = stack.enter_context(dask_client(scheduler, n_workers))
            index.refresh_dask(files, client, reader)
        elif engine == "default":
            index.refresh(files, reader, workers=n_workers, progress=progress)
        else:
            raise ValueError(f"engine must be 'default' or 'dask', not {engine!r}")
        from breastlab.index.view import _IndexView

        with _IndexView(index) as view:
            # unchanged studies keep their previous rows (breastlab.index.studies); the command line's
            # summary-only sort without models, export, Dask or a finishing step (the review page
            # decodes every set's images), where the result needs no records
            reuse = (out_dir is not None and not keep_records and not image_models and export_dir is None
                     and client is None and finish is None)
            cache = None
            if reuse:
                from breastlab.index.studies import PreviousStudies, StudyWriter, settings_key

                settings = settings_key(b_threshold, keep_phi)
                fingerprints = view.study_fingerprints(settings)
                previous = PreviousStudies(None if full else index.previous_studies, settings)
                hits = previous.hits(fingerprints)
                index.studies_file = index.journal / "studies-new.parquet"
                cache = _StudyCache(previous, StudyWriter(index.studies_file, settings), fingerprints)
                studies = view.studies_keyed(hits)
            else:
                studies = ((None, records) for records in view.studies())
            result = _sort_stream(studies, view.skipped(walk_skipped), view.n_records, view.data_fingerprint,
                                  inputs=inputs, n_files=index.n_files, out_dir=out_dir, out_stage=out_stage,
                                  export_dir=export_dir, export_stage=export_stage, b_threshold=b_threshold,
                                  keep_phi=keep_phi, export_mode=export_mode, image_models=image_models,
                                  keep_records=keep_records, client=client, finish=finish, cache=cache)
            result.index = {"files_read": index.n_read, "files_reused": index.n_reused,
                            "studies_reused": cache.n_reused if cache is not None else 0,
                            "warnings": list(index.warnings)}
            if out_stage is not None:
                index.publish_into(out_stage)
    if out_dir is not None:  # published: the journal's parts are all in OUT/index now
        index.discard_journal()
    return result


def sort_instances(
    records: Iterable[InstanceRecord],
    skipped: Iterable[SkippedFile] = (),
    *,
    inputs: Sequence[str] = (),
    out_dir: str | os.PathLike | None = None,
    b_threshold: float = DEFAULT_B_THRESHOLD,
    keep_phi: bool = False,
    export_dir: str | os.PathLike | None = None,
    export_mode: str = "link",
    image_models: Sequence[Any] | None = None,
    n_files: int | None = None,
) -> SortResult:
    """Sort already-parsed records (e.g. from DICOM JSON of a PACS) with the same pipeline as ``sort_exam``.

    Duplicates by SOP Instance UID are dropped into ``skipped`` (reason ``duplicate``),
    then grouping, rules, image models, export and the outputs (published whole, when
    ``out_dir`` is given) run study by study. ``inputs`` are recorded in provenance.
    """
    import contextlib

    from breastlab.core.provenance import fingerprint_files
    from breastlab.core.publish import staged_outputs
    from breastlab.dicom.scan import deduplicate
    from breastlab.mri.stream import group_studies

    skipped_list = list(skipped)
    kept = deduplicate(list(records), skipped_list)
    skipped_list.sort(key=lambda s: s.path)
    with contextlib.ExitStack() as stack:
        out_stage = (stack.enter_context(staged_outputs(out_dir, replaceable=LEGACY_OUTPUTS))
                     if out_dir is not None else None)
        export_stage = stack.enter_context(staged_outputs(export_dir)) if export_dir is not None else None
        return _sort_stream(((None, study) for study in group_studies(kept)), skipped_list, len(kept),
                            lambda: fingerprint_files({r.path for r in kept}, content=False),
                            inputs=inputs, n_files=n_files, out_dir=out_dir, out_stage=out_stage,
                            export_dir=export_dir, export_stage=export_stage, b_threshold=b_threshold,
                            keep_phi=keep_phi, export_mode=export_mode, image_models=image_models,
                            keep_records=True)


@dataclass
class _StudyCache:
    """The previous run's study rows and this run's (``breastlab.index.studies``)."""

    previous: Any
    writer: Any
    fingerprints: dict[str, str]
    n_reused: int = 0


def _sort_stream(studies, skipped, n_records, data_fingerprint, *, inputs, n_files, out_dir, out_stage,  # noqa: ANN001
                 export_dir, export_stage, b_threshold, keep_phi, export_mode, image_models,
                 keep_records, client=None, finish=None, cache: _StudyCache | None = None) -> SortResult:
    """Per study: group → rules → image models → export → rows appended; then skipped.csv and provenance.

    ``studies`` yields (study key, records); records ``None``: an unchanged study whose rows
    ``cache`` gives back (then never Dask, models or export).
    """
    from breastlab.mri import outputs
    from breastlab.mri.stream import StreamWriter, light_set

    fusion = None
    columns = outputs.series_columns(keep_phi)
    if image_models:
        from breastlab.seriesmodels.fusion import IMAGE_COLUMNS, FusionTotals, fuse_study, fused_columns

        fusion = FusionTotals(image_models)
        columns = fused_columns(keep_phi)
    result = SortResult(sets=[], skipped=list(skipped), n_records=n_records, n_files=n_files)
    scan_skipped = list(result.skipped)
    if fusion is not None:  # header-less files are known before the first study: label them up front
        result.skipped = fusion.headerless(result.skipped)
    writer = StreamWriter(out_stage, columns, outputs.INSTANCE_COLUMNS) if out_stage is not None else None
    labels: dict[str, int] = {}
    export_counts: dict[str, int] = {}
    if client is not None:  # the rules of each study as a Dask task; results in study order
        from breastlab.index.dask_engine import map_in_order

        labelled = ((None, sets) for sets in map_in_order(
            client, sort_records, (records for _, records in studies), window=2 * max(1, len(client.nthreads())),
            b_threshold=b_threshold))
    else:
        labelled = ((key, None if records is None else sort_records(records, b_threshold=b_threshold))
                    for key, records in studies)
    try:
        for key, sets in labelled:
            if sets is None:  # unchanged since the previous run: its rows as they were
                _reuse_study(cache, key, writer, labels, result)
                continue
            extra: dict[str, dict[str, Any]] = {}
            if fusion is not None:
                fused = fuse_study(sets, image_models)
                fusion.add(fused)
                sets, extra = fused.sets, fused.image_columns
                result.image_columns.update(extra)
            export_paths = None
            if export_stage is not None:
                from breastlab.mri.export import export_sets

                export_paths, counts = export_sets(sets, export_stage, mode=export_mode, protected=[],
                                                   publish_as=export_dir)
                for k, v in counts.items():
                    export_counts[k] = export_counts.get(k, 0) + v
            for ls in sets:
                labels[ls.label] = labels.get(ls.label, 0) + 1
            if writer is not None:
                rows = [outputs.series_row(ls, keep_phi=keep_phi) for ls in sets]
                if fusion is not None:
                    rows = [row | {c: extra.get(ls.set_id, {}).get(c) for c in IMAGE_COLUMNS}
                            for row, ls in zip(rows, sets)]
                writer.series(rows)
                instances_text = writer.instances(outputs.instance_rows(sets, export_paths))
                if cache is not None:
                    cache.writer.add(key, cache.fingerprints[key], rows, instances_text)
            _keep_sets(result, sets if keep_records else [light_set(ls) for ls in sets[:SUMMARY_SETS]], keep_records,
                       n=len(sets))
        if fusion is not None:
            result.fusion = fusion.summary()
            result.image_rows, result.image_instances = fusion.image_rows, fusion.image_instances
            if writer is not None:
                writer.series(fusion.series_rows(columns))
                writer.instances(fusion.image_instances)
        result.labels = labels
        if writer is not None:
            writer.close()
        if cache is not None:
            cache.writer.close()
    except BaseException as exc:
        if writer is not None:
            writer.abort(exc)
        if cache is not None:
            cache.writer.abort()
        raise
    if export_stage is not None:
        result.export_dir = Path(export_dir)
        result.export_counts = export_counts or {"link": 0, "copy": 0, "exists": 0}
    if out_stage is not None:
        from breastlab.core import atomic
        from breastlab.core.provenance import run_manifest

        config = {
            "inputs": [os.fspath(p) for p in inputs],
            "b_threshold": b_threshold,
            "keep_phi": keep_phi,
            "export_dir": None if export_dir is None else os.fspath(export_dir),
            "export_mode": export_mode if export_dir is not None else None,
            "classifier": "header rules",
        }
        manifest = run_manifest(config, data_fingerprint=data_fingerprint())
        manifest["summary"] = {
            "n_files": n_files,
            "n_records": n_records,
            "n_image_sets": result.n_sets,
            "n_skipped": len(scan_skipped),
            "skipped_reasons": dict(sorted(Counter(s.reason for s in scan_skipped).items())),
            "labels": labels,
            "export": result.export_counts or None,
        }
        if fusion is not None:
            from breastlab.seriesmodels.fusion import provenance_with_models

            manifest = provenance_with_models(manifest, result.fusion)
        stage = Path(out_stage)
        written = {name: stage / name for name in ("series.csv", "series.json", "instances.csv")}
        if finish is not None:  # review page, truth agreement: inside the set, before provenance
            manifest.update(finish(stage) or {})
            written.update({name: stage / name for name in getattr(finish, "written", ())})
        written["skipped.csv"] = atomic.write_csv(
            stage / "skipped.csv", ({"path": s.path, "reason": s.reason, "detail": s.detail} for s in result.skipped),
            outputs.SKIPPED_COLUMNS)
        written["provenance.json"] = atomic.write_json(stage / "provenance.json", manifest)
        result.out_dir = Path(out_dir)
        result.outputs = {name: Path(out_dir) / name for name in written}
    return result


def _keep_sets(result: SortResult, sets: list, keep_all: bool, n: int | None = None) -> None:
    """Count ``sets`` (``n`` of them when given) and keep them, or the first ones (``SUMMARY_SETS``)."""
    result.n_sets += len(sets) if n is None else n
    room = len(sets) if keep_all else max(0, SUMMARY_SETS - len(result.sets))
    result.sets.extend(sets[:room])


def _reuse_study(cache: _StudyCache, key: str, writer, labels: dict, result: SortResult) -> None:  # noqa: ANN001
    """Write an unchanged study's previous rows and count its sets (``CachedSet`` in the result)."""
    import json

    from breastlab.core.labels import Label
    from breastlab.mri.stream import CachedSet

    series_json, instances_text = cache.previous.rows(key)
    series_rows = json.loads(series_json)
    if writer is not None:
        writer.series(series_rows)
        writer.instances_text(instances_text)
    for row in series_rows:
        label = Label(row["label"])
        labels[label] = labels.get(label, 0) + 1
    _keep_sets(result, [CachedSet(row) for row in series_rows[:SUMMARY_SETS]], False, n=len(series_rows))
    cache.writer.add(key, cache.fingerprints[key], series_json, instances_text)
    cache.n_reused += 1
