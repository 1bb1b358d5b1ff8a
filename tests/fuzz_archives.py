"""Hostile archives for the tests: damaged members, link and device members, overlapping zip entries,
nested archives and mutants of good archives, all derived from ``random.Random(seed)``."""
from __future__ import annotations

import io
import random
import struct
import tarfile
import zipfile
from pathlib import Path


def corrupt_deflate_zip(path: Path, good: dict[str, bytes]) -> str:
    """A zip of ``good`` members plus one deflated member whose stream is damaged; returns its name."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in good.items():
            zf.writestr(name, data)
        zf.writestr("bad/member.dcm", bytes(range(256)) * 4000)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("bad/member.dcm")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 10, start + min(info.compress_size, 400), 7):
        raw[i] ^= 0x5A  # deflate blocks made nonsense (zlib.error, or a CRC mismatch)
    path.write_bytes(bytes(raw))
    return "bad/member.dcm"


def link_tar(path: Path, good: dict[str, bytes]) -> dict[str, str]:
    """A tar with ``good`` regular members and a symlink, hard link, FIFO, char and block device;
    returns member name -> expected reason for the non-regular ones."""
    expected = {}
    with tarfile.open(path, "w") as tf:
        for name, data in good.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        first = next(iter(good))
        for name, kind, reason in (("sym.dcm", tarfile.SYMTYPE, "link"), ("hard.dcm", tarfile.LNKTYPE, "link"),
                                   ("fifo", tarfile.FIFOTYPE, "special-file"),
                                   ("chr", tarfile.CHRTYPE, "special-file"), ("blk", tarfile.BLKTYPE, "special-file"),
                                   ("escape.dcm", tarfile.SYMTYPE, "link")):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "../../etc/passwd" if name == "escape.dcm" else first
            tf.addfile(info)
            expected[name] = reason
    return expected


def overlapping_zip(path: Path, n: int = 200, size: int = 8 << 20) -> int:
    """A small zip whose central directory names one deflated kernel of ``size`` zero bytes ``n`` times
    (every entry at the same offset, same name: zipfile reads each); returns the file size."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("k.dcm", bytes(size))
    raw = buf.getvalue()
    eocd = raw.rindex(b"PK\x05\x06")
    cd_size, cd_off = struct.unpack("<II", raw[eocd + 12:eocd + 20])
    central = raw[cd_off:cd_off + cd_size]
    body = raw[:cd_off] + central * n
    tail = raw[eocd:eocd + 22]
    tail = tail[:8] + struct.pack("<HHII", n, n, cd_size * n, cd_off) + tail[20:]
    path.write_bytes(body + tail)
    return path.stat().st_size


def nested_zip(path: Path, good: dict[str, bytes]) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        for name, data in good.items():
            zf.writestr(name, data)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("inner.zip", inner.getvalue())
        with tarfile.open(fileobj=(t := io.BytesIO()), mode="w:gz") as tf:
            info = tarfile.TarInfo("x.dcm")
            data = next(iter(good.values()))
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        zf.writestr("inner.tar.gz", t.getvalue())


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random damage to an archive's bytes: flipped bytes, a cut, a zeroed run or inserted junk."""
    raw = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0:
        for _ in range(rng.randint(1, 20)):
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    elif kind == 1:
        del raw[rng.randrange(1, len(raw)):]
    elif kind == 2:
        at = rng.randrange(len(raw))
        raw[at:at + rng.randint(1, 4096)] = bytes(min(4096, len(raw) - at))
    else:
        at = rng.randrange(len(raw))
        raw[at:at] = rng.randbytes(rng.randint(1, 512))
    return bytes(raw)


def good_members(folder: Path, n: int = 4) -> dict[str, bytes]:
    """The first ``n`` files of a real series folder, as member name -> bytes."""
    files = sorted(p for p in folder.iterdir() if p.is_file())[:n]
    return {f"series/{p.name}": p.read_bytes() for p in files}
