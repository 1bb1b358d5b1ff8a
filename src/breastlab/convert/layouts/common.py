"""What every layout shares: a plan (units to convert, sets left out), and a tree writer."""
from __future__ import annotations

import os
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from breastlab.convert.pipeline import ConvertedImage
from breastlab.convert.units import Unit
from breastlab.core import atomic


@dataclass
class Plan:
    units: list[Unit]
    left_out: dict[str, str] = field(default_factory=dict)  # set_id → why it is not in the layout


def _link_or_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


class TreeWriter:
    """Places converted images under ``root``; remembers what went where, per unit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.placed: dict[str, list[str]] = defaultdict(list)  # unit_id → relative paths
        self.notes: dict[str, list[str]] = defaultdict(list)  # unit_id → remarks for the report
        self._names: set[str] = set()

    def taken(self, rel: str) -> bool:
        return rel in self._names

    def _record(self, unit_id: str, rel: str) -> None:
        self._names.add(rel)
        self.placed[unit_id].append(rel)

    def put_image(self, img: ConvertedImage, stem: str, *, sidecar: dict[str, Any] | None = None,
                  diffusion: bool = True, json_sidecar: bool = True) -> str:
        """Place ``img`` as ``stem.nii.gz`` (+ ``.json``, ``.bval``/``.bvec``); returns the NIfTI path."""
        nii = f"{stem}.nii.gz"
        _link_or_copy(img.nifti, self.root / nii)
        self._record(img.unit.unit_id, nii)
        if json_sidecar:
            atomic.write_json(self.root / f"{stem}.json", sidecar if sidecar is not None else img.sidecar)
            self._record(img.unit.unit_id, f"{stem}.json")
        if diffusion:
            for ext, path in (("bval", img.bval), ("bvec", img.bvec)):
                if path is not None:
                    _link_or_copy(path, self.root / f"{stem}.{ext}")
                    self._record(img.unit.unit_id, f"{stem}.{ext}")
        return nii

    def put_nifti(self, unit_id: str, nifti_img, stem: str, sidecar: dict[str, Any] | None) -> str:
        """Save a nibabel image computed here (reduced or resampled) as ``stem.nii.gz``."""
        import nibabel as nib

        nii = f"{stem}.nii.gz"
        dest = self.root / nii
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp.nii.gz")
        nib.save(nifti_img, str(tmp))
        os.replace(tmp, dest)
        self._record(unit_id, nii)
        if sidecar is not None:
            atomic.write_json(self.root / f"{stem}.json", sidecar)
            self._record(unit_id, f"{stem}.json")
        return nii

    def hard_link(self, unit_id: str, existing: str, new: str) -> str:
        _link_or_copy(self.root / existing, self.root / new)
        self._record(unit_id, new)
        return new

    def write_text(self, rel: str, text: str) -> None:
        atomic.write_text(self.root / rel, text)
        self._names.add(rel)

    def write_json(self, rel: str, obj: Any) -> None:
        atomic.write_json(self.root / rel, obj)
        self._names.add(rel)

    def write_tsv(self, rel: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
        """A TSV written with the ``csv`` module (a tab, newline or quote in a value never splits a
        row) and the cell policy of :mod:`breastlab.core.csvcells`; empty values are ``n/a`` (BIDS)."""
        import csv
        import io

        from breastlab.core.csvcells import row_cells

        buf = io.StringIO()
        writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            cells = row_cells({c: row.get(c) for c in columns})
            writer.writerow(["n/a" if cells[c] == "" else cells[c] for c in columns])
        self.write_text(rel, buf.getvalue())
