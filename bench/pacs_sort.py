"""Benchmark: ``pacs sort`` from WADO-RS metadata against retrieve-then-sort, on one private Orthanc.

Loads a private Orthanc (``breastlab.pacs.orthanc``, loopback, own storage under
``bench/out/pacs``) with the real nact-dce DCE exam of ``$BREASTLAB_DATA`` copied under new
Study/Series/SOP instance UIDs to reach ``--studies`` studies (default 20 x 180 images). Then
times, in the same run and alternating, ``--repeat`` times each (best kept):

1. ``metadata``: ``breastlab.pacs.sort.pacs_sort(DICOMweb URL)``: QIDO-RS + WADO-RS metadata,
   headers only, the same records and outputs as ``breastlab sort``;
2. ``retrieve``: C-GET of every study (pynetdicom, into a temporary folder) followed by
   ``breastlab.mri.sorter.sort_exam`` on that folder (the file path, default workers).

Both write series.csv/instances.csv; the run checks that they give the same labels per series.
Bytes moved are measured too (DICOM JSON vs retrieved files). Last line printed::

    pacs_sort studies=<n> instances=<m> metadata=<s>s retrieve=<s>s ratio=<r>x bytes_ratio=<b>x

Usage::

    nice -n 10 .venv/bin/python bench/pacs_sort.py [--studies 20] [--repeat 2]
"""
from __future__ import annotations

import argparse
import copy
import csv
import io
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from breastlab.core.settings import data_root  # noqa: E402

OUT = ROOT / "bench" / "out" / "pacs"
AET = "BREASTLAB"


def study_copies(n: int) -> list[list[bytes]]:
    """``n`` copies of the nact-dce DCE series under new UIDs, as encoded DICOM files."""
    import pydicom
    from pydicom.uid import generate_uid

    src = sorted((data_root() / "nact-dce" / "UCSF-BR-06" / "image_dce_3dfgre_orig").glob("*"))
    if not src:
        raise SystemExit(f"nact-dce not found under {data_root()}")
    originals = [pydicom.dcmread(p) for p in src]
    out = []
    for _ in range(n):
        study, series = generate_uid(), generate_uid()
        files = []
        for ds in originals:
            new = copy.deepcopy(ds)
            new.StudyInstanceUID, new.SeriesInstanceUID, new.SOPInstanceUID = study, series, generate_uid()
            new.file_meta.MediaStorageSOPInstanceUID = new.SOPInstanceUID
            buf = io.BytesIO()
            new.save_as(buf, enforce_file_format=True)
            files.append(buf.getvalue())
        out.append(files)
    return out


def labels(out_dir: Path) -> list[tuple[str, str, str]]:
    with open(out_dir / "series.csv", newline="", encoding="utf-8") as fh:
        return sorted((r["study_uid"], r["image_set"], r["label"]) for r in csv.DictReader(fh))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)

    from breastlab.mri.sorter import sort_exam
    from breastlab.pacs.address import parse_pacs_url
    from breastlab.pacs.dimse import DimsePacs
    from breastlab.pacs.dicomweb import DicomWebPacs, StudyFilter
    from breastlab.pacs.orthanc import OrthancServer, free_port
    from breastlab.pacs.sort import pacs_sort

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    server = OrthancServer(OUT / "orthanc", modalities={AET: ("127.0.0.1", free_port())})
    server.start()
    try:
        t = time.perf_counter()
        copies = study_copies(args.studies)
        n_instances = sum(len(c) for c in copies)

        def upload(data: bytes) -> None:
            server.rest("POST", "/instances", data, content_type="application/dicom")

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(upload, (f for c in copies for f in c)))
        print(f"loaded {args.studies} studies, {n_instances} instances into Orthanc in "
              f"{time.perf_counter() - t:.0f} s", flush=True)
        os.environ["BREASTLAB_PACS_USER"], os.environ["BREASTLAB_PACS_PASSWORD"] = server.username, server.password
        web = DicomWebPacs(parse_pacs_url(server.dicomweb_url))
        study_uids = web.find_studies(StudyFilter())
        json_bytes = 0
        for uid in study_uids:
            resp = web.session.get(f"{server.dicomweb_url}/studies/{uid}/metadata", timeout=60,
                                   headers={"Accept": "application/dicom+json"})
            json_bytes += len(resp.content)

        times: dict[str, list[float]] = {"metadata": [], "retrieve": []}
        file_bytes = 0
        for r in range(args.repeat):
            t = time.perf_counter()
            res = pacs_sort(server.dicomweb_url, OUT / "metadata", progress=False)
            times["metadata"].append(time.perf_counter() - t)
            assert len(res.records) == n_instances, (len(res.records), n_instances)

            t = time.perf_counter()
            dimse = DimsePacs.from_url(server.dimse_url, calling_aet=AET, timeout=120)
            with tempfile.TemporaryDirectory(prefix="bench-cget-", dir=OUT) as tmp:
                got = 0
                for uid in dimse.find_studies(StudyFilter()):
                    got += len(dimse.get_study(uid, Path(tmp) / uid))
                file_bytes = sum(p.stat().st_size for p in Path(tmp).rglob("*.dcm"))
                sort_exam([tmp], out_dir=OUT / "retrieve", progress=False)
            times["retrieve"].append(time.perf_counter() - t)
            assert got == n_instances, (got, n_instances)
            print(f"round {r + 1}: metadata {times['metadata'][-1]:.2f} s, retrieve+sort {times['retrieve'][-1]:.2f} s",
                  flush=True)
        if labels(OUT / "metadata") != labels(OUT / "retrieve"):
            raise SystemExit("the two paths disagree on the labels")
        best_m, best_r = min(times["metadata"]), min(times["retrieve"])
        print(f"bytes moved: metadata {json_bytes / 1e6:.1f} MB of DICOM JSON, retrieve {file_bytes / 1e6:.1f} MB "
              "of DICOM files")
        print(f"pacs_sort studies={len(study_uids)} instances={n_instances} metadata={best_m:.2f}s "
              f"retrieve={best_r:.2f}s ratio={best_r / best_m:.2f}x bytes_ratio={file_bytes / max(json_bytes, 1):.0f}x")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
