"""A realistic large archive: header-only copies of the real series, distinct studies per copy.

``generate(dest, n_files)`` writes ``dest/cNNNN/<template path>`` for as many copies of
the templates (the real files ``bench/sort_speed.py`` uses: ``nact-dce`` and
``dcmqa/*/In`` of ``$BREASTLAB_DATA``) as ``n_files`` needs. Every copy gets fresh
Study, Series and SOP Instance UIDs (same length, ``9NNN`` + the original's tail, so
every copy's studies are new studies and no SOP Instance UID repeats) and a fresh
patient identity (PatientID and PatientName rewritten in place, same length, base-36
copy number).

Header-only: each file is the template's header (everything before the Pixel Data
value) and the last KiB of the template (where an encapsulated stream's delimiter
lives), with a *hole* in between: the file has the template's size (so every size
check of the reader holds) but the disk stores no pixel data, a few KB per file
(``du`` shows it). Fast path: each template is parsed once (its header bytes and the
offsets of the patient elements kept); a copy is byte replacements and two writes.

Usage::

    nice .venv/bin/python bench/archive_gen.py DEST --files 320000
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

TAIL = 1024
UID_TAGS = (0x0020000D, 0x0020000E, 0x00080018)  # study, series, SOP instance
PATIENT_TAGS = (0x00100020, 0x00100010)  # ID, name
_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class Template:
    rel: str
    size: int
    header: bytes
    tail: bytes
    uids: list[bytes]
    patient: list[tuple[int, int]]  # (offset, length) of PatientID / PatientName values in ``header``


def load_templates(data: Path) -> list[Template]:
    """Parse every source file once: header bytes, tail, UIDs, patient element offsets."""
    from sort_speed import source_files

    from breastlab.dicom._parse import UNDEFINED
    from breastlab.dicom.opening import parse_file

    out = []
    for path in source_files(data):
        size = path.stat().st_size
        try:
            node, _meta, pixel, buf, limit = parse_file(str(path), size)
        except Exception:  # noqa: BLE001 - the fallback files (Big Endian...): copied whole when small
            node, pixel, limit = None, None, None
        if node is None or pixel is None or limit is None:
            if size <= 256 * 1024:
                data_bytes = path.read_bytes()
                out.append(Template(str(path.relative_to(data)), size, data_bytes, b"", [], []))
            continue
        start = pixel[0]
        header = bytes(buf[:start])
        with open(path, "rb") as fh:
            fh.seek(max(start, size - TAIL))
            tail = fh.read()
        uids = []
        for tag in UID_TAGS:
            raw = node.raw(tag)
            if raw and len(raw.rstrip(b"\x00 ")) > 8:
                uids.append(raw.rstrip(b"\x00 "))
        patient = []
        for tag in PATIENT_TAGS:
            item = node.elems.get(tag)
            if item is not None and item[0] != "SQ" and item[2] and item[2] != UNDEFINED:
                patient.append((item[1], item[2]))
        out.append(Template(str(path.relative_to(data)), size, header, tail, uids, patient))
    return out


def _code(copy: int, width: int) -> bytes:
    digits = ""
    n = copy
    while n or not digits:
        n, d = divmod(n, 36)
        digits = _B36[d] + digits
    return digits.rjust(width, "0")[-width:].encode()


def write_copy(t: Template, copy: int, dest: Path) -> int:
    """One header-only copy of ``t`` at ``dest``; returns the bytes stored (header + tail)."""
    data = bytearray(t.header)
    for offset, length in t.patient:
        data[offset:offset + length] = (b"P" + _code(copy, length - 1))[:length] if length > 1 else b"P"
    data = bytes(data)
    prefix = b"9%03d" % (copy % 1000)
    for uid in t.uids:
        data = data.replace(uid, prefix + uid[4:])
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if t.tail:
            os.pwrite(fd, t.tail, t.size - len(t.tail))
        os.ftruncate(fd, t.size)
    finally:
        os.close(fd)
    return len(data) + len(t.tail)


def generate(dest: Path, n_files: int, *, first_copy: int = 0, templates: list[Template] | None = None,
             data: Path | None = None) -> dict:
    """Write copies ``first_copy``.. until ``n_files`` files exist under ``dest`` (reused when complete)."""
    from breastlab.core.settings import data_root

    marker = dest / ".complete.json"
    if marker.is_file():
        done = json.loads(marker.read_text())
        if done.get("n_files") == n_files and done.get("first_copy") == first_copy and done.get("format") == 1:
            return done
    templates = templates if templates is not None else load_templates(data or data_root())
    t0 = time.perf_counter()
    written = stored = 0
    copy = first_copy
    while written < n_files:
        folder = dest / f"c{copy:04d}"
        made: set[str] = set()
        for t in templates:
            if written >= n_files:
                break
            target = folder / t.rel
            parent = os.fspath(target.parent)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            stored += write_copy(t, copy, target)
            written += 1
        copy += 1
    info = {"format": 1, "n_files": n_files, "first_copy": first_copy, "copies": copy - first_copy,
            "templates": len(templates), "bytes_written": stored, "seconds": round(time.perf_counter() - t0, 1)}
    marker.write_text(json.dumps(info))
    return info


def disk_usage(path: Path) -> int:
    """Bytes the disk holds for ``path`` (blocks, as ``du``), holes excluded."""
    total = 0
    for root, _, names in os.walk(path):
        for name in names:
            total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--files", type=int, required=True)
    args = parser.parse_args()
    info = generate(args.dest, args.files)
    info["disk_bytes"] = disk_usage(args.dest)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
