"""Fuzz suite, new surfaces: archives, DICOM JSON from a DICOMweb server, C-STORE payloads to ``listen``.

Fixed seed, time-bounded, one test per surface. Asserts: no traceback (no exception but the
surface's own one-line error), no hang, nothing lost (every archive member in instances.csv or
skipped.csv; every acknowledged C-STORE stored; every good instance's records), bounded memory,
and the good input's outputs equal to a clean run. Counts are printed (``pytest -s``, lines starting
``FUZZ``) and written to ``fuzz-<surface>.json`` in the test's folder.
"""
from __future__ import annotations

import csv
import io
import json
import os
import random
import resource
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from conftest import require
from fuzz_archives import corrupt_deflate_zip, good_members, link_tar, mutate, nested_zip, overlapping_zip

SEED = 18
CASE_LIMIT_S = 60  # one case longer than this is a hang
RSS_LIMIT_MB = 1024

_MEASURE = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(sys.argv[1:])\n"
    "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(r.returncode)\n"
)


def _report(tmp_path: Path, surface: str, counts: dict) -> None:
    print(f"\nFUZZ {surface} {json.dumps(counts)}")
    (tmp_path / f"fuzz-{surface}.json").write_text(json.dumps(counts, indent=2) + "\n")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as fh:
        return list(csv.DictReader(fh))


def _sort(inputs: Path, out: Path) -> tuple[subprocess.CompletedProcess, float]:
    cli = [sys.executable, "-m", "breastlab.cli.main", "sort", str(inputs), "--out", str(out), "-j", "2",
           "--no-progress"]
    began = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _MEASURE, *cli], capture_output=True, text=True, errors="replace",
                          timeout=600, env={**os.environ, "COLUMNS": "200"})
    peak = int(next(ln.split()[1] for ln in proc.stderr.splitlines() if ln.startswith("PEAK_RSS_KB")))
    return proc, peak / 1024, time.monotonic() - began


def _pack(kind: str, members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.slow
def test_fuzz_archives(shared_data, tmp_path):
    from breastlab.dicom.archives import read_archive

    good = good_members(require(shared_data / "dcmqa" / "ge" / "In" / "01_Ax_DWI_TENSOR_R2"))
    rng = random.Random(SEED)
    tree = tmp_path / "in"
    tree.mkdir()
    (tree / "good.zip").write_bytes(_pack("zip", good))
    packed = {kind: _pack(kind, good) for kind in ("zip", "tar.gz")}
    for i in range(60):
        kind = ("zip", "tar.gz")[i % 2]
        (tree / f"mutant{i:03d}.{kind}").write_bytes(mutate(packed[kind], rng))
    corrupt_deflate_zip(tree / "deflate.zip", good)
    link_tar(tree / "links.tar", good)
    overlapping_zip(tree / "overlap.zip", n=300, size=16 << 20)
    nested_zip(tree / "nested.zip", good)
    (tree / "empty.zip").write_bytes(b"")
    (tree / "junk.tar.gz").write_bytes(rng.randbytes(5000))
    archives = sorted(tree.iterdir())
    crashes, hangs, longest, listed = 0, 0, 0.0, {}
    for path in archives:  # the reader alone: it must never raise, whatever the bytes
        began = time.monotonic()
        try:
            listed[str(path)] = [m for m, _ in read_archive(str(path))]
        except Exception:  # noqa: BLE001 - counted: a crash
            crashes += 1
        took = time.monotonic() - began
        longest, hangs = max(longest, took), hangs + (took > CASE_LIMIT_S)
    proc, peak, wall = _sort(tree, tmp_path / "out")
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
    seen = {r["path"] for r in _rows(tmp_path / "out" / "instances.csv")} | \
        {r["path"] for r in _rows(tmp_path / "out" / "skipped.csv")}
    lost = sorted(m for members in listed.values() for m in members if m not in seen)
    errors = [r for r in _rows(tmp_path / "out" / "skipped.csv") if r["reason"] == "error"]
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    (clean_dir / "good.zip").write_bytes((tree / "good.zip").read_bytes())
    clean, _, _ = _sort(clean_dir, tmp_path / "clean-out")
    assert clean.returncode == 0

    def good_view(out: Path) -> list[tuple]:  # by SOP UID: identical copies in mutants may be the ones kept
        rows = _rows(out / "instances.csv")
        return sorted((r["sop_instance_uid"], r["label"], r["set_id"], r["b_value"]) for r in rows
                      if r["sop_instance_uid"] in good_sops)

    good_sops = {r["sop_instance_uid"] for r in _rows(tmp_path / "clean-out" / "instances.csv")}

    counts = {"cases": len(archives), "members": sum(map(len, listed.values())), "crashes": crashes + len(errors),
              "hangs": hangs, "entries_lost": len(lost), "peak_rss_mb": round(peak), "longest_case_s": round(longest, 2),
              "sort_wall_s": round(wall, 1)}
    _report(tmp_path, "archives", counts)
    assert crashes == 0 and not errors and hangs == 0 and not lost, (lost[:5], errors[:3])
    assert peak < RSS_LIMIT_MB
    assert good_sops and good_view(tmp_path / "out") == good_view(tmp_path / "clean-out")


def _json_mutant(items: list, rng: random.Random) -> bytes:
    """One structural damage to a WADO-RS metadata answer (valid JSON of the wrong shape, or broken text)."""
    import copy

    items = copy.deepcopy(items)
    junk = [None, 5, -1.5, True, "x", [], {}, [[1]], {"vr": "SQ"}, {"Value": 3}, {"vr": "ZZ", "Value": ["a"]},
            {"vr": "SQ", "Value": [5]}, {"vr": "PN", "Value": [{"Alphabetic": []}]}, {"vr": "OB", "InlineBinary": 7},
            {"vr": "DS", "Value": ["not a number"]}, {"vr": "US", "Value": [70000]}, {"vr": "UI", "Value": [None]}]
    kind = rng.randrange(7)
    if kind == 0 and items:  # an element's value replaced by junk
        item = rng.choice(items)
        key = rng.choice(sorted(item))
        item[key] = rng.choice(junk)
    elif kind == 1 and items:  # a Value list replaced
        item = rng.choice(items)
        key = rng.choice(sorted(item))
        if isinstance(item[key], dict):
            item[key]["Value"] = rng.choice(junk)
    elif kind == 2:  # an item replaced
        items[rng.randrange(len(items))] = rng.choice(junk)
    elif kind == 3:  # deep nesting
        depth = rng.choice([20, 200, 5000, 100_000])
        return b"[" * depth + b"]" * depth
    elif kind == 4:  # nested sequences
        sq: dict = {}
        for _ in range(rng.choice([10, 17, 60, 250])):
            sq = {"00081115": {"vr": "SQ", "Value": [sq]}}
        items[0].update(sq)
    elif kind == 5:  # cut text
        text = json.dumps(items).encode()
        return text[: rng.randrange(1, len(text))]
    else:  # a key renamed
        item = rng.choice(items)
        key = rng.choice(sorted(item))
        item[rng.choice(["zz", "0008", "GGGGGGGG", "00080060x"])] = item.pop(key)
    return json.dumps(items).encode()


@pytest.mark.slow
def test_fuzz_dicom_json_from_a_dicomweb_server(shared_data, tmp_path, monkeypatch):
    from pacs.fake_dicomweb import FakeDicomWeb, metadata_of, qido

    from breastlab.pacs.errors import PacsError
    from breastlab.pacs.sort import pacs_sort

    monkeypatch.setenv("NETRC", "/dev/null")
    for name in ("BREASTLAB_PACS_USER", "BREASTLAB_PACS_PASSWORD", "BREASTLAB_PACS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    files = sorted(require(shared_data / "dcmqa" / "ge" / "In" / "01_Ax_DWI_TENSOR_R2").iterdir())
    other = sorted(require(shared_data / "dcmqa" / "ge" / "In" / "05_3D_Ax_T1_MP_RAGE_R22").iterdir())[:8]
    good_uid, good_meta = metadata_of(files)
    bad_uid, bad_meta = metadata_of(other)
    if bad_uid == good_uid:
        bad_uid = "1.2.826.0.1.3680043.8.498.18"
    base = json.loads(bad_meta)
    rng = random.Random(SEED)
    with FakeDicomWeb({"qido": qido(good_uid), f"metadata:{good_uid}": good_meta}) as server:
        clean = pacs_sort(server.url, None, progress=False, timeout=20)
    clean_view = sorted((r.sop_instance_uid, r.frame_index, r.b_value) for r in clean.records)
    clean_sops = {r.sop_instance_uid for r in clean.records}
    assert clean_sops and not clean_sops & {str(item["00080018"]["Value"][0]) for item in json.loads(bad_meta)}
    cases, crashes, hangs, lost, longest, errors = 0, 0, 0, 0, 0.0, 0
    deadline = time.monotonic() + 240
    while cases < 150 and time.monotonic() < deadline:
        cases += 1
        answers = {"qido": qido(good_uid, bad_uid), f"metadata:{good_uid}": good_meta,
                   f"metadata:{bad_uid}": _json_mutant(base, rng)}
        began = time.monotonic()
        try:
            with FakeDicomWeb(answers) as server:
                got = pacs_sort(server.url, None, progress=False, timeout=20)
            view = sorted((r.sop_instance_uid, r.frame_index, r.b_value) for r in got.records
                          if r.sop_instance_uid in clean_sops)
            lost += view != clean_view
        except PacsError as exc:  # the answer as a whole refused: one line
            errors += 1
            assert "\n" not in str(exc)
        except Exception:  # noqa: BLE001 - counted: a crash
            crashes += 1
        took = time.monotonic() - began
        longest, hangs = max(longest, took), hangs + (took > CASE_LIMIT_S)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts = {"cases": cases, "refused_whole_answer": errors, "crashes": crashes, "hangs": hangs,
              "entries_lost": lost, "peak_rss_mb": round(peak), "longest_case_s": round(longest, 2)}
    _report(tmp_path, "dicomweb-json", counts)
    assert crashes == 0 and hangs == 0 and lost == 0 and cases >= 20


@pytest.mark.slow
def test_fuzz_cstore_payloads_to_listen(shared_data, tmp_path):
    import pydicom
    from pacs.fuzz_cstore import file_payload, mutants, payload_file, peak_rss_mib, send_files
    from pacs.listen_helpers import ListenProcess, wait_for
    from pydicom.uid import generate_uid

    from breastlab.mri.classify import study_pseudonym
    from breastlab.mri.sorter import sort_exam

    folder = require(shared_data / "dcmqa" / "ge" / "In" / "01_Ax_DWI_TENSOR_R2")
    good_files = sorted(folder.iterdir())
    good = [pydicom.dcmread(p) for p in good_files]
    rng = random.Random(SEED)
    sent = tmp_path / "sent"
    sent.mkdir()
    batches = []
    for ds, path in zip(good, good_files):
        batch = [file_payload(sent, path)]
        for _ in range(10):
            mutant = _renamed(ds, generate_uid)
            (payload,) = mutants(mutant, rng, 1)
            batch.append(payload_file(sent, payload, sop=str(mutant.SOPInstanceUID), sop_class=str(ds.SOPClassUID)))
        rng.shuffle(batch)
        batches.append(batch)
    listener = ListenProcess(tmp_path / "store", tmp_path / "out", quiet=2).start()
    statuses, longest = [], 0.0
    try:
        for batch in batches:
            began = time.monotonic()
            statuses.extend(zip([sop for _, sop in batch], send_files(listener.port, [p for p, _ in batch])))
            longest = max(longest, time.monotonic() - began)
        alive = listener.proc.poll() is None
        good_study = str(good[0].StudyInstanceUID)
        out = tmp_path / "out" / study_pseudonym(good_study)
        wait_for(lambda: (out / "listen.json").is_file() and json.loads((out / "listen.json").read_text())["n_files"] == len(good), 400)
        peak = peak_rss_mib(listener.proc.pid)
    finally:
        listener.stop()
    stored = {str(pydicom.dcmread(p, stop_before_pixels=True, force=True).get("SOPInstanceUID", ""))
              for p in (tmp_path / "store").rglob("*.dcm") if ".incoming" not in p.parts}
    acked = {sop for sop, status in statuses if status == 0}
    unanswered = [sop for sop, status in statuses if status is None]
    crashes = listener.log_text().count("Traceback")
    ref = sort_exam(good_files, progress=False, workers=1)
    got_rows = _rows(out / "series.csv")
    counts = {"cases": len(statuses), "acknowledged": len(acked), "refused": len(statuses) - len(acked) - len(unanswered),
              "crashes": crashes + (not alive), "hangs": len(unanswered), "entries_lost": len(acked - stored),
              "peak_rss_mb": round(peak), "longest_association_s": round(longest, 2)}
    _report(tmp_path, "cstore", counts)
    assert alive and crashes == 0 and not unanswered
    assert acked <= stored and stored <= acked  # nothing acknowledged lost, nothing refused stored
    assert {str(ds.SOPInstanceUID) for ds in good} <= acked
    assert sorted((r["label"], r["n_images"]) for r in got_rows) == \
        sorted((s.label, str(s.image_set.n_images)) for s in ref.sets)
    assert peak < RSS_LIMIT_MB


def _renamed(ds, generate_uid):
    """``ds`` under new Study/Series/SOP UIDs (a mutant that still decodes forms its own study)."""
    import copy

    new = copy.deepcopy(ds)  # Dataset.copy() is shallow: setting a UID would change ``ds`` too
    new.StudyInstanceUID, new.SeriesInstanceUID, new.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    return new
