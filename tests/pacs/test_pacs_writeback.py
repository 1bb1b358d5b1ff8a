"""Write-back once (issue 17): an unchanged result writes nothing, a changed one replaces its SR.

Against the session's real Orthanc, over DICOMweb (``pacs sort --write-back``) and DIMSE (the
listener's write-back function), counting the SR instances of our result series in the study.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from cli_helpers import invoke

from breastlab.core.labels import Label
from breastlab.pacs.sr import SORT_SERIES_NUMBER


def study_of(loaded, fragment: str) -> str:  # noqa: ANN001
    """StudyInstanceUID of the first loaded file whose path holds ``fragment`` (skips when none)."""
    import pydicom

    path = next((p for p in loaded.files if fragment in str(p)), None)
    if path is None:
        pytest.skip(f"no {fragment} data in the test PACS")
    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


def result_srs(pacs, study: str) -> list:  # noqa: ANN001
    from breastlab.pacs.writeback import prior_results

    return prior_results(pacs, study, SORT_SERIES_NUMBER)


def dicomweb(loaded):  # noqa: ANN001, ANN201
    from breastlab.pacs.address import parse_pacs_url
    from breastlab.pacs.dicomweb import DicomWebPacs

    return DicomWebPacs(parse_pacs_url(loaded.dicomweb_url))


def sort_with_write_back(url: str, study: str, out: Path) -> tuple[str, list[dict]]:
    got = invoke(["pacs", "sort", url, "--study", study, "--out", out, "--write-back", "--no-progress"])
    written = json.loads((out / "provenance.json").read_text())["summary"]["written_back"]
    return got.output, written


def test_identical_runs_leave_one_sr_and_a_change_replaces_it(pacs_env, tmp_path) -> None:  # noqa: ANN001
    pacs = dicomweb(pacs_env)
    study = study_of(pacs_env, "dcmqa/ge/")
    before = len(result_srs(pacs, study))
    out1, w1 = sort_with_write_back(pacs_env.dicomweb_url, study, tmp_path / "a")
    out2, w2 = sort_with_write_back(pacs_env.dicomweb_url, study, tmp_path / "b")
    assert [w["action"] for w in w1] in (["new"], ["replaced"])
    assert [w["action"] for w in w2] == ["unchanged"] and "unchanged: nothing written" in out2
    assert w2[0]["sop_instance_uid"] == w1[0]["sop_instance_uid"]
    srs = result_srs(pacs, study)
    assert len(srs) == before + 1, "two identical runs must leave one SR"

    # a changed result: a new SR in the same series, referencing the one it replaces
    from breastlab.pacs.dicomweb import StudyFilter
    from breastlab.pacs.sort import pacs_sort
    from breastlab.pacs.writeback import write_back_sorts

    sorted_ = pacs_sort(pacs_env.dicomweb_url, None, filt=StudyFilter(study_uids=(study,)), progress=False)
    changed = [replace(sorted_.sets[0], classification=replace(sorted_.sets[0].classification, label=Label.OTHER)),
               *sorted_.sets[1:]]
    header = pacs.study_records(study)[2][0]
    (w3,) = write_back_sorts(pacs, changed, {study: header})
    assert w3["action"] == "replaced" and w3["replaces"] == w1[0]["sop_instance_uid"]
    sr = pacs.client.retrieve_instance(study, w3["series_uid"], w3["sop_instance_uid"])
    refs = [i.ReferencedSOPInstanceUID for s in sr.PredecessorDocumentsSequence
            for se in s.ReferencedSeriesSequence for i in se.ReferencedSOPSequence]
    assert refs == [w1[0]["sop_instance_uid"]] and w3["series_uid"] == w1[0]["series_uid"]
    assert int(sr.InstanceNumber) == max(p.instance_number for p in srs) + 1
    # back to the first result: it replaces the changed one (never "unchanged" against an older SR)
    _, w4 = sort_with_write_back(pacs_env.dicomweb_url, study, tmp_path / "c")
    assert w4[0]["action"] == "replaced" and w4[0]["replaces"] == w3["sop_instance_uid"]
    _, w5 = sort_with_write_back(pacs_env.dicomweb_url, study, tmp_path / "d")
    assert w5[0]["action"] == "unchanged"
    assert len(result_srs(pacs, study)) == before + 3


def test_listener_write_back_is_idempotent_over_dimse(pacs_env, tmp_path, caplog) -> None:  # noqa: ANN001
    """The function the listener's worker calls, twice on the same sort, against Orthanc's DIMSE port."""
    import logging

    from breastlab.mri.sorter import sort_exam
    from breastlab.pacs.listen import ListenConfig, write_back
    from pacs.conftest import OUR_AET

    files = [p for p in pacs_env.files if "siemens_xa30" in str(p)]
    if not files:
        pytest.skip("no siemens_xa30 data in the test PACS")
    result = sort_exam(files, workers=1, progress=False)
    config = ListenConfig(store_dir=tmp_path / "s", out_dir=tmp_path / "o", write_back=pacs_env.dimse_url,
                          calling_aet=OUR_AET, timeout=60.0)
    with caplog.at_level(logging.INFO, logger="breastlab.pacs"):
        first = write_back(config, result.sets, files)
        second = write_back(config, result.sets, files)
    assert first[0]["action"] in ("new", "replaced") and first[0]["instances"] == [first[0]["sop_instance_uid"]]
    assert second[0]["action"] == "unchanged" and second[0]["instances"] == []
    assert "unchanged" in caplog.text and "nothing written" in caplog.text
    study = str(result.sets[0].image_set.study_uid)
    from breastlab.pacs.dimse import DimsePacs

    dimse = DimsePacs.from_url(pacs_env.dimse_url, calling_aet=OUR_AET)
    uids = [p.sop_uid for p in result_srs(dimse, study)]
    assert uids.count(first[0]["sop_instance_uid"]) == 1
