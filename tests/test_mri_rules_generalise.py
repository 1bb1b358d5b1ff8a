"""The two failure shapes of a rule table, on hand-built summaries (issue 17).

A threshold that catches unrelated sequences (field maps and phase images are short-TE/TR
gradient echoes, not T1), and a name token that overrides the image type (``task-fa`` is
a BIDS task label, not fractional anisotropy; a name never turns ORIGINAL into DERIVED).
"""
from __future__ import annotations

from breastlab.core.labels import Label
from breastlab.mri.classify import classify_summary
from breastlab.mri.features import SetSummary as S
from breastlab.mri.names import without_bids_entities

GRE = dict(scanning_sequence=("GR",), repetition_time=500.0, echo_time=10.0, flip_angle=60.0)
ORIGINAL_M = ("ORIGINAL", "PRIMARY", "M", "ND")


def test_siemens_field_map_magnitude_and_phase_are_other_not_t1() -> None:
    magnitude = S(**GRE, image_type=ORIGINAL_M, sequence_name="*fm2d2r", manufacturer="SIEMENS")
    phase = S(**GRE, image_type=("ORIGINAL", "PRIMARY", "P", "ND"), sequence_name="*fm2d2r")
    for s in (magnitude, phase):
        c = classify_summary(s)
        assert c.label == Label.OTHER and c.rule == "field_map", c
        assert "fm2d2r" in c.evidence
    # the same physics without a field-map marker is still a T1-weighted gradient echo
    assert classify_summary(S(**GRE, image_type=ORIGINAL_M)).label == Label.T1


def test_philips_two_echo_field_map_beats_acquisition_contrast_t1() -> None:
    common = dict(scanning_sequence=("GR",), repetition_time=15.0, echo_time=4.6, flip_angle=20.0,
                  series_has_phase=True, series_echo_times=(4.6, 6.9), manufacturer="PHILIPS")
    magnitude = S(**common, image_type=("ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"),
                  vendor={"AcquisitionContrast": "T1", "ComplexImageComponent": "MAGNITUDE"})
    phase = S(**common, image_type=("ORIGINAL", "PRIMARY", "PHASE MAP", "P", "FFE"),
              vendor={"AcquisitionContrast": "T1", "ComplexImageComponent": "PHASE"})
    for s in (magnitude, phase):
        c = classify_summary(s)
        assert c.label == Label.OTHER, c
        assert "two echoes" in c.evidence
    # a lone magnitude series with one echo and AcquisitionContrast T1 stays T1
    assert classify_summary(S(**{**common, "series_has_phase": False, "series_echo_times": (4.6,)},
                                vendor={"AcquisitionContrast": "T1"})).label == Label.T1


def test_dixon_in_and_opposed_phase_are_not_field_maps() -> None:
    dixon = S(scanning_sequence=("GR",), repetition_time=6.0, echo_time=2.4, flip_angle=10.0,
              image_type=("ORIGINAL", "PRIMARY", "DIXON", "IN_PHASE"), series_has_phase=True,
              series_echo_times=(1.2, 2.4))
    assert classify_summary(dixon).label == Label.T1


def test_task_fa_is_not_fractional_anisotropy() -> None:
    bold = S(series_description="func-bold_task-fa_run-1", protocol_name="func-bold_task-fa_run-1",
             image_type=ORIGINAL_M, scanning_sequence=("EP",), repetition_time=2000.0, echo_time=30.0)
    c = classify_summary(bold)
    assert c.label == Label.OTHER and c.rule == "epi_other", c
    assert "FA" not in without_bids_entities("FUNC-BOLD_TASK-FA_RUN-1")


def test_name_never_turns_original_into_derived() -> None:
    for name in ("DTI_FA", "t1_SER", "PE2 map", "ADC", "T1 MAP", "SUB 2-1", "MIP Ax"):
        c = classify_summary(S(series_description=name, image_type=ORIGINAL_M, **GRE))
        assert c.label not in (Label.DERIVED, Label.ADC, Label.SUB, Label.MIP), (name, c)
        # without the ORIGINAL mark the name still decides (as before)
        c2 = classify_summary(S(series_description=name))
        assert c2.label in (Label.DERIVED, Label.ADC, Label.SUB, Label.MIP), (name, c2)


def test_acquisition_contrast_beats_thresholds() -> None:
    # enhanced-MR AcquisitionContrast is the scanner's own word: thresholds must not override it
    pd = S(repetition_time=600.0, echo_time=12.0, scanning_sequence=("SE",),
           vendor={"AcquisitionContrast": "PROTON_DENSITY"})
    assert classify_summary(pd).label == Label.OTHER
    t1_long_te = S(repetition_time=2000.0, echo_time=80.0, vendor={"AcquisitionContrast": "T1"})
    assert classify_summary(t1_long_te).label == Label.T1
    t2_short = S(repetition_time=500.0, echo_time=15.0, vendor={"AcquisitionContrast": "T2"})
    assert classify_summary(t2_short).label == Label.T2WI
