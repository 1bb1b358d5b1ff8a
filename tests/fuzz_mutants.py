"""Hostile input trees for the fuzz suite: real files, mutants of them, and special entries.

``build_tree(root, data, seed)`` writes

* ``good/``: copies of real, valid series (the GE DCE exam, the GE DWI and T1, one
  Siemens XA enhanced file), whose sorting must not change;
* ``mutants/``: files made from real ones by one mutation each (truncations, flipped
  bytes, bad lengths and VRs, inserted garbage, deep nesting, huge and sparse
  elements, odd values, character sets and control characters, 50,000 empty
  per-frame items, a deflate bomb, large non-DICOM files). Every mutant first gets new
  Study/Series/SOP Instance UIDs, so that a mutant that is still a valid image forms
  its own series instead of joining a good one;
* ``special/``: a FIFO, a socket, link loops, a self-link, a dangling link, a link to a
  folder, a link to a good file, hidden entries, a name that is not UTF-8, a 251-byte
  name, a valid image named ``dicomdir``, an exact copy of a good file (a duplicate),
  an empty file.

Everything is derived from a ``random.Random(seed)``: the same seed gives the same tree.
"""
from __future__ import annotations

import copy
import io
import os
import random
import shutil
import socket
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid

GOOD = (
    "nact-dce/UCSF-BR-06/image_dce_3dfgre_orig",
    "dcmqa/ge/In",
    "dcmqa/siemens_xa30/In/12_DWI_dir80_PA",
)
#: base files for mutants (one per vendor dialect / encoding)
BASES = (
    "nact-dce/UCSF-BR-06/image_dce_3dfgre_orig/1-001.dcm",
    "dcmqa/ge/In/01_Ax_DWI_TENSOR_R2/i22.MRDC.1",
    "dcmqa/philips/In/Vanderbilt_2018/601_WIP_dti_ax/0016.dcm",
    "dcmqa/siemens_mosaic_nibabel/In/dwi_b1000/siemens_dwi_1000.dcm",
    "dcmqa/siemens_xa30/In/12_DWI_dir80_PA",  # first file of the folder
    "dcmqa/transfer_syntax/In/3.dcm",  # Explicit VR Big Endian: mutants go through pydicom
    "dcmqa/transfer_syntax/In/9.dcm",  # JPEG 2000: encapsulated pixel data
)
GIB = 1 << 30


@dataclass
class Tree:
    root: Path
    good: Path
    n_mutants: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


def _base_file(data: Path, rel: str) -> Path:
    path = data / rel
    return sorted(p for p in path.iterdir() if p.is_file())[0] if path.is_dir() else path


def _fresh(ds: Dataset, rng: random.Random) -> Dataset:
    ds = copy.deepcopy(ds)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        setattr(ds, keyword, generate_uid(entropy_srcs=[keyword, str(rng.random())]))
    if "file_meta" in dir(ds) and ds.file_meta is not None:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


# ----------------------------------------------------------------------------- byte mutations
def _header_end(data: bytes) -> int:
    at = data.find(b"\xe0\x7f\x10\x00")
    return at if at > 200 else min(len(data), 8192)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(1, len(data))]


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        out[rng.randrange(132, _header_end(data))] = rng.randrange(256)
    return bytes(out)


def bad_length(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    at = rng.randrange(136, _header_end(data) - 8)
    struct.pack_into("<I", out, at, rng.choice([0xFFFFFFFF, 0xFFFFFFF0, 0x7FFFFFFF, rng.randrange(1 << 32)]))
    return bytes(out)


def bad_vr(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(132, _header_end(data) - 2)
        out[at : at + 2] = rng.choice([b"\x00\x00", b"ZZ", b"sq", b"\xff\xfe", b"UN", b"SQ", b"OB"])
    return bytes(out)


def insert_garbage(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(132, _header_end(data))
    return data[:at] + rng.randbytes(rng.randint(1, 64)) + data[at:]


def zero_chunk(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(132, _header_end(data))
    n = rng.randint(4, 512)
    return data[:at] + bytes(min(n, len(data) - at)) + data[at + n :]


BYTE_MUTATIONS: tuple[Callable[[bytes, random.Random], bytes], ...] = (
    truncate, flip_bytes, bad_length, bad_vr, insert_garbage, zero_chunk,
)


# ----------------------------------------------------------------------------- data-set mutations
def _set(ds: Dataset, tag: int, vr: str, value: object) -> Dataset:
    ds = copy.deepcopy(ds)
    ds.add_new(tag, vr, value)
    return ds


ODD_VALUES: tuple[tuple[int, str, object], ...] = (
    (0x00189087, "FD", float("inf")), (0x00189087, "FD", float("nan")), (0x00189087, "FD", -1.0),
    (0x00189087, "FD", 1e308), (0x00280008, "IS", "1000000000"), (0x00280008, "IS", "-5"),
    (0x00280008, "IS", "abc"), (0x00280010, "US", 0), (0x00080032, "TM", "99:99:99"),
    (0x00080033, "TM", "nan"), (0x00181060, "DS", "inf"), (0x00200013, "IS", "99999999999"),
    (0x00200032, "DS", ["nan", "nan", "nan"]), (0x00180050, "DS", "1e400"), (0x00180080, "DS", "-inf"),
    (0x00200100, "IS", "-2147483648"), (0x00080008, "CS", ["A" * 16] * 60), (0x00200011, "IS", "1e999"),
)
TEXTS: tuple[tuple[str, bytes], ...] = (
    ("GB18030", "乳腺 动态增强".encode("gb18030")),
    ("\\ISO 2022 IR 87", b"\x1b$B;3ED\x1b(B DWI"),
    ("ISO_IR 192", b"bad utf-8 \xff\xfe\xc3"),
    ("ISO_IR 100", "Müller T2 fs".encode("latin-1")),
    ("NO SUCH SET", b"unknown \xe9\xe8"),
    ("", b"\x1b]0;pwned\x07\x1b[2J\x1b[31mred\r\nnext"),
    ("", b"[bold red]markup[/] \xe2\x80\xae reversed"),
)


#: values for tags a base file lacks, so that every odd value can be planted at the top level
PLACEHOLDER = {
    0x00189087: ("FD", 0.0), 0x00280008: ("IS", "1"), 0x00080032: ("TM", "101010"), 0x00080033: ("TM", "101010"),
    0x00181060: ("DS", "0"), 0x00200013: ("IS", "1"), 0x00200032: ("DS", ["0", "0", "0"]),
    0x00180050: ("DS", "1"), 0x00180080: ("DS", "10"), 0x00200100: ("IS", "1"), 0x00200011: ("IS", "1"),
    0x00080005: ("CS", "ISO_IR 100"), 0x0008103E: ("LO", "placeholder"), 0x00280010: ("US", 64),
    0x00080008: ("CS", ["ORIGINAL", "PRIMARY"]),
}


def rich_template(ds: Dataset) -> bytes:
    """``ds`` written with every tag a mutation replaces present at the top level."""
    ds = copy.deepcopy(ds)
    for tag, (vr, value) in PLACEHOLDER.items():
        if tag not in ds:
            ds.add_new(tag, vr, value)
    return _bytes(ds)


def splice(data: bytes, explicit: bool, tag: int, value: bytes) -> bytes:
    """``data`` with the value of the first ``tag`` element replaced by ``value`` as it is
    (byte level: pydicom would validate and re-encode it)."""
    value = value + (b" " if len(value) % 2 else b"")
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    at = data.find(head, 132)
    while at >= 0 and explicit and not data[at + 4 : at + 6].isalpha():
        at = data.find(head, at + 1)
    if explicit:
        old = struct.unpack_from("<H", data, at + 6)[0]
        return data[: at + 6] + struct.pack("<H", len(value)) + value + data[at + 8 + old :]
    old = struct.unpack_from("<I", data, at + 4)[0]
    return data[: at + 4] + struct.pack("<I", len(value)) + value + data[at + 8 + old :]


def odd_value(data: bytes, explicit: bool, rng: random.Random) -> bytes:
    tag, vr, value = rng.choice(ODD_VALUES)
    if vr == "FD":
        return splice(data, explicit, tag, struct.pack("<d", value))
    if vr == "US":
        return splice(data, explicit, tag, struct.pack("<H", value))
    text = "\\".join(value) if isinstance(value, list) else str(value)
    return splice(data, explicit, tag, text.encode("ascii"))


def text_value(data: bytes, explicit: bool, rng: random.Random) -> bytes:
    charset, raw = rng.choice(TEXTS)
    data = splice(data, explicit, 0x00080005, charset.encode("ascii"))
    return splice(data, explicit, 0x0008103E, raw[:64])


def _sq_bytes(depth: int, tag: tuple[int, int], explicit: bool) -> bytes:
    """``depth`` nested undefined-length sequences of ``tag`` (built by hand: pydicom recurses)."""
    group, elem = tag
    open_ = (struct.pack("<HH2sHI", group, elem, b"SQ", 0, 0xFFFFFFFF) if explicit
             else struct.pack("<HHI", group, elem, 0xFFFFFFFF)) + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    close = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return open_ * depth + close * depth


def deep_nesting(ds: Dataset, rng: random.Random) -> bytes:
    raw = _bytes(ds)
    explicit = not ds.file_meta.TransferSyntaxUID.is_implicit_VR
    at = _header_end(raw)  # just before Pixel Data
    tag = rng.choice([(0x5200, 0x9230), (0x5200, 0x9229), (0x0029, 0x1099)])
    return raw[:at] + _sq_bytes(rng.choice([200, 3000, 20000]), tag, explicit) + raw[at:]


def many_items(ds: Dataset, rng: random.Random) -> bytes:
    ds = copy.deepcopy(ds)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence([Dataset() for _ in range(50_000)])
    return _bytes(ds)


MUTATIONS_DS = (odd_value, text_value)


# ----------------------------------------------------------------------------- special big files
def sparse_huge_element(path: Path, template: bytes) -> None:
    """A 2 GiB sparse file: the header, then one private OB element spanning the rest."""
    at = _header_end(template)
    header = template[:at] + struct.pack("<HH2sHI", 0x0029, 0x1077, b"OB", 0, 2 * GIB - at - 12 - 16)
    with open(path, "wb") as fh:
        fh.write(header)
    os.truncate(path, 2 * GIB - 16)


def sparse_not_dicom(path: Path, rng: random.Random, size: int) -> None:
    with open(path, "wb") as fh:
        fh.write(rng.randbytes(4096))
    os.truncate(path, size)


def deflate_bomb(path: Path, template_ds: Dataset) -> None:
    """Deflated transfer syntax whose stream inflates to 256 MiB of one endless element."""
    meta = template_ds.file_meta.copy()
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1.99"
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info

    buf = DicomBytesIO()
    write_file_meta_info(buf, meta, enforce_standard=True)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = struct.pack("<HH2sH", 0x0008, 0x0060, b"CS", 2) + b"MR"
    body += struct.pack("<HH2sHI", 0x0029, 0x1077, b"OB", 0, 256 << 20)
    chunks = [deflater.compress(body)]
    zeros = bytes(1 << 20)
    for _ in range(256):
        chunks.append(deflater.compress(zeros))
    chunks.append(deflater.flush())
    path.write_bytes(b"\x00" * 128 + b"DICM" + buf.getvalue() + b"".join(chunks))


# ----------------------------------------------------------------------------- the tree
def build_tree(root: Path, data: Path, seed: int = 7, n_byte: int = 320, n_ds: int = 149) -> Tree:
    """Write the hostile tree under ``root`` (see module doc); returns what was made."""
    import warnings

    warnings.simplefilter("ignore")  # pydicom warns about every odd value planted here
    rng = random.Random(seed)
    tree = Tree(root=root, good=root / "good")
    for rel in GOOD:
        shutil.copytree(data / rel, tree.good / rel.replace("/", "_"))
    mutants = root / "mutants"
    mutants.mkdir(parents=True)
    templates = []
    for rel in BASES:
        ds = pydicom.dcmread(_base_file(data, rel))
        fresh = _fresh(ds, rng)
        templates.append((fresh, _bytes(fresh), rich_template(fresh), not ds.file_meta.TransferSyntaxUID.is_implicit_VR))

    def put(kind: str, payload: bytes) -> None:
        tree.kinds[kind] = tree.kinds.get(kind, 0) + 1
        tree.n_mutants += 1
        (mutants / f"{tree.n_mutants:04d}-{kind}.dcm").write_bytes(payload)

    def unique(ds: Dataset, raw: bytes, i: int) -> bytes:  # a new SOP Instance UID of the same length
        uid = ds.SOPInstanceUID.encode()
        return raw.replace(uid, uid[: -len(str(i)) - 1] + b"9" + str(i).encode())

    for i in range(n_byte):
        ds, raw, _, _ = rng.choice(templates)
        op = rng.choice(BYTE_MUTATIONS)
        put(op.__name__, op(unique(ds, raw, i), rng))
    little_endian = [t for t in templates if t[0].file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.2"]
    for i in range(n_ds):  # byte-level splicing of values assumes little endian
        ds, _, rich, explicit = rng.choice(little_endian)
        op = rng.choice(MUTATIONS_DS)
        put(op.__name__, op(unique(ds, rich, n_byte + i), explicit, rng))
    for _ in range(6):
        ds, raw, _, _ = rng.choice(templates)
        put("deep_nesting", deep_nesting(ds, rng))
    xa = next(t[0] for t in templates if "PerFrameFunctionalGroupsSequence" in t[0])
    put("many_items", many_items(_fresh(xa, rng), rng))

    big = root / "big"
    big.mkdir()
    sparse_huge_element(big / "huge-element.dcm", templates[0][1])
    sparse_not_dicom(big / "large-not-dicom-64M.bin", rng, 64 << 20)
    sparse_not_dicom(big / "large-not-dicom-2G.bin", rng, 2 * GIB)
    deflate_bomb(big / "deflate-bomb.dcm", templates[0][0])
    tree.n_mutants += 4

    special = root / "special"
    special.mkdir()
    good_file = sorted((tree.good / GOOD[0].replace("/", "_")).iterdir())[0]
    os.mkfifo(special / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(os.fspath(special / "socket"))
    except OSError:  # AF_UNIX paths are limited to 107 bytes: a deep TMPDIR gets no socket
        pass
    finally:
        sock.close()
    os.symlink("loop-b", special / "loop-a")
    os.symlink("loop-a", special / "loop-b")
    os.symlink("self", special / "self")
    os.symlink("nowhere/missing.dcm", special / "dangling")
    os.symlink(os.path.relpath(tree.good, special), special / "link-to-folder")
    os.symlink(os.path.relpath(good_file, special), special / "link-to-good-file")  # a duplicate
    shutil.copy(good_file, special / "zz-copy-of-good.dcm")  # an exact copy: a duplicate
    (special / ".hidden.dcm").write_bytes(templates[1][1])
    (special / ".hidden-folder").mkdir()
    (special / ".hidden-folder" / "inside.dcm").write_bytes(templates[1][1])
    (special / "empty.dcm").write_bytes(b"")
    names = (
        os.fsdecode(b"latin1-\xe9\xff-name.dcm"),
        "n" * 247 + ".dcm",  # 251 bytes
        "dicomdir",
        "DICOMDIR",
    )
    for name in names:
        ds = _fresh(templates[1][0], rng)
        (special / name).write_bytes(_bytes(ds))
    unreadable = special / "unreadable-folder"
    unreadable.mkdir()
    (unreadable / "x.dcm").write_bytes(templates[1][1])
    os.chmod(unreadable, 0)  # root reads it anyway; any other user gets an 'unreadable' row
    return tree


def all_entries(root: Path) -> set[bytes]:
    """Every entry a scan of ``root`` must account for: files, links, special files, and
    the folders it must not enter (hidden, unreadable); not what lies inside those."""
    out: set[bytes] = set()
    stack = [os.fsencode(root)]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            out.add(current)
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(b"."):
                stack.append(entry.path)
            else:
                out.add(entry.path)
    return out


def tree_state(root: Path) -> dict[bytes, tuple]:
    """What must not change: content hashes of files up to 32 MiB, size+mtime of larger
    (sparse) files, link targets, modes."""
    import hashlib

    state: dict[bytes, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if os.path.islink(path):
                state[path] = ("link", os.readlink(path))
            elif os.path.isfile(path) and not os.path.islink(path):
                if st.st_size <= 32 << 20:
                    with open(path, "rb") as fh:
                        state[path] = ("file", st.st_mode, hashlib.sha256(fh.read()).hexdigest())
                else:
                    state[path] = ("big", st.st_mode, st.st_size, st.st_mtime_ns)
            else:
                state[path] = ("other", st.st_mode)
    return state
