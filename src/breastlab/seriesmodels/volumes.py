"""Header-free slices → volumes: read pixel data and geometry, regroup by slice position.

When headers are stripped (anonymised exports), several phases of one dynamic series
can arrive as one bag of slices. Geometry alone says how many volumes there are: each
slice position repeats once per phase. Which slice at a position belongs to which
volume is then decided by image continuity: walking along the slice axis, the slices of
each position are matched to the tracks of the previous position by the assignment of
least mean absolute difference (Hungarian algorithm). No time, number or order header
is read.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Slice:
    """One 2D image with its geometry (nothing else from the header)."""

    path: str
    pixels: np.ndarray
    position: tuple[float, float, float] | None = None
    orientation: tuple[float, ...] | None = None
    spacing: tuple[float, float] | None = None

    def normal(self) -> np.ndarray:
        if self.orientation is None or len(self.orientation) != 6:
            return np.array([0.0, 0.0, 1.0])
        row, col = np.asarray(self.orientation[:3]), np.asarray(self.orientation[3:])
        n = np.cross(row, col)
        return n / (np.linalg.norm(n) or 1.0)


@dataclass
class Volume:
    """Slices of one phase/series, sorted along the slice normal."""

    slices: list[Slice] = field(default_factory=list)

    @property
    def array(self) -> np.ndarray:
        return np.stack([s.pixels for s in self.slices])

    @property
    def paths(self) -> list[str]:
        return [s.path for s in self.slices]


def read_slice(path: str | os.PathLike) -> Slice:
    """Pixel data (rescaled) and geometry of a single-frame DICOM file (``dicom.pixels``)."""
    from breastlab.dicom.pixels import read_slice as read_pixels

    s = read_pixels(path)
    return Slice(path=str(path), pixels=s.pixels, position=s.position,
                 orientation=s.orientation, spacing=s.spacing)


def slice_positions(slices: Sequence[Slice], *, tolerance: float = 0.01) -> np.ndarray:
    """Coordinate of each slice along the common normal, rounded to ``tolerance`` mm."""
    normal = slices[0].normal()
    coords = []
    for index, s in enumerate(slices):
        coords.append(float(np.dot(np.asarray(s.position), normal)) if s.position else float(index))
    return np.round(np.asarray(coords) / tolerance) * tolerance


def group_by_geometry(slices: Sequence[Slice], *, tolerance: float = 0.01) -> list[Volume]:
    """Split a bag of slices into volumes: repeats per position = number of volumes.

    Slices with a different orientation or matrix size form separate groups first.
    Within a group, tracks are built position by position with a minimum-difference
    assignment. Positions with fewer repeats than the group (a truncated phase) are
    assigned to the best-matching tracks.
    """
    from scipy.optimize import linear_sum_assignment

    by_key: dict[tuple, list[Slice]] = {}
    for s in slices:
        orient = tuple(np.round(s.orientation, 3)) if s.orientation else None
        by_key.setdefault((orient, s.pixels.shape), []).append(s)

    volumes: list[Volume] = []
    for group in by_key.values():
        coords = slice_positions(group, tolerance=tolerance)
        positions: dict[float, list[Slice]] = {}
        for c, s in zip(coords, group):
            positions.setdefault(float(c), []).append(s)
        ordered = [positions[c] for c in sorted(positions)]
        k = max(len(p) for p in ordered)
        tracks: list[list[Slice]] = [[] for _ in range(k)]
        start = next(i for i, p in enumerate(ordered) if len(p) == k)
        for t, s in enumerate(ordered[start]):
            tracks[t].append(s)
        # walk forward then backward from the first complete position
        for direction, seq in ((1, ordered[start + 1:]), (-1, ordered[:start][::-1])):
            for here in seq:
                ends = [tr[-1] if direction == 1 else tr[0] for tr in tracks]
                cost = np.array([[float(np.mean(np.abs(a.pixels - e.pixels))) for e in ends] for a in here])
                rows, cols = linear_sum_assignment(cost)
                for r, c in zip(rows, cols):
                    if direction == 1:
                        tracks[c].append(here[r])
                    else:
                        tracks[c].insert(0, here[r])
        volumes.extend(Volume(slices=tr) for tr in tracks if tr)
    return volumes


def read_volumes(paths: Iterable[str | os.PathLike], *, tolerance: float = 0.01) -> list[Volume]:
    """Read header-free DICOM slices and regroup them into volumes from geometry."""
    slices = [read_slice(Path(p)) for p in paths]
    return group_by_geometry(slices, tolerance=tolerance)
