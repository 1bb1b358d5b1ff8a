"""A truth table as training labels: ``breastlab mri train SORT --truth TRUTH.csv``."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from breastlab.core.labels import Label
from breastlab.review.page import read_sort, set_images
from breastlab.review.truth import TruthRow, write_truth
from cli_helpers import invoke

CLASSES = [Label.T2WI, Label.T2WI_FS, Label.ADC]


@pytest.fixture(scope="module")
def sort_and_truth(tmp_path_factory) -> tuple[Path, Path, str]:
    """A three-vendor phantom sort and a truth table for its T2WI/T2WI_FS/ADC sets (one corrected)."""
    from breastlab.phantom.mri import write_mri_phantom

    root = tmp_path_factory.mktemp("truth-train")
    write_mri_phantom(root / "exam", n_slices=4, matrix=32)
    invoke(["sort", root / "exam", "--out", root / "out", "--no-progress", "-j", "1"])
    series, instances = read_sort(root / "out")
    images = set_images(instances)
    rows = [TruthRow("", s["series_uid"], images[s["set_id"]], Label(s["label"]))  # no set id: found by images
            for s in series if s["label"] in CLASSES]
    corrected = rows[0]
    rows[0] = TruthRow(corrected.set_id, corrected.series_uid, corrected.images, Label.ADC, status="corrected")
    write_truth(root / "truth.csv", rows)
    first_set = next(s["set_id"] for s in series if s["series_uid"] == corrected.series_uid)
    return root / "out", root / "truth.csv", first_set


def test_truth_labels_replace_the_sorters(sort_and_truth) -> None:
    from breastlab.seriesmodels.truth_labels import read_truth_data

    out, truth, first_set = sort_and_truth
    ds = read_truth_data(out, truth, CLASSES)
    assert len(ds.items) == 9 and ds.source == "truth table" and not ds.dropped  # 3 vendors x 3 classes
    item = next(i for i in ds.items if i.series_id == first_set)
    assert item.label == Label.ADC and len(item.files) == 4 and all(Path(f).is_file() for f in item.files)
    assert len({i.patient_id for i in ds.items}) == 3  # one pseudonymous study per vendor


@pytest.mark.slow
def test_mri_train_accepts_the_truth_table(sort_and_truth, tmp_path: Path) -> None:
    out, truth, _ = sort_and_truth
    run = tmp_path / "run"
    res = invoke(["mri", "train", out, "--truth", truth, "--task", "sequence", "--out", run, "--image-size", "32",
                  "--slices", "2", "--epochs", "1", "--pretrained", "no", "--threads", "1", "--no-progress",
                  "--synthetic", "--no-report"])
    assert "9 labelled series from truth table" in res.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["class_names"] == [str(c) for c in CLASSES]
