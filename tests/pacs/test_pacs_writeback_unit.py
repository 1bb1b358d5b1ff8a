"""``breastlab.pacs.writeback.write_once`` against an in-memory PACS (no Orthanc needed)."""
from __future__ import annotations

import logging
from types import SimpleNamespace

from pydicom import Dataset

from breastlab.pacs.writeback import Placement, digest, sop_uid_for, write_once

STUDY = "1.2.826.0.1.3680043.8.498.1"


class MemoryPacs:
    """Keeps stored datasets; answers ``find_instances`` as a DIMSE peer would."""

    address = SimpleNamespace(url="dicom://MEM@127.0.0.1:104")

    def __init__(self) -> None:
        self.stored: list[Dataset] = []

    def store(self, datasets) -> None:  # noqa: ANN001
        known = {str(d.SOPInstanceUID) for d in self.stored}
        self.stored += [d for d in datasets if str(d.SOPInstanceUID) not in known]

    def find_instances(self, study_uid: str, *, modality: str, series_number: int) -> list[Dataset]:
        return [d for d in self.stored if d.StudyInstanceUID == study_uid and d.Modality == modality
                and int(d.SeriesNumber) == series_number]


def build(place: Placement) -> list[Dataset]:
    ds = Dataset()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = STUDY, place.series_uid, place.sop_uid
    ds.SOPClassUID, ds.Modality, ds.SeriesNumber = "1.2.840.10008.5.1.4.1.1.88.33", "SR", 9901
    ds.InstanceNumber = place.instance_number
    ds.ImageComments = ",".join(p.SOPInstanceUID for p in place.previous)  # stands for the predecessors
    return [ds]


def test_unchanged_writes_nothing_and_a_change_replaces(caplog) -> None:  # noqa: ANN001
    pacs = MemoryPacs()
    a, b = digest({"labels": ["DCE_pre"]}), digest({"labels": ["OTHER"]})
    with caplog.at_level(logging.INFO, logger="breastlab.pacs"):
        first = write_once(pacs, STUDY, 9901, a, build)
        again = write_once(pacs, STUDY, 9901, a, build)
    assert first["action"] == "new" and first["sop_instance_uid"] == sop_uid_for(STUDY, 9901, a, 1)
    assert again["action"] == "unchanged" and again["instances"] == [] and len(pacs.stored) == 1
    assert "unchanged" in caplog.text and "nothing written" in caplog.text
    changed = write_once(pacs, STUDY, 9901, b, build)
    assert changed["action"] == "replaced" and changed["replaces"] == first["sop_instance_uid"]
    new = pacs.stored[-1]
    assert new.ImageComments == first["sop_instance_uid"] and new.InstanceNumber == 2
    assert new.SeriesInstanceUID == pacs.stored[0].SeriesInstanceUID  # one result series per study
    back = write_once(pacs, STUDY, 9901, a, build)  # back to the first result: replaces the latest
    assert back["action"] == "replaced" and back["replaces"] == changed["sop_instance_uid"]
    assert write_once(pacs, STUDY, 9901, a, build)["action"] == "unchanged"
    assert len(pacs.stored) == 3 == len({str(d.SOPInstanceUID) for d in pacs.stored})


def test_uids_are_stable_and_valid() -> None:
    uid = sop_uid_for(STUDY, 9901, "x" * 64, 1)
    assert uid == sop_uid_for(STUDY, 9901, "x" * 64, 1) != sop_uid_for(STUDY, 9901, "x" * 64, 2)
    assert uid.startswith("2.25.") and len(uid) <= 64 and all(p.isdigit() for p in uid.split("."))
