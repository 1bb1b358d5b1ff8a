"""`listen` under hostile C-STORE payloads: refusals with failure statuses, bounded memory, a size limit,
restart recovery whatever the StudyInstanceUID."""
from __future__ import annotations

import copy
from pathlib import Path

import pydicom
import pytest
from conftest import require
from pacs.fuzz_cstore import big_element_file, payload_file, peak_rss_mib, send_files
from pacs.listen_helpers import ListenProcess

from breastlab.pacs.listen import Listener, ListenConfig

CANNOT_UNDERSTAND, DOES_NOT_MATCH, OUT_OF_RESOURCES = 0xC000, 0xA900, 0xA700  # PS3.4 C-STORE failure statuses
REFUSED = {CANNOT_UNDERSTAND, DOES_NOT_MATCH, OUT_OF_RESOURCES}


@pytest.fixture(scope="module")
def good_ds(shared_data) -> pydicom.Dataset:
    folder = require(shared_data / "dcmqa" / "ge" / "In" / "01_Ax_DWI_TENSOR_R2")
    return pydicom.dcmread(sorted(folder.iterdir())[0])


def stored(store: Path) -> list[Path]:
    return sorted(p for p in store.rglob("*.dcm") if ".incoming" not in p.parts)


def test_non_dicom_payloads_are_refused_and_not_stored(good_ds, tmp_path):
    files = [payload_file(tmp_path, data)[0] for data in (b"%PDF-1.4 hello", b"\x00" * 64, b"GIF89a" + bytes(100))]
    other = copy.deepcopy(good_ds)  # a valid data set, but not the instance the request names
    from pacs.fuzz_cstore import encoded
    files.append(payload_file(tmp_path, encoded(other), sop="1.2.3.999")[0])
    good, sop = payload_file(tmp_path, encoded(good_ds), sop=str(good_ds.SOPInstanceUID), sop_class=str(good_ds.SOPClassUID))
    listener = ListenProcess(tmp_path / "store", tmp_path / "out").start()
    try:
        statuses = send_files(listener.port, [*files, good])
    finally:
        listener.stop()
    assert all(s in REFUSED for s in statuses[:-1]), [hex(s or 0) for s in statuses]
    assert statuses[-1] == 0
    assert [pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in stored(tmp_path / "store")] == [sop]
    assert "Traceback" not in listener.log_text()


def test_an_instance_over_the_limit_is_refused(good_ds, tmp_path):
    big, _ = big_element_file(tmp_path, good_ds, 4 << 20)
    listener = ListenProcess(tmp_path / "store", tmp_path / "out", "--max-instance-mb", "1").start()
    try:
        statuses = send_files(listener.port, [big])
    finally:
        listener.stop()
    assert statuses == [OUT_OF_RESOURCES]
    assert not stored(tmp_path / "store")


@pytest.mark.slow
def test_a_large_element_is_received_in_bounded_memory(good_ds, tmp_path):
    big, sop = big_element_file(tmp_path, good_ds, 400 << 20)
    listener = ListenProcess(tmp_path / "store", tmp_path / "out", quiet=600).start()
    try:
        before = peak_rss_mib(listener.proc.pid)
        statuses = send_files(listener.port, [big], timeout=300)
        after = peak_rss_mib(listener.proc.pid)
    finally:
        listener.stop()
    print(f"\nlisten peak RSS before {before:.0f} MiB, after a 400 MiB element {after:.0f} MiB")
    assert statuses == [0]
    (path,) = stored(tmp_path / "store")
    got = pydicom.dcmread(path, defer_size=1024, stop_before_pixels=True)
    assert len(got[0x00111000].value) == 400 << 20 and str(got.SOPInstanceUID) == sop  # nothing lost
    assert after - before < 100, (before, after)  # 400 MiB received; held in memory before: > 800 MiB


def test_restart_recovers_a_study_whose_uid_is_not_a_plain_uid(good_ds, tmp_path):
    ds = copy.deepcopy(good_ds)
    ds.StudyInstanceUID = "STUDY/not a uid"
    from pacs.fuzz_cstore import encoded
    path, sop = payload_file(tmp_path, encoded(ds), sop=str(ds.SOPInstanceUID), sop_class=str(ds.SOPClassUID))
    config = ListenConfig(store_dir=tmp_path / "store", out_dir=tmp_path / "out", quiet_seconds=0)
    first = Listener(config)
    assert first.store(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), sop, path.read_bytes())
    # the listener stops before sorting; a new one starts
    again = Listener(config)
    again.recover()
    (key,) = again.due(float("inf"))
    from breastlab.pacs.listen import sort_study
    info = sort_study(config, key)
    assert info["n_files"] == 1 and info["n_images"] == 1
    again.recover()  # sorted as stored: not queued again
    assert again.due(float("inf")) == [key] or not again.studies[key].dirty
