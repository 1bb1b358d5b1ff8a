"""Run dcm2niix (PyPI package ``dcm2niix``, the field's reference converter) on one staged folder.

One call converts one folder that holds exactly the files of one image set (or one
DWI acquisition): ``dcm2niix -z y -b y -ba y|n -f img -o OUT IN``. The result lists
every NIfTI it wrote with its sidecars, or the message that explains a failure.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from breastlab.core.errors import BreastlabError

DEFAULT_TIMEOUT = 600.0  # seconds per image set; a hung conversion is killed and reported


class Dcm2niixMissing(BreastlabError, RuntimeError):
    """dcm2niix is not installed (one-line message for the user)."""

    exit_code = 2


@dataclass
class NiftiOutput:
    """One image dcm2niix wrote, with its sidecars (``None`` when absent)."""

    nifti: Path
    json: Path | None = None
    bval: Path | None = None
    bvec: Path | None = None


@dataclass
class Dcm2niixResult:
    ok: bool
    outputs: list[NiftiOutput] = field(default_factory=list)
    message: str = ""  # dcm2niix's own error/warning lines (or why it did not run)
    log: str = ""


def executable() -> str:
    """Path of the dcm2niix binary: the PyPI package's, else one on PATH."""
    try:
        import dcm2niix as pkg

        path = getattr(pkg, "bin", None)
        if path and os.access(path, os.X_OK):
            return str(path)
    except ImportError:
        pass
    found = shutil.which("dcm2niix")
    if not found:
        raise Dcm2niixMissing("dcm2niix is not installed (pip install dcm2niix)")
    return found


@lru_cache(maxsize=1)
def version() -> str:
    """dcm2niix's version string, e.g. ``v1.0.20260724``."""
    try:
        out = subprocess.run([executable(), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired, Dcm2niixMissing):
        return "unknown"
    m = re.search(r"v\d+\.\d+\.\d+\w*", out.stdout + out.stderr)
    return m.group(0) if m else "unknown"


_MESSAGE = re.compile(r"^(error|warning|unsupported|unable|no valid|slices not stacked)", re.I)


def _messages(log: str) -> str:
    lines = [ln.strip() for ln in log.splitlines() if _MESSAGE.match(ln.strip())]
    return " | ".join(dict.fromkeys(lines))[:2000]


def collect_outputs(out_dir: Path) -> list[NiftiOutput]:
    """Every ``*.nii.gz`` / ``*.nii`` in ``out_dir`` with the sidecars sharing its stem."""
    outputs = []
    for nii in sorted(out_dir.iterdir()):
        name = nii.name
        if name.endswith(".nii.gz"):
            stem = name[: -len(".nii.gz")]
        elif name.endswith(".nii"):
            stem = name[: -len(".nii")]
        else:
            continue
        side = {ext: out_dir / f"{stem}.{ext}" for ext in ("json", "bval", "bvec")}
        outputs.append(NiftiOutput(nii, *(p if p.is_file() else None for p in side.values())))
    return outputs


def run_dcm2niix(
    src_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    keep_phi: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> Dcm2niixResult:
    """Convert the DICOM files in ``src_dir`` into ``out_dir`` (gzip NIfTI + JSON sidecar).

    ``-ba y`` (dcm2niix's own anonymisation of the sidecar) unless ``keep_phi``; breastlab
    drops identity fields again afterwards (:mod:`breastlab.convert.sidecar`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cmd = [executable(), "-z", "y", "-b", "y", "-ba", "n" if keep_phi else "y", "-f", "img", "-o", str(out),
           str(src_dir)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        return Dcm2niixResult(False, message=f"dcm2niix did not finish within {timeout:g} s (killed)")
    except OSError as exc:
        return Dcm2niixResult(False, message=f"dcm2niix could not run: {exc}")
    log = proc.stdout + proc.stderr
    outputs = collect_outputs(out)
    message = _messages(log)
    if proc.returncode != 0 or not outputs:
        return Dcm2niixResult(False, outputs, message or f"dcm2niix exit status {proc.returncode}, no image written",
                              log)
    return Dcm2niixResult(True, outputs, message, log)
