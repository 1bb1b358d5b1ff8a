"""``--layout nnunet``: one folder per case, DCE phases as channels ``_0000``, ``_0001``, ... in time order.

```
DIR/dataset.json                   channel_names, labels, file_ending (nnU-Net v2)
DIR/cases.tsv                      case → study pseudonym, channel → source set, sidecar
DIR/<case>/<case>_0000.nii.gz      DCE pre-contrast (+ <case>_0000.json sidecar)
DIR/<case>/<case>_0001.nii.gz      first post-contrast phase, ...
DIR/imagesTs/<case>_0000.nii.gz    the same files, flat (hard links): nnUNetv2_predict -i DIR/imagesTs
```

Channels (``--channels``, comma-separated, default ``dce``): ``dce`` (every phase) or
``dce:N`` (the first N), ``t2``, ``dwi_low``, ``dwi_high``, ``adc``. nnU-Net needs every
channel on one voxel grid: T2, DWI and ADC are resampled (linear) onto the grid of
channel 0; a multi-direction DWI set becomes its trace-weighted image (geometric mean
over directions) unless the scanner wrote a trace. A case that lacks a channel is
left out (and listed): nnU-Net cannot use it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from breastlab.convert.layouts.cases import by_case, dce_phases, pick_dwi, pick_single, pick_t2
from breastlab.convert.layouts.common import Plan, TreeWriter
from breastlab.convert.pipeline import UnitResult
from breastlab.convert.units import plan_units
from breastlab.core.labels import Label
from breastlab.mri.classify import LabelledSet

TOKENS = ("dce", "t2", "dwi_low", "dwi_high", "adc")
_PICKS = {"t2": pick_t2, "dwi_low": lambda s: pick_dwi(s, "dwi_low"), "dwi_high": lambda s: pick_dwi(s, "dwi_high"),
          "adc": lambda s: pick_single(s, Label.ADC)}
_NAMES = {"t2": "T2", "dwi_low": str(Label.DWI_LOW), "dwi_high": str(Label.DWI_HIGH), "adc": str(Label.ADC)}


def parse_channels(text: str | None) -> list[tuple[str, int | None]]:
    """``"dce:2,t2"`` → ``[("dce", 2), ("t2", None)]``."""
    out: list[tuple[str, int | None]] = []
    for part in (text or "dce").split(","):
        part = part.strip().lower()
        if not part:
            continue
        name, _, n = part.partition(":")
        if name not in TOKENS:
            raise ValueError(f"unknown channel {name!r}; choose from {', '.join(TOKENS)} (dce:N for N phases)")
        if n and (name != "dce" or not n.isdigit() or int(n) < 1):
            raise ValueError(f"bad channel {part!r}: only dce takes a count, e.g. dce:2")
        out.append((name, int(n) if n else None))
    if not out:
        raise ValueError("no channels given")
    return out


def _case_channels(sets: Sequence[LabelledSet], spec, n_dce: int) -> tuple[list[tuple[str, LabelledSet | None]], str]:
    chans: list[tuple[str, LabelledSet | None]] = []
    phases, _ = dce_phases(sets)
    for name, n in spec:
        if name == "dce":
            k = n or n_dce
            for p in range(k):
                chans.append((str(Label.DCE_PRE) if p == 0 else f"DCE_post{p}", phases[p] if p < len(phases) else None))
        else:
            chans.append((_NAMES[name], _PICKS[name](sets)))
    missing = [c for c, ls in chans if ls is None]
    return chans, ("missing " + ", ".join(missing)) if missing else ""


def _n_dce(sets: Sequence[LabelledSet]) -> int:
    counts = [len(dce_phases(s)[0]) for s in by_case(sets).values()]
    counts = [c for c in counts if c]
    return max(counts) if counts else 0


def plan(sets: Sequence[LabelledSet], *, channels: str | None = None, **_: Any) -> Plan:
    spec = parse_channels(channels)
    n_dce = _n_dce(sets)
    wanted: set[str] = set()
    left: dict[str, str] = {}
    for case, csets in by_case(sets).items():
        chans, missing = _case_channels(csets, spec, n_dce)
        if missing:
            for ls in csets:
                left[ls.set_id] = f"case {case} left out: {missing}"
            continue
        wanted |= {ls.set_id for _, ls in chans if ls is not None}
    for ls in sets:
        if ls.set_id not in wanted:
            left.setdefault(ls.set_id, "not a channel of the nnU-Net layout")
    return Plan(plan_units(sets, want=lambda ls: ls.set_id in wanted, acquisitions=False), left)


def _as_3d(img):
    """A 4D multi-direction DWI → its trace-weighted image (geometric mean); 3D unchanged."""
    import nibabel as nib

    if len(img.shape) < 4 or img.shape[3] == 1:
        if len(img.shape) == 3:
            return img, ""
        return nib.Nifti1Image(np.asanyarray(img.dataobj).reshape(img.shape[:3]), img.affine, img.header), ""
    data = img.get_fdata(dtype=np.float32)
    geo = np.exp(np.log(np.clip(data, 1e-3, None)).mean(axis=3)).astype(np.float32)
    return nib.Nifti1Image(geo, img.affine), f"trace-weighted: geometric mean of {img.shape[3]} volumes"


def _same_grid(a, b) -> bool:
    return tuple(a.shape[:3]) == tuple(b.shape[:3]) and np.allclose(a.affine, b.affine, atol=1e-4)


def write(results: Sequence[UnitResult], writer: TreeWriter, *, channels: str | None = None, **_: Any) -> dict:
    import nibabel as nib
    from nibabel.processing import resample_from_to

    spec = parse_channels(channels)
    ok = {r.unit.first.set_id: r for r in results if r.ok and r.unit.kind == "set"}
    sets = [r.unit.first for r in results if r.unit.kind == "set"]
    n_dce = _n_dce(sets)
    notes: dict[str, str] = {}
    channel_names: dict[str, str] | None = None
    rows = []
    for case, csets in sorted(by_case(sets).items()):
        chans, missing = _case_channels(csets, spec, n_dce)
        failed = [c for c, ls in chans if ls is not None and ls.set_id not in ok]
        if missing or failed:
            for _, ls in chans:
                if ls is not None:
                    notes[ls.set_id] = f"case {case} left out: " + (missing or "conversion failed for " +
                                                                     ", ".join(failed))
            continue
        channel_names = channel_names or {str(i): c for i, (c, _) in enumerate(chans)}
        ref = None
        for i, (cname, ls) in enumerate(chans):
            res = ok[ls.set_id]
            img = res.main
            stem = f"{case}/{case}_{i:04d}"
            sidecar = dict(img.sidecar)
            sidecar["Breastlab"] = {**sidecar["Breastlab"], "channel": i, "channel_name": cname}
            src3, how = _as_3d(nib.load(str(img.nifti)))
            if ref is None:
                ref = src3
            if _same_grid(src3, ref) and not how:  # dcm2niix's file as it is (hard link)
                nii = writer.put_image(img, stem, sidecar=sidecar, diffusion=False)
            else:
                out = src3
                if not _same_grid(src3, ref):
                    out = resample_from_to(src3, (ref.shape[:3], ref.affine), order=1)
                    out = nib.Nifti1Image(np.asarray(out.dataobj, dtype=np.float32), out.affine)
                    how = "; ".join(x for x in (how, "resampled (linear) onto the grid of channel 0") if x)
                sidecar["Breastlab"]["derived"] = how
                nii = writer.put_nifti(ls.set_id, out, stem, sidecar)
            writer.hard_link(ls.set_id, nii, f"imagesTs/{case}_{i:04d}.nii.gz")
            rows.append({"case": case, "channel": i, "channel_name": cname, "set_id": ls.set_id,
                         "label": ls.label, "dce_phase": ls.summary.dce_phase,
                         "dce_seconds": ls.summary.dce_seconds, "file": nii})
    writer.write_json("dataset.json", {
        "name": "breastlab conversion",
        "description": "Breast MRI converted by breastlab (sort --convert --layout nnunet); channels in time order",
        "channel_names": channel_names or {},
        "labels": {"background": 0},
        "numTraining": 0,
        "file_ending": ".nii.gz",
    })
    writer.write_tsv("cases.tsv", rows, ["case", "channel", "channel_name", "set_id", "label", "dce_phase",
                                         "dce_seconds", "file"])
    return notes
