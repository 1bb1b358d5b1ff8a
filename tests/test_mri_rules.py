"""Unit tests: one or more per rule of breastlab.mri.rules.RULES, on hand-built summaries."""
from __future__ import annotations

import re

import pytest

from breastlab.mri import rules
from breastlab.mri.classify import classify_summary
from breastlab.mri.features import SetSummary

S = SetSummary
T1 = dict(repetition_time=5.0, echo_time=2.0, flip_angle=12.0, scanning_sequence=("GR",))
T2 = dict(repetition_time=4000.0, echo_time=90.0, scanning_sequence=("SE",))
DWI_EPI = dict(repetition_time=5000.0, echo_time=70.0, scanning_sequence=("EP", "SE"))

# rule name -> summaries that must be decided by exactly that rule
CASES: dict[str, list[SetSummary]] = {
    "non_mr": [S(modality="SEG"), S(modality="SR", series_description="t2_tse")],
    "localizer_type": [S(image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), **T1)],
    "field_map": [S(sequence_name="*fm2d2r", scanning_sequence=("GR",), repetition_time=488.0, echo_time=4.92,
                    image_type=("ORIGINAL", "PRIMARY", "M", "ND")),
                  S(vendor={"(0019,109C)": "B0map"}, **T1),
                  S(image_type=("ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"), scanning_sequence=("GR",),
                    series_has_phase=True, series_echo_times=(4.6, 6.9), vendor={"AcquisitionContrast": "T1"})],
    "phase_image": [S(image_type=("ORIGINAL", "PRIMARY", "P", "ND"), **T1),
                    S(image_type=("ORIGINAL", "PRIMARY", "PHASE MAP", "P", "FFE"), **T1),
                    S(vendor={"ComplexImageComponent": "PHASE", "AcquisitionContrast": "T1"}, **T1),
                    S(vendor={"(0043,102F)": "1"}, **T1)],
    "localizer_name": [S(series_description="3-Plane Loc", **T1), S(series_description="Survey", **T1),
                       S(series_description="AAHead_Scout")],
    "mip_type": [S(image_type=("DERIVED", "SECONDARY", "MIP_TRA"), **T1),
                 S(image_type=("DERIVED", "PRIMARY", "PROJECTION IMAGE"), **T1)],
    "mip_name": [S(series_description="MIP Ax SUB", **T1)],
    "sub_type": [S(image_type=("DERIVED", "PRIMARY", "M", "SUB"), **T1)],
    "sub_name": [S(series_description="Ax VIBRANT SUB 2-1", **T1), S(series_description="post-pre", **T1)],
    "adc_type": [S(image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC"), **DWI_EPI, series_b_values=(0.0, 800.0))],
    "adc_name": [S(series_description="Apparent Diffusion Coefficient (mm2/s)", **DWI_EPI, series_b_values=(800.0,)),
                 S(series_description="dADC")],
    "derived_map_type": [S(image_type=("DERIVED", "PRIMARY", "DIFFUSION", "FA")),
                         S(image_type=("DERIVED", "PRIMARY", "DCE", "PE1"), **T1),
                         S(image_type=("DERIVED", "PRIMARY", "DIFFUSION", "TENSOR_B0"))],
    "derived_map_name": [S(series_description="Sagittal-IR_3DFGRE: SER", **T1), S(series_description="eADC")],
    "dwi": [S(image_type=("ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"), b_value=800.0, series_b_values=(50.0, 800.0)),
            S(**DWI_EPI, b_value=0.0, series_b_values=(0.0, 1000.0)),
            S(is_derived_trace=True, b_value=800.0, series_b_values=(800.0,)),
            S(scanning_sequence=("SE",), b_value=2000.0, series_b_values=(0.0, 2000.0), vendor={"(2001,1004)": "M"}),
            S(sequence_name="ep_b1000#1", scanning_sequence=("EP",))],
    "dwi_b_unknown": [S(image_type=("ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"))],
    "dce_partial_derived": [S(**T1, image_type=("DERIVED", "SECONDARY"), dce_partial="a single image (1 image)")],
    "dce_partial": [S(**T1, image_type=("ORIGINAL", "PRIMARY", "OTHER"), dce_partial="a single image (1 image)",
                      series_description="T2 copy")],
    "dce_pre": [S(**T1, dce_phase=0, dce_n_phases=3, dce_seconds=0.0, dce_timing="ContentTime")],
    "dce_early": [S(**T1, dce_phase=1, dce_n_phases=3, dce_seconds=90.0, dce_timing="ContentTime")],
    "dce_delayed": [S(**T1, dce_phase=2, dce_n_phases=3, dce_seconds=400.0, dce_timing="ContentTime"),
                    S(**T1, dce_phase=5, dce_n_phases=6, dce_timing="ContentTime")],
    "epi_other": [S(scanning_sequence=("GR",), repetition_time=2000.0, echo_time=30.0, series_description="EPI_asc",
                    b_value=0.0, series_b_values=(0.0,), vendor={"(2001,1020)": "FEEPI"}),
                  S(scanning_sequence=("EP",), repetition_time=2000.0, echo_time=30.0, series_description="fMRI")],
    "other_contrast": [S(repetition_time=600.0, echo_time=20.0, scanning_sequence=("GR",),
                         vendor={"AcquisitionContrast": "T2_STAR"}),
                       S(**T2, vendor={"AcquisitionContrast": "PROTON_DENSITY"})],
    "sequence_other": [S(sequence_name="*swi3d1r", repetition_time=28.0, echo_time=20.0, scanning_sequence=("GR",)),
                       S(sequence_name="*tfi2d1_192", repetition_time=4.0, echo_time=2.0, flip_angle=60.0),
                       S(vendor={"(0019,109C)": "fiesta"}, repetition_time=4.0, echo_time=1.8)],
    "stir": [S(series_description="Ax STIR", repetition_time=5000.0, echo_time=40.0, inversion_time=160.0),
             S(scanning_sequence=("IR", "SE"), repetition_time=6000.0, echo_time=50.0, inversion_time=150.0),
             S(series_description="t2_tirm_tra", **T2)],
    "t2_fs": [S(**T2, scan_options=("FS",)), S(**T2, scan_options=("SFS",)),
              S(**T2, spectrally_selected_suppression="FAT"), S(**T2, series_description="T2W_SPAIR"),
              S(**T2, series_description="T2 SPIR"), S(**T2, series_description="Ax T2 FATSAT"),
              S(**T2, image_type=("DERIVED", "PRIMARY", "DIXON", "W")),
              S(**T2, vendor={"SpectrallySelectedExcitation": "WATER"})],
    "t2": [S(**T2, series_description="Ax T2 FSE", scan_options=("FAST_GEMS",)),
           S(**T2, series_description="T2W_TSE"), S(**T2, image_type=("DERIVED", "PRIMARY", "DIXON", "F"))],
    "t1": [S(**T1), S(repetition_time=500.0, echo_time=12.0, scanning_sequence=("SE",)),
           S(repetition_time=1800.0, echo_time=2.4, inversion_time=900.0, scanning_sequence=("GR", "IR"),
             sequence_name="tfl3d1"),
           S(**T1, b_value=0.0, series_b_values=(0.0,), manufacturer="GE"),
           S(vendor={"AcquisitionContrast": "T1"})],
    "t2_name_fs": [S(series_description="Ax T2 FS")],
    "t2_name": [S(series_description="Ax T2 FSE")],
    "t1_name": [S(series_description="Ax T1 non FS")],
    "known_other": [S(series_description="PD_tse", repetition_time=3000.0, echo_time=20.0),
                    S(series_description="SVS_PRESS")],
    "derived_other": [S(image_type=("DERIVED", "SECONDARY", "MPR"))],
    "fallback": [S(), S(series_description="Series 7")],
}


def _cases():
    for name, summaries in CASES.items():
        for i, s in enumerate(summaries):
            yield pytest.param(name, s, id=f"{name}-{i}")


@pytest.mark.parametrize("rule_name, summary", list(_cases()))
def test_rule_decides(rule_name: str, summary: SetSummary) -> None:
    rule, evidence = rules.match(summary)
    assert rule.name == rule_name, (rule.name, evidence)
    assert evidence, "every match must say why"


def test_every_rule_has_a_case_and_labels_are_the_contract() -> None:
    assert {r.name for r in rules.RULES} == set(CASES)
    assert len({r.name for r in rules.RULES}) == len(rules.RULES)
    for r in rules.RULES:
        assert r.label in rules.LABELS or r.label == rules.DWI
        assert 0.0 <= r.confidence <= 1.0 and r.explanation
    assert rules.LABELS == ("T2WI", "T2WI_FS", "DWI_low", "DWI_high", "ADC", "T1", "DCE_pre", "DCE_early",
                            "DCE_delayed", "SUB", "MIP", "LOCALIZER", "DERIVED", "OTHER", "UNKNOWN")
    assert rules.RULES[-1].name == "fallback"


def test_b_value_alone_never_makes_dwi() -> None:
    # GE writes (0043,1039)=0 on T1; Philips writes b=0 on BOLD
    ge_t1 = S(**T1, manufacturer="GE", b_value=0.0, series_b_values=(0.0,))
    bold = S(scanning_sequence=("GR",), repetition_time=2000.0, echo_time=30.0, flip_angle=90.0,
             manufacturer="PHILIPS", b_value=0.0, series_b_values=(0.0,), series_description="EPI_asc")
    bare = S(b_value=1000.0, series_b_values=(1000.0,))
    for s in (ge_t1, bold, bare):
        assert not classify_summary(s).label.startswith("DWI")


def test_fs_inside_fse_is_not_fat_suppression() -> None:
    assert rules.FAT_SUPPRESSED(S(series_description="Ax T2 FSE", scan_options=("FAST_GEMS", "EDR_GEMS"))) is None
    assert rules.FAT_SUPPRESSED(S(series_description="Ax T2 FSE FS")) is not None
    assert rules.FAT_SUPPRESSED(S(scan_options=("FSE",))) is None
    assert classify_summary(S(**T2, series_description="T2 FSE")).label == "T2WI"


def test_dwi_labels_and_threshold() -> None:
    high = S(image_type=("ORIGINAL", "PRIMARY", "DIFFUSION"), b_value=600.0, series_b_values=(600.0,))
    assert classify_summary(high).label == "DWI_high"
    assert classify_summary(high, b_threshold=700).label == "DWI_low"
    low = S(image_type=("ORIGINAL", "PRIMARY", "DIFFUSION"), b_value=600.0, series_b_values=(600.0, 1500.0))
    assert classify_summary(low, b_threshold=100).label == "DWI_low"  # lowest of the acquisition wins
    tracew = S(image_type=("DERIVED", "PRIMARY", "DIFFUSION", "TRACEW"), b_value=2500.0, series_b_values=(2500.0,))
    c = classify_summary(tracew)
    assert c.label == "DWI_high" and "2500" in c.evidence and c.source == "header"


def test_rules_markdown_lists_every_rule() -> None:
    md = rules.rules_markdown()
    for r in rules.RULES:
        assert re.search(rf"`{re.escape(r.name)}`", md)
    assert "DWI_low / DWI_high" in md


def test_docs_rule_table_in_sync() -> None:
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "sorting.md"
    text = doc.read_text(encoding="utf-8")
    start = text.index("<!-- rules-table:start -->") + len("<!-- rules-table:start -->")
    end = text.index("<!-- rules-table:end -->")
    assert text[start:end].strip() == rules.rules_markdown().strip(), "regenerate with rules.rules_markdown()"
