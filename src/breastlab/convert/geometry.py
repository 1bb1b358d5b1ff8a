"""Check a converted NIfTI against the DICOM geometry, computed independently of dcm2niix.

From the records alone (ImagePositionPatient, ImageOrientationPatient, PixelSpacing,
Rows, Columns) the voxel grid of the image set is rebuilt in patient space; the
NIfTI must have the same grid size and put its corner voxels at the same places
(any axis order or flip: only where voxels are matters). Then sampled DICOM slices are
read with pydicom and found, voxel for voxel, at the positions the NIfTI affine gives
them: a DCE phase volume must hold exactly its own phase's slices.

Written by hand (a few lines of linear algebra): nibabel's DICOM helpers read whole
series and do not take an arbitrary subset of a series' files and frames.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from breastlab.dicom.records import InstanceRecord

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass
class GeometryCheck:
    status: str  # "ok" | "mismatch" | "not checked"
    message: str = ""
    n_slices: int | None = None
    n_volumes: int | None = None
    slices_compared: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict:
        return {"status": self.status, "message": self.message, "n_slices": self.n_slices,
                "n_volumes": self.n_volumes, "slices_compared": self.slices_compared}


@dataclass(frozen=True)
class DicomGrid:
    """Voxel grid of an image set from its headers, in RAS millimetres."""

    origin: np.ndarray  # centre of the first pixel of the first slice
    col_step: np.ndarray  # one column to the right (DICOM row direction × column spacing)
    row_step: np.ndarray  # one row down
    slice_positions: np.ndarray  # (n, 3) sorted along the slice normal
    shape: tuple[int, int, int]  # columns, rows, slices

    def corners(self) -> np.ndarray:
        nc, nr, _ = self.shape
        pts = []
        for p in (self.slice_positions[0], self.slice_positions[-1]):
            for i in (0, nc - 1):
                for j in (0, nr - 1):
                    pts.append(p + i * self.col_step + j * self.row_step)
        return np.array(pts)


def dicom_grid(records: Sequence[InstanceRecord]) -> DicomGrid:
    """The grid of ``records`` (one volume's slices, or several volumes at the same positions)."""
    r0 = records[0]
    if not r0.image_orientation or not r0.pixel_spacing or not r0.rows or not r0.columns:
        raise ValueError("orientation, pixel spacing or matrix size missing")
    ori = np.asarray(r0.image_orientation, float)
    row_dir, col_dir = ori[:3], ori[3:]  # direction along a row (→ columns), along a column (→ rows)
    normal = np.cross(row_dir, col_dir)
    spacing_rows, spacing_cols = (float(v) for v in r0.pixel_spacing[:2])
    positions = {}
    for r in records:
        if r.image_position is None:
            raise ValueError("ImagePositionPatient missing")
        if r.rows != r0.rows or r.columns != r0.columns:
            raise ValueError("matrix size varies inside the set")
        if r.image_orientation is not None and not np.allclose(r.image_orientation, ori, atol=1e-3):
            raise ValueError("orientation varies inside the set")
        p = np.asarray(r.image_position, float)
        positions[tuple(np.round(p, 2))] = p
    pts = np.array(sorted(positions.values(), key=lambda p: float(p @ normal)))
    return DicomGrid(
        origin=LPS_TO_RAS @ pts[0],
        col_step=LPS_TO_RAS @ (row_dir * spacing_cols),
        row_step=LPS_TO_RAS @ (col_dir * spacing_rows),
        slice_positions=pts @ LPS_TO_RAS.T,
        shape=(int(r0.columns), int(r0.rows), len(pts)),
    )


def _nifti_corners(affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    pts = [[i, j, k, 1.0] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)]
    return (affine @ np.array(pts).T).T[:, :3]


def _pixels(path: str, frame: int | None, cache: dict) -> tuple[np.ndarray, float, float]:
    """Stored pixel values of one slice, with the rescale slope and intercept (1, 0 when absent)."""
    import pydicom

    if path not in cache:
        cache.clear()  # one file at a time: an enhanced file can be large
        ds = pydicom.dcmread(path)
        slope, intercept = ds.get("RescaleSlope", None), ds.get("RescaleIntercept", None)
        cache[path] = (ds.pixel_array, float(slope if slope is not None else 1.0),
                       float(intercept if intercept is not None else 0.0))
    arr, slope, intercept = cache[path]
    return (arr[frame] if frame is not None and arr.ndim >= 3 else arr), slope, intercept


def _where(r: InstanceRecord) -> str:
    return "(" + ", ".join(f"{float(v):.1f}" for v in r.image_position) + ")"


def _sample(records: Sequence[InstanceRecord], n: int) -> list[InstanceRecord]:
    if len(records) <= n:
        return list(records)
    idx = np.linspace(0, len(records) - 1, n).round().astype(int)
    return [records[i] for i in sorted(set(idx))]


def check_geometry(nifti_path, records: Sequence[InstanceRecord], *, sample: int = 6,
                   expect_volumes: int | None = None,
                   content_records: Sequence[InstanceRecord] | None = None) -> GeometryCheck:
    """Compare the NIfTI at ``nifti_path`` with ``records`` (see module doc).

    ``expect_volumes``: the number of volumes the NIfTI must hold (None: any number up to
    the records' own count, for DWI acquisitions where dcm2niix drops a scanner trace).
    ``content_records``: the records whose pixels are compared (default: ``records``).
    """
    import nibabel as nib

    recs = list(records)
    if not recs:
        return GeometryCheck("not checked", "no images")
    if any(r.is_mosaic for r in recs):
        return GeometryCheck("not checked", "Siemens mosaic: slice positions are not in the per-file headers")
    try:
        grid = dicom_grid(recs)
    except ValueError as exc:
        return GeometryCheck("not checked", f"DICOM geometry incomplete: {exc}")
    img = nib.load(str(nifti_path))
    shape = img.shape
    n_vol_nii = int(np.prod(shape[3:])) if len(shape) > 3 else 1
    n_slices = grid.shape[2]
    n_vol_dicom = len(recs) // n_slices if n_slices else 0
    check = GeometryCheck("ok", n_slices=n_slices, n_volumes=n_vol_nii)
    if len(recs) % n_slices:
        return GeometryCheck("mismatch", f"{len(recs)} images do not fill {n_slices} slice positions evenly",
                             n_slices, n_vol_nii)
    if sorted(shape[:3]) != sorted(grid.shape):
        return GeometryCheck("mismatch", f"NIfTI grid {tuple(shape[:3])} vs DICOM {grid.shape} (columns, rows, "
                             "slices)", n_slices, n_vol_nii)
    want = expect_volumes if expect_volumes is not None else n_vol_dicom
    if (expect_volumes is not None and n_vol_nii != want) or n_vol_nii > n_vol_dicom:
        return GeometryCheck("mismatch", f"NIfTI holds {n_vol_nii} volumes, the image set {n_vol_dicom}",
                             n_slices, n_vol_nii)
    spacing = min(np.linalg.norm(grid.col_step), np.linalg.norm(grid.row_step))
    if n_slices > 1:
        spacing = min(spacing, float(np.min(np.linalg.norm(np.diff(grid.slice_positions, axis=0), axis=1))))
    tol = max(0.25 * spacing, 1e-3)
    ours, theirs = grid.corners(), _nifti_corners(img.affine, shape)
    dist = np.linalg.norm(ours[:, None, :] - theirs[None, :, :], axis=2).min(axis=1)
    if dist.max() > tol:
        return GeometryCheck("mismatch", f"corner voxels differ by up to {dist.max():.2f} mm (tolerance {tol:.2f})",
                             n_slices, n_vol_nii)
    # voxel-for-voxel: sampled DICOM slices sit where the affine says
    inv = np.linalg.inv(img.affine)
    nc, nr, _ = grid.shape
    jj, ii = np.mgrid[0:nr, 0:nc]
    def volumes(scaled: bool) -> np.ndarray:
        d = img.get_fdata(dtype=np.float32) if scaled else np.asanyarray(img.dataobj.get_unscaled())
        return d.reshape(*d.shape[:3], -1)

    data = volumes(False)
    scaled = None
    rescaled = False
    cache: dict = {}
    compared = 0
    for r in _sample(list(content_records) if content_records else recs, sample):
        p = LPS_TO_RAS @ np.asarray(r.image_position, float)
        world = p[None, None, :] + ii[..., None] * grid.col_step + jj[..., None] * grid.row_step
        vox = world @ inv[:3, :3].T + inv[:3, 3]
        idx = np.rint(vox).astype(int)
        if np.abs(vox - idx).max() > 0.1 or (idx < 0).any() or (idx >= np.array(shape[:3])).any():
            return GeometryCheck("mismatch", f"slice at {_where(r)} falls off the NIfTI grid", n_slices, n_vol_nii,
                                 compared)
        try:
            pixels, slope, intercept = _pixels(r.path, r.frame_index, cache)
        except Exception as exc:  # noqa: BLE001 - any decoder failure: report, do not crash
            return GeometryCheck("not checked", f"pixel data unreadable with pydicom: {exc}"[:200], n_slices,
                                 n_vol_nii, compared)
        if pixels.ndim != 2:
            check.message = (f"{n_slices} slices x {n_vol_nii} volume(s) at the DICOM positions; colour image: "
                             "pixel values not compared")
            return check
        vals = data[idx[..., 0], idx[..., 1], idx[..., 2], :]  # (rows, cols, volumes)
        if pixels.shape != vals.shape[:2]:
            return GeometryCheck("mismatch", "slice matrix differs", n_slices, n_vol_nii, compared)
        found = any(np.array_equal(vals[..., t], pixels) for t in range(vals.shape[-1]))
        if not found:  # dcm2niix rescaled the data (e.g. slopes that vary per slice): compare real values
            if scaled is None:
                scaled = volumes(True)
            real = pixels.astype(np.float64) * slope + intercept
            vals = scaled[idx[..., 0], idx[..., 1], idx[..., 2], :]
            tol = 1e-3 * max(1.0, float(np.abs(real).max()))
            found = any(np.allclose(vals[..., t], real, rtol=1e-3, atol=tol) for t in range(vals.shape[-1]))
            rescaled = rescaled or found
        if not found:
            return GeometryCheck(
                "mismatch", f"the DICOM slice at {_where(r)} "
                f"(instance {r.instance_number}) is not in the NIfTI at its position", n_slices, n_vol_nii, compared)
        compared += 1
    check.slices_compared = compared
    check.message = (f"{n_slices} slices x {n_vol_nii} volume(s) at the DICOM positions; "
                     f"{compared} sampled slices equal voxel for voxel"
                     + (" (rescaled values, within 0.1%)" if rescaled else ""))
    return check
