"""View parsing: names, tokens, tricky negatives, tag precedence, view sets."""
from __future__ import annotations

import pytest

from breastlab.dicom.records import InstanceRecord
from breastlab.multiview.views import (
    View,
    parse_view,
    parse_view_parts,
    resolve_view_set,
    strip_view_text,
    view_from_record,
)

POSITIVE = [
    ("L-CC", "LCC"), ("LCC", "LCC"), ("LEFT_CC", "LCC"), ("R MLO", "RMLO"), ("RMLO", "RMLO"),
    ("lt cc", "LCC"), ("Right Mediolateral Oblique", "RMLO"), ("L_MLO_2", "LMLO"),
    ("/data/patient7/R_CC.dcm", "RCC"), ("C:\\scans\\p1\\LMLO.png", "LMLO"),
    ("RightMLO", "RMLO"), ("CC R", "RCC"), ("MLOL", "LMLO"), ("rcc1", "RCC"),
    ("Mass-Training_P_00001_LEFT_CC", "LCC"), ("left/CC.png", "LCC"), ("RIGHT/mlo/img1.png", "RMLO"),
    ("BSGI L-CC", "LCC"), ("Tc99m RIGHT MLO", "RMLO"), ("LEFT_MLO 10min", "LMLO"),
    ("L Craniocaudal", "LCC"), ("medio-lateral oblique, left", "LMLO"), ("R XCCL", "RXCCL"),
    ("L medio-lateral", "LML"), ("R LM", "RLM"), ("R OBL", "RMLO"), ("rt. cc", "RCC"),
    ("patient_12_L_CC.png", "LCC"), ("R.MLO", "RMLO"),
]

NEGATIVE = [
    "CCLIP", "ACCESSION", "COMLOG", "LEFTOVER", "CALCIUM", "BSGI", "IM0001.dcm", "",
    "cranio-caudal",          # projection without laterality
    "BSGI L 10 min",          # laterality without projection
    "LCC RCC",                # two lateralities: ambiguous
    "L CC MLO",               # two projections: ambiguous
    "RCCID-X2",               # one unknown token, not a view
    "/data/LCC_study/a/b/img.dcm",  # view only in a far ancestor folder
    "L CCD", "MLOOP", "SMLO", "ACC L",
]


@pytest.mark.parametrize(("text", "expected"), POSITIVE)
def test_parse_view_positive(text: str, expected: str) -> None:
    view = parse_view(text)
    assert view is not None, text
    assert view.name == expected


@pytest.mark.parametrize("text", NEGATIVE)
def test_parse_view_negative(text: str) -> None:
    assert parse_view(text) is None


def test_parts_and_strip() -> None:
    assert parse_view_parts("cranio-caudal") == (None, "CC")
    assert parse_view_parts("medial-lateral oblique") == (None, "MLO")
    assert parse_view_parts("BSGI L") == ("L", None)
    assert strip_view_text("Mass-Training_P_00001_LEFT_CC") == "MASS TRAINING P 00001"


def test_view_object() -> None:
    v = View.from_name("lmlo")
    assert (v.laterality, v.projection, v.name, str(v.contralateral())) == ("L", "MLO", "LMLO", "RMLO")
    with pytest.raises(ValueError):
        View("B", "CC")
    with pytest.raises(ValueError):
        View.from_name("CCLIP")


def rec(**kw) -> InstanceRecord:
    kw.setdefault("path", "/data/case1/IM0001.dcm")
    return InstanceRecord(**kw)


def test_tags_take_precedence_over_names() -> None:
    r = rec(laterality="L", view_position="CC", series_description="R MLO",
            path="/data/case1/RMLO.dcm")
    assert view_from_record(r) == (View("L", "CC"), "tags")


def test_view_code_meaning_used_when_view_position_empty() -> None:
    r = rec(laterality="R", view_code="medio-lateral oblique")
    assert view_from_record(r) == (View("R", "MLO"), "tags")
    r = rec(laterality="L", view_code="cranio-caudal exaggerated laterally")
    assert view_from_record(r)[0] == View("L", "XCCL")


def test_tag_fills_in_with_names() -> None:
    r = rec(laterality="R", series_description="BSGI CC 10 min")
    assert view_from_record(r) == (View("R", "CC"), "tags+series_description")
    r = rec(view_position="MLO", path="/data/case1/left/IM1.dcm")
    assert view_from_record(r) == (View("L", "MLO"), "tags+path")


@pytest.mark.parametrize(("field", "source"), [
    ("series_description", "series_description"), ("protocol_name", "protocol_name"),
    ("patient_id", "patient_id"),
])
def test_name_fallback_order(field: str, source: str) -> None:
    r = rec(**{field: "LEFT_MLO"}, path="/data/x/RCC.dcm")
    assert view_from_record(r) == (View("L", "MLO"), source)


def test_path_is_last_resort_and_none() -> None:
    r = rec(series_description="BSGI", protocol_name="BREAST", path="/data/p1/R-CC.dcm")
    assert view_from_record(r) == (View("R", "CC"), "path")
    assert view_from_record(rec(series_description="ACCESSION CCLIP")) == (None, "none")
    # a non-breast laterality value is ignored
    assert view_from_record(rec(laterality="B", view_position="CC"))[0] is None


def test_view_sets() -> None:
    assert resolve_view_set(None).views == ("LCC", "RCC", "LMLO", "RMLO")
    assert resolve_view_set("mammo4").views == resolve_view_set("bsgi4").views
    assert resolve_view_set("L-CC, R CC").views == ("LCC", "RCC")
    single = resolve_view_set("single")
    assert single.any_image and single.slot(None) == "image"
    four = resolve_view_set("bsgi4")
    assert four.slot(View("L", "CC")) == "LCC" and four.slot(View("L", "ML")) is None
    with pytest.raises(ValueError, match="not a view"):
        resolve_view_set("LCC,CCLIP")
    with pytest.raises(ValueError, match="duplicate"):
        resolve_view_set("LCC,L-CC")
