"""Helpers for the conversion tests: the BIDS validator, sidecar reading."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


def bids_validator() -> str:
    """Path of the BIDS validator (npm bids-validator 1.x, see Makefile); skips the test when absent."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the BIDS validator cannot run")
    candidates = [os.environ.get("BREASTLAB_BIDS_VALIDATOR"),
                  str(PROJECT / ".tools/bids-validator/node_modules/.bin/bids-validator"),
                  shutil.which("bids-validator")]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    pytest.skip("bids-validator not installed (make bids-validator installs it with npm into .tools/)")


def validate_bids(root: Path) -> dict:
    """Run the validator; returns its JSON report (issues.errors / issues.warnings)."""
    proc = subprocess.run([bids_validator(), str(root), "--json"], capture_output=True, text=True, timeout=300)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"bids-validator gave no JSON (exit {proc.returncode}): {proc.stderr[-2000:]}")


def bids_errors(report: dict) -> list[str]:
    return [f"{i['key']}: {i['reason'][:120]} {[f['file']['relativePath'] for f in i['files'][:3] if f.get('file')]}"
            for i in report["issues"]["errors"]]


def sidecar(nifti: Path) -> dict:
    return json.loads(Path(str(nifti).replace(".nii.gz", ".json")).read_text())
