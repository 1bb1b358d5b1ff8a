"""Stage exactly an image set's files (and frames) in a folder of its own for dcm2niix.

dcm2niix converts a folder, and a folder of the input holds more than one image set
(the GE DCE exam in the shared data keeps three time points in one series). So each
set's files are linked into a fresh folder: symbolic links to the inputs (nothing is
copied, inputs are never written). An enhanced multi-frame file whose frames fall in
several sets is written as a *frame-subset copy* holding only this set's frames (pixel
data and Per-Frame Functional Groups items), with pydicom; the copy lives in the
temporary folder only.

Work per file is bounded: a file much larger than the image its header declares (e.g. a
valid image followed by hundreds of MB of padding, which dcm2niix walks byte by byte) is
not staged, and its set fails with a one-line reason (:func:`check_size`).
"""
from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from breastlab.dicom.records import InstanceRecord


def frames_by_file(records: Sequence[InstanceRecord]) -> dict[str, set[int] | None]:
    """path → frame indices used (``None``: the whole file, a classic single-frame image)."""
    out: dict[str, set[int] | None] = {}
    for r in records:
        if r.frame_index is None:
            out[r.path] = None
        else:
            got = out.setdefault(r.path, set())
            if got is not None:
                got.add(int(r.frame_index))
    return out


def _needs_subset(records: Sequence[InstanceRecord], frames: set[int] | None) -> bool:
    if frames is None:
        return False
    n = next((r.number_of_frames for r in records if r.number_of_frames), None)
    return n is None or frames != set(range(int(n)))


def write_frame_subset(src: str | os.PathLike, frames: Sequence[int], dest: str | os.PathLike) -> Path:
    """Write a copy of the enhanced multi-frame file ``src`` holding only ``frames`` (0-based).

    Pixel data (native or encapsulated) and the Per-Frame Functional Groups are cut to
    the chosen frames, in file order; everything else is kept, so dcm2niix reads the
    copy as it would read the original.
    """
    import pydicom
    from pydicom.encaps import encapsulate, generate_frames
    from pydicom.sequence import Sequence as DicomSequence

    ds = pydicom.dcmread(os.fspath(src))
    n = int(ds.get("NumberOfFrames", 1) or 1)
    keep = sorted(set(int(f) for f in frames))
    if not keep or keep[0] < 0 or keep[-1] >= n:
        raise ValueError(f"frames {keep[:3]}... out of range for {n} frames")
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        parts = list(generate_frames(ds.PixelData, number_of_frames=n))
        ds.PixelData = encapsulate([parts[i] for i in keep])
        for tag in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
            if tag in ds:
                delattr(ds, tag)
    else:
        bits = int(ds.BitsAllocated)
        if bits % 8:
            raise ValueError(f"BitsAllocated={bits}: frame subsets of bit-packed pixel data are not supported")
        size = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * bits // 8
        data = ds.PixelData
        if len(data) < size * n:
            raise ValueError("pixel data is shorter than NumberOfFrames × frame size")
        cut = b"".join(data[i * size:(i + 1) * size] for i in keep)
        ds.PixelData = cut + (b"\0" if len(cut) % 2 else b"")
    if "PerFrameFunctionalGroupsSequence" in ds:
        items = ds.PerFrameFunctionalGroupsSequence
        ds.PerFrameFunctionalGroupsSequence = DicomSequence([items[i] for i in keep])
    ds.NumberOfFrames = len(keep)
    dest = Path(dest)
    ds.save_as(dest, enforce_file_format=False)
    return dest


#: bytes per pixel assumed at most (float64, or 16-bit RGB) and header room, for :func:`check_size`
_MAX_BYTES_PER_PIXEL = 8
_HEADER_ROOM = 64 << 20
_NO_GEOMETRY_CAP = 1 << 30


def check_size(path: str, records: Sequence[InstanceRecord]) -> None:
    """``ValueError`` when ``path`` is far larger than its declared image could need."""
    r = records[0]
    if r.rows and r.columns:
        frames = max(int(r.number_of_frames or 1), 1)
        cap = int(r.rows) * int(r.columns) * frames * _MAX_BYTES_PER_PIXEL + _HEADER_ROOM
    else:
        cap = _NO_GEOMETRY_CAP
    size = os.stat(path).st_size
    if size > cap:
        raise ValueError(f"{os.path.basename(path)} holds {size >> 20} MiB, more than its "
                         f"{r.rows}x{r.columns} image can need ({cap >> 20} MiB): trailing data, not converted")


def stage_records(records: Sequence[InstanceRecord], folder: str | os.PathLike) -> dict[str, str]:
    """Put exactly ``records``' files/frames into ``folder``; returns staged name → source path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    per_file: dict[str, list[InstanceRecord]] = defaultdict(list)
    for r in records:
        per_file[r.path].append(r)
    staged: dict[str, str] = {}
    for i, (path, recs) in enumerate(per_file.items()):
        frames = frames_by_file(recs)[path]
        name = f"{i:06d}.dcm"
        check_size(path, recs)
        if _needs_subset(recs, frames):
            write_frame_subset(path, sorted(frames or ()), folder / name)
        else:
            os.symlink(os.path.abspath(path), folder / name)
        staged[name] = path
    return staged
