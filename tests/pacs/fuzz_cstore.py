"""C-STORE payloads for the listener tests: any bytes as the data set of a C-STORE request.

The payload is sent raw (pynetdicom's ``STORE_SEND_CHUNKED_DATASET`` reads a file's meta header for the
request's SOP Class/Instance UIDs and sends the rest unparsed), so damaged, foreign and huge data sets
reach the listener exactly as an attacker would send them.
"""
from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

MR = "1.2.840.10008.5.1.4.1.1.4"


def payload_file(folder: Path, payload: bytes, *, sop_class: str = MR, sop: str | None = None,
                 transfer_syntax: str = ExplicitVRLittleEndian) -> tuple[Path, str]:
    """A Part 10 file whose meta names ``sop_class``/``sop`` and whose data set is ``payload``."""
    sop = sop or generate_uid()
    meta = pydicom.Dataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, sop
    meta.TransferSyntaxUID = transfer_syntax
    buf = BytesIO()
    buf.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buf, pydicom.dataset.FileMetaDataset(meta), enforce_standard=True)
    path = folder / f"{sop}.dcm"
    path.write_bytes(buf.getvalue() + payload)
    return path, sop


def encoded(ds: pydicom.Dataset) -> bytes:
    """A data set as Explicit VR Little Endian bytes (no meta)."""
    buf = pydicom.filebase.DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_dataset(buf, ds)
    return buf.getvalue()


def big_element_file(folder: Path, ds: pydicom.Dataset, size: int) -> tuple[Path, str]:
    """``ds`` (new SOP UID) with a private OB element (0011,1000) of ``size`` zero bytes, written in blocks."""
    import copy

    ds = copy.deepcopy(ds)  # Dataset.copy() is shallow
    sop = generate_uid()
    ds.SOPInstanceUID = sop
    low, high = pydicom.Dataset(), pydicom.Dataset()
    for elem in ds:
        (low if elem.tag < 0x00110000 else high).add(elem)
    path, _ = payload_file(folder, b"", sop_class=str(ds.SOPClassUID), sop=sop)
    with open(path, "ab") as fh:
        fh.write(encoded(low))
        fh.write(struct.pack("<HH2sH", 0x0011, 0x0010, b"LO", 8) + b"BIGBLOB ")
        fh.write(struct.pack("<HH2sHI", 0x0011, 0x1000, b"OB", 0, size))
        block = bytes(1 << 20)
        for _ in range(size >> 20):
            fh.write(block)
        fh.write(encoded(high))
    return path, sop


def mutants(ds: pydicom.Dataset, rng: random.Random, n: int) -> list[bytes]:
    """``n`` damaged encodings of ``ds`` (own SOP UID each, as the request will name it)."""
    out = []
    for _ in range(n):
        data = bytearray(encoded(ds))
        kind = rng.randrange(6)
        if kind == 0:
            for _ in range(rng.randint(1, 30)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del data[rng.randrange(1, len(data)):]
        elif kind == 2:
            at = rng.randrange(len(data) - 8)
            data[at + 4:at + 8] = struct.pack("<I", rng.choice([0xFFFFFFFF, 0x7FFFFFFF, len(data) * 3, 1]))
        elif kind == 3:
            at = rng.randrange(len(data))
            data[at:at] = rng.randbytes(rng.randint(1, 256))
        elif kind == 4:
            data = bytearray(rng.randbytes(rng.randint(0, 4096)))
        else:
            data = bytearray(b"%PDF-1.4 not a data set\n" * rng.randint(1, 50))
        out.append(bytes(data))
    return out


def send_files(port: int, paths: Sequence[Path], *, aet: str = "SENDER", timeout: float = 60.0
               ) -> list[int | None]:
    """C-STORE each file's data set unparsed; returns each status (``None``: no answer)."""
    from pynetdicom import AE, _config

    old = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    statuses: list[int | None] = []
    try:
        ae = AE(ae_title=aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
        from pydicom.filereader import read_file_meta_info

        classes = sorted({str(read_file_meta_info(p).MediaStorageSOPClassUID) for p in paths})
        for cls in classes:
            for ts in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):  # one context each: both accepted
                ae.add_requested_context(cls, ts)
        assoc = ae.associate("127.0.0.1", port, ae_title="BREASTLAB")
        if not assoc.is_established:
            return [None] * len(paths)
        try:
            for p in paths:
                status = assoc.send_c_store(p) if assoc.is_established else None
                statuses.append(int(status.Status) if status and "Status" in status else None)
        finally:
            if assoc.is_established:
                assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = old
    return statuses


def peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def file_payload(folder: Path, path: Path) -> tuple[Path, str]:
    """A real file sent as it is: its own data set bytes and transfer syntax."""
    from pynetdicom.dsutils import split_dataset

    meta, offset = split_dataset(path)
    data = path.read_bytes()[offset:]
    return payload_file(folder, data, sop_class=str(meta.MediaStorageSOPClassUID),
                        sop=str(meta.MediaStorageSOPInstanceUID), transfer_syntax=str(meta.TransferSyntaxUID))
