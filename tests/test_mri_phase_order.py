"""Header-free DCE phase ordering: synthetic exams, geometry regrouping, and the real nact-dce exam."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from breastlab.seriesmodels.phase_order import order_by_position, order_phases
from breastlab.seriesmodels.volumes import Slice, group_by_geometry

LABELS = ["DCE_pre", "DCE_early", "DCE_delayed"]


def synthetic_exam(seed: int = 0, *, n_post: int = 2, washout: bool = True, shape=(12, 48, 48)) -> list[np.ndarray]:
    """Pre + post volumes: fat (flat), parenchyma (progressive), a lesion (peaks early, then washes out)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    body = ((y - 24) ** 2 + (x - 24) ** 2) < 20 ** 2
    parenchyma = body & (((y - 24) ** 2 + (x - 30) ** 2) < 10 ** 2)
    lesion = ((z - 6) ** 2 + (y - 22) ** 2 + (x - 28) ** 2) < 3 ** 2
    base = np.where(body, 40.0, 2.0) + np.where(parenchyma, 15.0, 0.0)
    times = np.arange(n_post + 1, dtype=float)  # 0 = pre
    vols = []
    for t in times:
        v = base.copy()
        v += parenchyma * 12.0 * t  # progressive background enhancement
        if t > 0:
            v += lesion * (90.0 - (15.0 * (t - 1) if washout else -3.0 * (t - 1)))
        vols.append(v + rng.normal(0, 2.0, shape))
    return vols


@pytest.mark.parametrize("perm", list(itertools.permutations(range(3))))
def test_three_phases_any_input_order(perm):
    vols = synthetic_exam()
    res = order_phases([vols[i] for i in perm])
    assert res.labels == [LABELS[i] for i in perm]
    assert [perm[i] for i in res.order] == [0, 1, 2]
    assert res.confidence > 0.5
    assert res.details["lesion_agrees"]


def test_plateau_lesion_still_orders_by_contrast_clock():
    vols = synthetic_exam(1, washout=False)
    res = order_phases(vols[::-1])
    assert res.labels == ["DCE_delayed", "DCE_early", "DCE_pre"]


def test_more_post_phases_first_post_is_early():
    vols = synthetic_exam(2, n_post=4)
    rng = np.random.default_rng(0)
    perm = rng.permutation(5)
    res = order_phases([vols[i] for i in perm])
    assert [perm[i] for i in res.order] == [0, 1, 2, 3, 4]
    labels = dict(zip(perm, res.labels))
    assert labels[0] == "DCE_pre" and labels[1] == "DCE_early"
    assert all(labels[i] == "DCE_delayed" for i in (2, 3, 4))


def test_identical_volumes_have_low_confidence():
    v = synthetic_exam(3)[0]
    res = order_phases([v, v.copy(), v.copy()])
    assert res.confidence < 0.1


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        order_phases([np.zeros((4, 4))])
    with pytest.raises(ValueError):
        order_phases([np.zeros((4, 4)), np.zeros((5, 4))])
    with pytest.raises(ValueError):
        order_phases(synthetic_exam(), early_by="magic")


def test_order_by_position_on_synthetic():
    vols = synthetic_exam(4)
    results = order_by_position(vols)
    assert len(results) == vols[0].shape[0]
    assert all(r.labels[0] == "DCE_pre" for r in results)


def test_group_by_geometry_rebuilds_shuffled_phases():
    vols = synthetic_exam(5)
    rng = np.random.default_rng(1)
    bag = []
    for p, v in enumerate(vols):
        for z in range(v.shape[0]):
            bag.append(Slice(path=f"{p}-{z}", pixels=v[z].astype(np.float32), position=(0.0, 0.0, 2.0 * z),
                             orientation=(1, 0, 0, 0, 1, 0)))
    bag = [bag[i] for i in rng.permutation(len(bag))]
    volumes = group_by_geometry(bag)
    assert len(volumes) == 3
    for v in volumes:
        phases = {s.path.split("-")[0] for s in v.slices}
        assert len(phases) == 1  # every rebuilt volume holds one phase only
        zs = [int(s.path.split("-")[1]) for s in v.slices]
        assert zs == sorted(zs)
    res = order_phases([v.array for v in volumes])
    truth = [LABELS[int(v.slices[0].path.split("-")[0])] for v in volumes]
    assert res.labels == truth


@pytest.mark.slow
def test_stripped_nact_dce_exam_orders_correctly(shared_data, tmp_path):
    import pydicom

    from conftest import require
    from breastlab.seriesmodels.strip import strip_headers
    from breastlab.seriesmodels.volumes import read_volumes

    folder = require(shared_data / "nact-dce/UCSF-BR-06/image_dce_3dfgre_orig")
    files = sorted(folder.glob("*.dcm"))
    times = {str(f): float(pydicom.dcmread(f, stop_before_pixels=True).ContentTime) for f in files}
    distinct = sorted(set(times.values()))
    stripped = strip_headers(files, tmp_path, seed=7)
    kept = pydicom.dcmread(stripped[0])
    for gone in ("ContentTime", "InstanceNumber", "AcquisitionNumber", "SeriesDescription", "SeriesTime",
                 "ContrastBolusAgent", "Manufacturer", "PatientID"):
        assert gone not in kept
    assert "ImagePositionPatient" in kept and "PixelData" in kept
    phase_of = {str(s): distinct.index(times[str(f)]) for f, s in zip(files, stripped)}
    volumes = read_volumes(stripped)
    assert [len(v.slices) for v in volumes] == [60, 60, 60]
    truth = []
    for v in volumes:
        phases = {phase_of[p] for p in v.paths}
        assert len(phases) == 1
        truth.append(LABELS[phases.pop()])
    res = order_phases([v.array for v in volumes])
    assert res.labels == truth
    assert res.confidence > 0.5
    # slice level, relative: the three co-located slices of each position ordered alone
    per_position = order_by_position([v.array for v in volumes])
    assert sum(r.labels == truth for r in per_position) >= 57  # of 60 positions
