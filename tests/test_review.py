"""The review page without a browser: thumbnails, placeholders, no patient data, the truth table
(reader/writer, matching), the agreement statistics, ``breastlab review OUT`` on a published sort."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from breastlab.core.labels import Label
from breastlab.review import thumbs
from breastlab.review.agreement import agreement, wilson
from breastlab.review.truth import (TruthRow, TruthTableError, decode_images, encode_images, match_truth,
                                    read_truth, write_truth)
from cli_helpers import invoke


@pytest.fixture(scope="module")
def sorted_exam(tmp_path_factory) -> tuple[Path, Path]:
    from breastlab.phantom.mri import write_mri_phantom

    root = tmp_path_factory.mktemp("review")
    exam = root / "exam"
    write_mri_phantom(exam, vendors=("Siemens",), n_slices=4, matrix=32)
    invoke(["sort", exam, "--out", root / "out", "--no-progress", "-j", "1", "--keep-phi"])
    return exam, root / "out"


def test_truth_table_round_trip(tmp_path: Path) -> None:
    rows = [TruthRow("s1", "1.2.3", (("1.2.3.4", None), ("1.2.3.5", None)), Label.T2WI, "T1", "corrected",
                     'note, with "quotes"'),
            TruthRow("s2", "1.2.9", tuple(("1.2.9.1", f) for f in (0, 1, 2, 5)), Label.ADC)]
    write_truth(tmp_path / "t.csv", rows)
    back = read_truth(tmp_path / "t.csv")
    assert [(r.set_id, r.series_uid, r.images, r.label, r.note) for r in back] == \
        [(r.set_id, r.series_uid, r.images, r.label, r.note) for r in rows]
    assert encode_images(rows[1].images) == ("1.2.9.1", "0-2 5")
    assert decode_images("1.2.9.1", "0-2 5") == rows[1].images


@pytest.mark.parametrize("text, message", [
    ("a,b\n1,2\n", "not a truth table"),
    ("set_id,label\ns1,NOPE\n", "line 2: 'NOPE' is not a label"),
    ("set_id,series_uid,label,frames,sop_instance_uids\ns1,1.2,ADC,x-y,1.2.3\n", "frames"),
])
def test_bad_truth_tables_fail_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(TruthTableError, match=message) as info:
        read_truth(tmp_path / "t.csv")
    assert "\n" not in str(info.value)


def test_matching_by_id_then_images_then_series() -> None:
    sets = [{"set_id": "a", "series_uid": "S", "label": Label.DWI_LOW},
            {"set_id": "b", "series_uid": "S", "label": Label.DWI_HIGH},
            {"set_id": "c", "series_uid": "T", "label": Label.T1}]
    images = {"a": (("u1", None), ("u2", None)), "b": (("u3", None), ("u4", None)), "c": (("u9", None),)}
    rows = [TruthRow("old-id", "S", (("u3", None),), Label.DWI_HIGH),  # renamed set: found by its images
            TruthRow("", "T", (), Label.T2WI),  # only set of its series
            TruthRow("a", "S", (), Label.DWI_LOW),
            TruthRow("x", "S", (("zz", None),), Label.ADC),  # shares no image
            TruthRow("y", "Q", (), Label.ADC)]  # series not in the sort
    m = match_truth(rows, sets, images)
    assert m.pairs == [("b", Label.DWI_HIGH, Label.DWI_HIGH), ("c", Label.T2WI, Label.T1),
                       ("a", Label.DWI_LOW, Label.DWI_LOW)]
    assert [why for _, why in m.unmatched] == ["no set shares its images", "series not in this sort"]


def test_agreement_matches_the_wilson_interval() -> None:
    lo, hi = wilson(8, 10)
    assert (lo, hi) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # Wilson 95% for 8/10
    pairs = [(Label.T2WI, Label.T2WI)] * 8 + [(Label.T2WI, Label.T1)] * 2 + [(Label.ADC, Label.ADC)]
    a = agreement(pairs)
    assert a["per_label"][Label.T2WI]["ci_low"] == pytest.approx(0.4902, abs=1e-4)
    assert a["overall"] == {"n": 11, "correct": 9, "accuracy": round(9 / 11, 4), **dict(zip(
        ("ci_low", "ci_high"), wilson(9, 11)))}
    assert a["confusion"] == {Label.T2WI: {Label.T2WI: 8, Label.T1: 2}, Label.ADC: {Label.ADC: 1}}
    assert a["labels"] == [Label.T2WI, Label.ADC, Label.T1]  # output order


def test_thumbnail_of_an_unreadable_file_is_a_placeholder_with_a_reason(tmp_path: Path) -> None:
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"garbage")
    t = thumbs.render_set("s", [thumbs.SliceRef(str(bad))])
    assert t.images == [] and t.reason
    gone = thumbs.render_set("s", [thumbs.SliceRef(str(tmp_path / "missing.dcm"))])
    assert gone.reason == "file no longer readable"
    assert thumbs.render_set("s", []).reason.startswith("no images")


def test_plan_takes_the_middle_slice_or_one_per_b_value() -> None:
    rows = [{"path": f"f{i}", "instance_number": str(i), "b_value": ""} for i in range(1, 10)]
    assert [r.path for r in thumbs.plan_slices(rows)] == ["f5"]
    dwi = [{"path": f"b{b}_{i}", "instance_number": str(i + 10 * k), "b_value": str(b)}
           for k, b in enumerate((0, 800)) for i in range(4)]
    plan = thumbs.plan_slices(dwi)
    assert [(r.path, r.caption) for r in plan] == [("b0_2", "b=0"), ("b800_2", "b=800")]


def test_review_command_page_has_thumbnails_and_no_patient_data(sorted_exam) -> None:
    from breastlab.core.publish import verify_outputs

    exam, out = sorted_exam
    series = json.loads((out / "series.json").read_text())
    assert series[0].get("patient_name")  # --keep-phi: the sort outputs hold it, the page must not
    res = invoke(["review", out, "-j", "1"])
    assert "review page" in res.output
    html = (out / "review.html").read_text()
    data = json.loads(html.split('id="review-data" type="application/json">')[1].split("</script>")[0])
    assert len(data["sets"]) == len(series)
    assert all(s.get("img") and s["img"][0][0].startswith("data:image/") for s in data["sets"])
    names = {str(r["patient_name"]) for r in series} | {str(r["patient_id"]) for r in series}
    assert not [n for n in names if n and n in html]
    assert str(exam) not in html  # no file paths
    assert "http://" not in html and "https://" not in html and "src=\"//" not in html  # loads nothing
    assert verify_outputs(out) == []  # the manifest knows review.html


def test_review_of_a_folder_that_is_not_a_sort_fails_in_one_line(tmp_path: Path) -> None:
    res = invoke(["review", tmp_path], ok=False)
    assert res.exit_code == 2 and "no series.json" in res.output
    (tmp_path / "series.json").write_text("[]")
    (tmp_path / "t.csv").write_text("x\n")
    res = invoke(["review", tmp_path, "--truth", tmp_path / "t.csv"], ok=False)
    assert res.exit_code == 2 and "not a truth table" in res.output


def test_sort_with_a_bad_truth_table_fails_before_any_work(sorted_exam, tmp_path: Path) -> None:
    exam, _ = sorted_exam
    (tmp_path / "t.csv").write_text("set_id,label\ns1,T3\n")
    res = invoke(["sort", exam, "--out", tmp_path / "out", "--truth", tmp_path / "t.csv", "--no-progress"], ok=False)
    assert res.exit_code == 2 and "line 2: 'T3' is not a label" in res.output
    assert not (tmp_path / "out").exists()


def test_sort_review_is_part_of_the_published_set(sorted_exam, tmp_path: Path) -> None:
    from breastlab.core.publish import verify_outputs

    exam, _ = sorted_exam
    invoke(["sort", exam, "--out", tmp_path / "out", "--review", "--no-progress", "-j", "1"])
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    provenance = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert "review.html" in manifest["files"] and verify_outputs(tmp_path / "out") == []
    assert provenance["review"]["sets"] == len(json.loads((tmp_path / "out" / "series.json").read_text()))
