"""Unit tests: DCE acquisitions and phase order across image sets of one study."""
from __future__ import annotations

from mri_helpers import T1_GRE, rec, volume

from breastlab.mri.sorter import sort_records


def _labels(sets):
    return [(s.label, s.summary.dce_phase, s.summary.dce_seconds) for s in sets]


def test_separate_series_ordered_by_time_not_series_number() -> None:
    recs = []
    # series numbers deliberately disagree with acquisition order
    for sn, t in ((7, 36400.0), (5, 36000.0), (6, 36100.0)):
        recs += volume(4, series_uid=f"1.2.3.{sn}", series_number=sn, acquisition_time=t, **T1_GRE)
    sets = sort_records(recs)
    by_sn = {s.image_set.series_number: s for s in sets}
    assert (by_sn[5].label, by_sn[6].label, by_sn[7].label) == ("DCE_pre", "DCE_early", "DCE_delayed")
    assert by_sn[6].summary.dce_seconds == 100.0 and by_sn[7].summary.dce_seconds == 400.0
    assert by_sn[7].summary.dce_n_phases == 3


def test_midnight_wrap() -> None:
    recs = []
    for sn, t in ((1, 86300.0), (2, 20.0), (3, 200.0)):
        recs += volume(2, series_uid=f"1.2.3.{sn}", series_number=sn, acquisition_time=t, **T1_GRE)
    got = _labels(sort_records(recs))
    assert got == [("DCE_pre", 0, 0.0), ("DCE_early", 1, 120.0), ("DCE_delayed", 2, 300.0)]


def test_contrast_agent_tag_is_ignored() -> None:
    recs = []
    # the pre-contrast phase claims contrast; the post phases say NONE (as in the GE NACT exam)
    for sn, t, agent in ((1, 100.0, "GADOVIST"), (2, 500.0, "NONE")):
        recs += volume(2, series_uid=f"1.2.3.{sn}", series_number=sn, acquisition_time=t, contrast_agent=agent, **T1_GRE)
    assert [s.label for s in sort_records(recs)] == ["DCE_pre", "DCE_early"]


def test_single_time_point_is_t1() -> None:
    sets = sort_records(volume(4, acquisition_time=100.0, **T1_GRE))
    assert [s.label for s in sets] == ["T1"] and sets[0].summary.dce_phase is None


def test_different_acquisitions_are_not_one_dce() -> None:
    fs = volume(3, series_uid="1.2.3.1", series_number=1, acquisition_time=100.0, **T1_GRE)
    nofs = volume(3, series_uid="1.2.3.2", series_number=2, acquisition_time=300.0,
                  **{**T1_GRE, "scan_options": (), "series_description": "t1_fl3d_nonfs", "flip_angle": 20.0})
    assert [s.label for s in sort_records(fs + nofs)] == ["T1", "T1"]


def test_other_studies_are_separate() -> None:
    a = volume(2, study_uid="9.1", series_uid="9.1.1", acquisition_time=100.0, **T1_GRE)
    b = volume(2, study_uid="9.2", series_uid="9.2.1", acquisition_time=300.0, **T1_GRE)
    assert [s.label for s in sort_records(a + b)] == ["T1", "T1"]


def test_separate_pre_plus_multiphase_series() -> None:
    recs = volume(3, series_uid="1.2.3.1", series_number=1, acquisition_time=1000.0, **T1_GRE)
    for tp in (1, 2, 3):
        recs += volume(3, series_uid="1.2.3.2", series_number=2, temporal_position_identifier=tp,
                       acquisition_time=1100.0 + 100 * tp, **T1_GRE)
    got = _labels(sort_records(recs))
    assert got == [("DCE_pre", 0, 0.0), ("DCE_early", 1, 200.0), ("DCE_delayed", 2, 300.0), ("DCE_delayed", 3, 400.0)]


def test_trigger_time_orders_phases_inside_one_series() -> None:
    recs = []
    for tp, trig in ((1, 0.0), (2, 60000.0), (3, 120000.0)):
        recs += volume(2, temporal_position_identifier=tp, trigger_time=trig, acquisition_time=500.0, **T1_GRE)
    got = _labels(sort_records(recs))
    assert got == [("DCE_pre", 0, 0.0), ("DCE_early", 1, 60.0), ("DCE_delayed", 2, 120.0)]
    assert sort_records(recs)[0].summary.dce_timing == "TriggerTime"


def test_no_timing_falls_back_to_series_order_with_lower_confidence() -> None:
    recs = []
    for sn in (3, 4):
        recs += volume(2, series_uid=f"1.2.3.{sn}", series_number=sn, **T1_GRE)
    sets = sort_records(recs)
    assert [s.label for s in sets] == ["DCE_pre", "DCE_early"]
    assert sets[1].summary.dce_seconds is None and sets[1].classification.confidence <= 0.6


def test_dynamic_name_without_gre_physics() -> None:
    kw = dict(series_description="Ax Dyn", scanning_sequence=(), sequence_name=None)
    recs = volume(2, series_uid="1.2.3.1", series_number=1, acquisition_time=10.0, **kw)
    recs += volume(2, series_uid="1.2.3.2", series_number=2, acquisition_time=90.0, **kw)
    assert [s.label for s in sort_records(recs)] == ["DCE_pre", "DCE_early"]


def test_subtraction_and_derived_never_join_the_dce() -> None:
    recs = volume(2, series_uid="1.2.3.1", series_number=1, acquisition_time=10.0, **T1_GRE)
    recs += volume(2, series_uid="1.2.3.2", series_number=2, acquisition_time=90.0, **T1_GRE)
    recs += volume(2, series_uid="1.2.3.3", series_number=3, acquisition_time=95.0,
                   image_type=("DERIVED", "PRIMARY", "SUB"), **T1_GRE)
    assert [s.label for s in sort_records(recs)] == ["DCE_pre", "DCE_early", "SUB"]


def test_record_level_frames_enhanced_file() -> None:
    # enhanced multi-frame: one path, frames with TemporalPositionIndex
    recs = [rec(path="/in/enh.dcm", frame_index=i, instance_number=1, temporal_position_index=tp,
                image_position=(0.0, 0.0, float(z)), acquisition_datetime=f"20240101{10 + tp:02d}0000", **T1_GRE)
            for i, (tp, z) in enumerate((tp, z) for tp in (1, 2) for z in range(3))]
    got = _labels(sort_records(recs))
    assert got == [("DCE_pre", 0, 0.0), ("DCE_early", 1, 3600.0)]


def test_dixon_parts_of_one_series_are_not_time_points() -> None:
    recs = []
    for part in ("W", "F", "IN_PHASE", "OPP_PHASE"):
        recs += volume(3, image_type=("DERIVED", "PRIMARY", "DIXON", part), acquisition_time=100.0,
                       **{**T1_GRE, "series_description": "t1_vibe_dixon_tra"})
    sets = sort_records(recs)
    assert len(sets) == 4 and {s.label for s in sets} == {"T1"}
