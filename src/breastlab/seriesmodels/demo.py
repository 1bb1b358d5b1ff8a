"""Phantom training data and the clearly labelled demo model.

``phantom_manifest`` writes synthetic exams (``breastlab.phantom.mri``) for chosen
vendor dialects and seeds, and a manifest CSV (DATA form 2) whose series are the
phantom's image sets; the patient is the phantom seed, so one seed's exams in several
dialects never straddle a split. ``make_demo_model`` trains a small model on it.

The demo model is labelled as such everywhere: its metadata has ``demo: true`` and the
notice :data:`~breastlab.seriesmodels.model.DEMO_NOTICE`, which ``breastlab sort`` prints
and writes to its outputs. It is a test of the machinery on synthetic images, not a
clinical model.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from breastlab.core import atomic
from breastlab.core.labels import Label
from breastlab.core.rundir import RunDir

from .data import TASK_CLASSES
from .model import DEMO_NOTICE, MRITrainConfig, train_run


def phantom_manifest(
    out_dir: str | os.PathLike,
    *,
    vendors: Sequence[str] = ("SIEMENS", "GE"),
    seeds: Sequence[int] = (0, 1, 2),
    n_slices: int = 8,
    matrix: int = 64,
    classes: Sequence[str] | None = None,
) -> Path:
    """Write phantom exams under ``out_dir/seed{s}`` and ``out_dir/manifest.csv``; returns the manifest."""
    from breastlab.phantom.mri import write_mri_phantom

    out = Path(out_dir)
    rows = []
    for seed in seeds:
        exam_dir = out / f"seed{seed}"
        write_mri_phantom(exam_dir, vendors=list(vendors), n_slices=n_slices, matrix=matrix, seed=seed)
        with open(exam_dir / "truth_instances.csv", newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                if classes is not None and r["label"] not in classes:
                    continue
                sid = f"seed{seed}/{r['vendor']}/{r['series_uid']}" + (f"/phase{r['dce_phase']}" if r["dce_phase"] else "") \
                    + (f"/b{r['b_value']}" if r["b_value"] and r["label"].startswith("DWI") else "")
                rows.append({"path": str((exam_dir / r["path"]).resolve()), "label": r["label"],
                             "patient_id": f"phantom-seed{seed}", "series_id": sid, "vendor": r["vendor"]})
    manifest = out / "manifest.csv"
    atomic.write_csv(manifest, rows, ["path", "label", "patient_id", "series_id", "vendor"])
    return manifest


def phantom_class_folders(
    out_dir: str | os.PathLike,
    *,
    vendors: Sequence[str] = ("SIEMENS", "GE"),
    seeds: Sequence[int] = (0, 1, 2),
    classes: Sequence[str] = (Label.T2WI, Label.T2WI_FS, Label.ADC),
    n_slices: int = 8,
    matrix: int = 64,
) -> Path:
    """Phantom volumes as NIfTI in class folders (DATA form 1): ``OUT/<class>/seed<s>/<vendor>.nii.gz``.

    Much faster than DICOM (no header writing); the pixel data are the same arrays the
    DICOM phantom stores. The patient is the seed folder.
    """
    import nibabel as nib
    import numpy as np

    from breastlab.phantom.mri import render_exam

    out = Path(out_dir)
    for seed in seeds:
        for vendor in vendors:
            volumes = render_exam(vendor, seed, n_slices=n_slices, matrix=matrix)
            for label in classes:
                target = out / label / f"seed{seed}" / f"{vendor}.nii.gz"
                target.parent.mkdir(parents=True, exist_ok=True)
                data = np.ascontiguousarray(volumes[label].transpose(2, 1, 0)).astype(np.float32)  # (x, y, z)
                nib.save(nib.Nifti1Image(data, np.eye(4)), str(target))
    return out


DEMO_CLASSES = (Label.T2WI, Label.T2WI_FS, Label.DWI_LOW, Label.DWI_HIGH, Label.ADC, Label.T1, Label.DCE_PRE,
                Label.DCE_EARLY, Label.DCE_DELAYED, Label.SUB, Label.MIP)


def make_demo_model(
    out: str | os.PathLike,
    *,
    task: str = "sequence",
    classes: Sequence[str] | None = None,
    work_dir: str | os.PathLike | None = None,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    vendors: Sequence[str] = ("SIEMENS", "GE", "PHILIPS"),
    epochs: int = 6,
    image_size: int = 48,
    slices_per_series: int = 3,
    progress: bool = False,
) -> Path:
    """Train a small DEMO model on phantom exams and copy it to ``out`` (a ``.pt`` file).

    ``classes`` default: for ``task="sequence"`` every phantom image-set label a slice
    classifier can see (:data:`DEMO_CLASSES`), so that a header-stripped exam is not
    forced into three sequence classes; for ``task="phase"`` the three DCE phases.
    Returns the path of the model file. The run directory (metrics, report) is kept in
    ``work_dir`` (default: ``<out>.run``).
    """
    import tempfile

    from .data import read_data

    out = Path(out)
    run_dir = Path(work_dir) if work_dir else out.with_suffix(".run")
    if classes is None:
        classes = DEMO_CLASSES if task == "sequence" else TASK_CLASSES[task]
    classes = list(classes)
    with tempfile.TemporaryDirectory(prefix="breastlab-demo-") as tmp:
        folders = phantom_class_folders(tmp, vendors=vendors, seeds=seeds, classes=classes, n_slices=8,
                                        matrix=max(image_size, 48))
        data = read_data(folders, classes)
        cfg = MRITrainConfig(task=task, classes=classes, image_size=image_size, slices_per_series=slices_per_series,
                             epochs=epochs, batch_size=16, pretrained="no", demo=True, synthetic=True, seed=0)
        train_run(data, run_dir, cfg, progress=progress, resume=False, report=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(out, RunDir(run_dir).run_model.read_bytes())
    atomic.write_text(out.with_name(out.stem + ".DEMO-README.txt"),
                      f"{DEMO_NOTICE}\n\nTask: {task} ({', '.join(classes)}). Trained by make_demo_model on "
                      f"phantom seeds {list(seeds)}, vendors {list(vendors)}. Run folder: {run_dir}\n")
    return out
