"""Unit tests: records → image sets (breastlab.mri.grouping), on hand-built records."""
from __future__ import annotations

from mri_helpers import T1_GRE, T2_TSE, rec, volume

from breastlab.mri.grouping import group_image_sets, split_by_time, unwrap_midnight


def test_one_series_one_set() -> None:
    sets = group_image_sets(volume(5, **T2_TSE))
    assert len(sets) == 1 and sets[0].n_images == 5 and sets[0].split == ""


def test_series_apart_by_uid() -> None:
    a = volume(3, **T2_TSE)
    b = volume(3, series_uid="1.2.3.2", series_number=2, **T2_TSE)
    sets = group_image_sets(a + b)
    assert [s.series_number for s in sets] == [1, 2]


def test_b_values_split_directions_stay_together() -> None:
    recs = volume(3, b_value=0.0, scanning_sequence=("EP",))
    for _ in range(3):  # three directions at b=800
        recs += volume(3, b_value=800.0, scanning_sequence=("EP",))
    sets = group_image_sets(recs)
    assert [(s.split, s.n_images) for s in sets] == [("b=0", 3), ("b=800", 9)]
    assert sets[0].series_b_values == (0.0, 800.0)


def test_single_b_value_does_not_split() -> None:
    sets = group_image_sets(volume(4, b_value=0.0, manufacturer="GE", **T1_GRE))
    assert len(sets) == 1


def test_trace_volume_is_its_own_set() -> None:
    recs = volume(3, b_value=0.0) + volume(3, b_value=800.0) + volume(3, b_value=800.0, is_derived_trace=True)
    sets = group_image_sets(recs)
    assert sorted((s.split, s.n_images) for s in sets) == [("b=0", 3), ("b=800", 3), ("trace", 3)]


def test_dynamic_series_split_by_temporal_position() -> None:
    recs = []
    for tp in (1, 2, 3):
        recs += volume(4, temporal_position_identifier=tp, acquisition_time=36000.0 + 60 * tp, **T1_GRE)
    sets = group_image_sets(recs)
    assert [s.time_order for s in sets] == [0, 1, 2]
    assert all(s.n_images == 4 and s.n_series_timepoints == 3 for s in sets)
    assert sets[1].split == "TemporalPositionIdentifier=2"


def test_nact_like_content_time_wins_over_inconsistent_acquisition_number() -> None:
    # GE: AcquisitionNumber 1 or 0 on the pre phase, 2 on both post phases; ContentTime separates
    recs = []
    for phase, (ct, acq) in enumerate([(37551.0, None), (37958.0, 2), (38312.0, 2)]):
        for k in range(4):
            a = acq if acq is not None else (1 if k % 2 else 0)
            recs.append(rec(image_position=(0.0, 0.0, 2.0 * k), content_time=ct, acquisition_number=a,
                            instance_number=phase * 4 + k + 1, **T1_GRE))
    split = split_by_time(recs)
    assert split is not None and split[0] == "ContentTime"
    assert [len(g) for _, g in split[1]] == [4, 4, 4]


def test_per_slice_times_do_not_split_one_volume() -> None:
    recs = [rec(image_position=(0.0, 0.0, 2.0 * k), content_time=36000.0 + k, **T1_GRE) for k in range(6)]
    assert split_by_time(recs) is None
    assert len(group_image_sets(recs)) == 1


def test_repeated_positions_fallback_orders_by_time() -> None:
    recs = []
    for tp in (2, 0, 1):  # written out of order
        recs += volume(3, acquisition_time=40000.0 + 100 * tp, **T1_GRE)
    recs = [r.__class__(**{**{f: getattr(r, f) for f in r.field_names()}, "acquisition_time": None,
                          "content_time": r.acquisition_time}) for r in recs]
    # content times per volume are equal, so ContentTime splits; drop it to reach the fallback
    assert split_by_time(recs)[0] == "ContentTime"
    bare = [rec(image_position=r.image_position, instance_number=i, **T1_GRE) for i, r in enumerate(recs)]
    name, groups = split_by_time(bare)
    assert name == "repeated slice positions" and [len(g) for _, g in groups] == [3, 3, 3]


def test_non_dynamic_series_is_not_split_by_time() -> None:
    # BOLD fMRI: TemporalPositionIdentifier 1..3, but not a T1 gradient echo nor named dynamic
    recs = []
    for tp in (1, 2, 3):
        recs += volume(3, temporal_position_identifier=tp, repetition_time=2000.0, echo_time=30.0,
                       flip_angle=90.0, scanning_sequence=("GR",), series_description="EPI_asc")
    sets = group_image_sets(recs)
    assert len(sets) == 1 and sets[0].n_images == 9


def test_unwrap_midnight() -> None:
    assert unwrap_midnight([86000.0, 86300.0, 100.0]) == [86000.0, 86300.0, 86500.0]
    assert unwrap_midnight([100.0, 50.0]) == [100.0, 50.0]
    assert unwrap_midnight([]) == []


def test_format_time_of_day() -> None:
    from breastlab.mri.grouping import format_tod

    assert format_tod(37550.0) == "10:25:50"
    assert format_tod(37551.25) == "10:25:51.25"
    assert format_tod(None) == ""
