"""Thumbnails of image sets for the review page: a few slices per set, decoded in a worker pool.

Per set at most :data:`MAX_SLICES` slices are decoded with the project's pixel decoder
(:func:`breastlab.dicom.pixels.read_view`): the middle slice (in instance order), or,
when one set holds several b-values, the middle slice of each. They are windowed
together (the set's 1st-99.5th percentile), shrunk to :data:`SIZE` pixels and encoded
as small JPEG data URIs. The geometry shown on the page
(matrix, pixel spacing, slice thickness, plane) comes from the same file's header.
A set whose pixels cannot be read gets no image and a one-line reason: a thumbnail never
fails the page. Memory per worker is one file's pixels at a time.
"""
from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_SLICES = 6
SIZE = 96
#: below this many sets the pool's start-up costs more than it saves
POOL_MIN_SETS = 24


@dataclass(frozen=True)
class SliceRef:
    """One slice to decode: a file and, for a multi-frame file, its 0-based frame."""

    path: str
    frame: int | None = None
    caption: str = ""


@dataclass
class Thumb:
    """What the page shows for one set: data URIs with captions, geometry, or the reason there is none."""

    set_id: str
    images: list[tuple[str, str]] = field(default_factory=list)  # (data URI, caption)
    geometry: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


def _num(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def plan_slices(instances: Sequence[Mapping[str, str]]) -> list[SliceRef]:
    """The slices to decode for one set's instances.csv rows (module docstring)."""
    def key(r: Mapping[str, str]) -> tuple:
        n = _num(r.get("instance_number"))
        f = _num(r.get("frame_index"))
        return (n is None, n or 0.0, r.get("path", ""), f or 0.0)

    rows = sorted(instances, key=key)
    groups: dict[float | None, list[Mapping[str, str]]] = {}
    for r in rows:
        groups.setdefault(_num(r.get("b_value")), []).append(r)
    if len(groups) < 2:
        groups = {None: rows}
    refs = []
    for b, members in sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or 0.0))[:MAX_SLICES]:
        r = members[len(members) // 2]
        frame = _num(r.get("frame_index"))
        refs.append(SliceRef(r.get("path", ""), None if frame is None else int(frame),
                             "" if b is None else f"b={b:g}"))
    return refs


def _encode(arr: np.ndarray) -> str:
    """A greyscale JPEG data URI of at most SIZE pixels a side.

    JPEG rather than WebP: at 96 px a JPEG (quality 75) is ~2 KB and encodes in a tenth of
    WebP's time (measured: 0.3 ms vs 1-2 ms), and building the page must stay cheap next
    to the sort (bench/review_overhead.py).
    """
    from PIL import Image

    img = Image.fromarray(arr)  # uint8, 2-D: greyscale
    img.thumbnail((SIZE, SIZE), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=75)
    return f"data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def _plane(iop: Sequence[float] | None) -> str:
    if not iop or len(iop) != 6:
        return ""
    normal = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]


def _geometry(ds: Any) -> dict[str, Any]:
    """Matrix, pixel spacing, slice thickness and plane from one file's dataset (enhanced files too)."""
    measures = orient = None
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        measures = (shared[0].get("PixelMeasuresSequence") or [None])[0]
        orient = (shared[0].get("PlaneOrientationSequence") or [None])[0]
    spacing = ds.get("PixelSpacing") or (measures.get("PixelSpacing") if measures else None)
    thick = ds.get("SliceThickness") or (measures.get("SliceThickness") if measures else None)
    iop = ds.get("ImageOrientationPatient") or (orient.get("ImageOrientationPatient") if orient else None)
    geo: dict[str, Any] = {"matrix": f"{ds.get('Columns', '?')}×{ds.get('Rows', '?')}"}
    if spacing:
        geo["spacing"] = "×".join(f"{float(v):.2g}" for v in spacing) + " mm"
    if thick not in (None, ""):
        geo["thickness"] = f"{float(thick):.3g} mm"
    plane = _plane([float(v) for v in iop] if iop else None)
    if plane:
        geo["plane"] = plane
    return geo


def render_set(set_id: str, refs: Sequence[SliceRef]) -> Thumb:
    """Decode, window and encode one set's slices (runs in a worker); never raises."""
    from breastlab.dicom.pixels import read_view_and_header

    thumb = Thumb(set_id)
    if not refs:
        thumb.reason = "no images listed in instances.csv"
        return thumb
    slices, captions, header = [], [], None
    for i, ref in enumerate(refs):
        try:
            if not os.path.isfile(ref.path):
                thumb.reason = ("inside an archive: not decoded" if not os.path.exists(ref.path)
                                and any(a in ref.path.lower() for a in (".zip/", ".tar/", ".tgz/", ".tar.gz/"))
                                else "file no longer readable")
                continue
            arr, ds = read_view_and_header(ref.path, ref.frame)
            if header is None or i == len(refs) // 2:
                header = ds
            if arr.ndim != 2 or min(arr.shape) < 1:
                thumb.reason = f"not a 2-D image (shape {tuple(arr.shape)})"
                continue
            step = max(1, max(arr.shape) // (2 * SIZE))  # keep 2x the thumbnail: bounded memory and time
            slices.append(np.ascontiguousarray(arr[::step, ::step]))
            captions.append(ref.caption)
        except Exception as exc:  # noqa: BLE001 - any decoder failure becomes a reason on the page
            thumb.reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
    if slices:
        values = np.concatenate([s[np.isfinite(s)].ravel()[::7] for s in slices])
        lo, hi = (np.percentile(values, (1.0, 99.5)) if values.size else (0.0, 1.0))
        if values.size and values.max() == values.min():
            thumb.reason = f"blank: every pixel is {float(values.max()):g}"
        hi = hi if hi > lo else lo + 1.0
        for arr, caption in zip(slices, captions):
            scaled = np.clip((np.nan_to_num(arr, nan=lo) - lo) / (hi - lo), 0, 1)
            thumb.images.append((_encode((scaled * 255).astype(np.uint8)), caption))
        thumb.reason = "" if len(slices) == len(refs) and not thumb.reason.startswith("blank") else thumb.reason
        try:
            thumb.geometry = _geometry(header)
        except Exception:  # noqa: BLE001,S110 - geometry is optional on the page
            pass
    return thumb


def _render_many(jobs: list[tuple[str, list[SliceRef]]]) -> list[Thumb]:
    return [render_set(set_id, refs) for set_id, refs in jobs]


def render_thumbnails(plans: Mapping[str, list[SliceRef]], *, workers: int | None = None) -> dict[str, Thumb]:
    """Render every set's thumbnail; a pool of ``workers`` processes for more than a few sets.

    A pool that breaks (a worker killed, e.g. by the OOM killer) leaves the remaining sets
    to this process: the page is never lost to the pool.
    """
    from concurrent.futures.process import BrokenProcessPool

    from breastlab.dicom.scan import _worker_init  # the scan's worker set-up: die with the parent, no Ctrl-C

    items = list(plans.items())
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(items) // 8 or 1))
    out: dict[str, Thumb] = {}
    if len(items) >= POOL_MIN_SETS and n_workers > 1:
        import pydicom.pixels  # noqa: F401 - imported once here, not once per forked worker (~0.5 s each)
        from PIL import Image  # noqa: F401

        chunks = [c for c in (items[i::n_workers * 4] for i in range(n_workers * 4)) if c]
        try:
            with ProcessPoolExecutor(n_workers, initializer=_worker_init, initargs=(os.getpid(),)) as pool:
                for thumbs in pool.map(_render_many, chunks):
                    out.update({t.set_id: t for t in thumbs})
        except (BrokenProcessPool, OSError):
            pass  # whatever is missing is rendered below
    rest = [(k, v) for k, v in items if k not in out]
    out.update({t.set_id: t for t in _render_many(rest)})
    return {k: out[k] for k, _ in items}


def group_instances(rows: Iterable[Mapping[str, str]]) -> dict[str, list[Mapping[str, str]]]:
    """instances.csv rows by set id."""
    by_set: dict[str, list[Mapping[str, str]]] = {}
    for r in rows:
        by_set.setdefault(r.get("set_id", ""), []).append(r)
    return by_set
