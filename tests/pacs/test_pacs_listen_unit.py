"""``breastlab listen`` storage rules without a network: never overwrite, refuse unknown addresses."""
from __future__ import annotations

from types import SimpleNamespace

from breastlab.pacs.listen import NOT_AUTHORISED, SUCCESS, Listener, ListenConfig


def _event(address: str, sop: str = "1.2.3.4") -> SimpleNamespace:
    ds = SimpleNamespace(get=lambda key, default="": {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.1",
                                                      "SOPInstanceUID": sop, "SOPClassUID": "1.2.840.10008.5.1.4.1.1.4"}
                         .get(key, default))
    return SimpleNamespace(assoc=SimpleNamespace(requestor=SimpleNamespace(address=address, ae_title="SENDER")),
                           dataset=ds, request=SimpleNamespace(AffectedSOPInstanceUID=sop,
                                                               AffectedSOPClassUID="1.2.840.10008.5.1.4.1.1.4"),
                           encoded_dataset=lambda: b"DICM-bytes-" + sop.encode())


def test_store_never_overwrites_and_refuses_unknown_addresses(tmp_path) -> None:  # noqa: ANN001
    listener = Listener(ListenConfig(store_dir=tmp_path / "store", out_dir=tmp_path / "out",
                                     allowed_hosts=("127.0.0.1",)))
    assert listener.handle_store(_event("192.0.2.7")) == NOT_AUTHORISED  # TEST-NET address: refused
    assert not (tmp_path / "store").exists()
    assert listener.handle_store(_event("127.0.0.1")) == SUCCESS
    path = tmp_path / "store" / "1.2.3" / "1.2.3.1" / "1.2.3.4.dcm"
    assert path.read_bytes() == b"DICM-bytes-1.2.3.4"
    assert listener.store("1.2.3", "1.2.3.1", "1.2.3.4", b"other bytes") is False  # duplicate: kept
    assert path.read_bytes() == b"DICM-bytes-1.2.3.4"
    assert listener.handle_store(_event("127.0.0.1")) == SUCCESS and listener.n_duplicates == 1
    assert listener.n_stored == 1 and not list((tmp_path / "store").rglob("*.part"))
    # hostile UIDs never escape the store folder
    assert listener.store("../../etc", "x/y", "../z", b"data") is True
    assert all(tmp_path / "store" in p.parents for p in (tmp_path / "store").rglob("*.dcm"))


def test_recover_removes_parts_and_requeues_unsorted_studies(tmp_path) -> None:  # noqa: ANN001
    store = tmp_path / "store" / "1.2.3" / "1.2.3.1"
    store.mkdir(parents=True)
    (store / "1.2.3.4.dcm").write_bytes(b"x")
    (store / ".1.2.3.5.dcm.abc.part").write_bytes(b"half")
    listener = Listener(ListenConfig(store_dir=tmp_path / "store", out_dir=tmp_path / "out", quiet_seconds=0))
    listener.recover()
    assert not list(store.glob("*.part"))
    assert list(listener.studies) == ["1.2.3"] and listener.due(float("inf")) == ["1.2.3"]
