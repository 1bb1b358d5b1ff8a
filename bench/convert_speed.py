"""Benchmark: ``breastlab sort --convert`` against plain ``dcm2niix`` on the same inputs.

Inputs: ``$BREASTLAB_DATA/nact-dce`` and every ``$BREASTLAB_DATA/dcmqa/*/In`` folder.
Times, in the same run, each in a fresh process with a warm page cache:

1. baseline: ``dcm2niix -z y -b y -ba y -d 9 -o OUT INPUT`` once per input folder (a
   generic conversion: one NIfTI per series as dcm2niix groups it, no labels, no layout);
2. ``breastlab sort INPUTS --out S --convert C --layout bids`` (header scan, sorting,
   one dcm2niix call per image set and per DWI acquisition, geometry and b-value
   checks, BIDS tree, publication).

Prints the ratio 2 / 1 and what each produced. Usage::

    nice .venv/bin/python bench/convert_speed.py [--repeat R] [--layout bids|nnunet|odelia]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from breastlab.core.settings import data_root  # noqa: E402


def _inputs() -> list[Path]:
    root = data_root()
    found = [root / "nact-dce"] if (root / "nact-dce").is_dir() else []
    found += sorted(p / "In" for p in (root / "dcmqa").glob("*") if (p / "In").is_dir())
    return found


def _warm(paths: list[Path]) -> int:
    n = 0
    for p in paths:
        for f in p.rglob("*"):
            if f.is_file():
                f.read_bytes()
                n += 1
    return n


def _time(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0,):
        print(f"warning: {' '.join(cmd[:3])} ... exit {proc.returncode}: {proc.stderr[-300:]}", file=sys.stderr)
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--layout", default="bids")
    args = ap.parse_args()
    import dcm2niix

    inputs = _inputs()
    if not inputs:
        sys.exit(f"no inputs under {data_root()} (set BREASTLAB_DATA)")
    n_files = _warm(inputs)
    breastlab = str(Path(sys.executable).with_name("breastlab"))
    base_t, ours_t = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for rep in range(args.repeat):
            out = tmp / f"plain{rep}"
            t = 0.0
            for i, p in enumerate(inputs):
                (out / str(i)).mkdir(parents=True)
                t += _time([dcm2niix.bin, "-z", "y", "-b", "y", "-ba", "y", "-d", "9", "-o", str(out / str(i)),
                            str(p)])
            base_t.append(t)
            ours_t.append(_time([breastlab, "sort", *map(str, inputs), "--out", str(tmp / f"s{rep}"), "--convert",
                                 str(tmp / f"c{rep}"), "--layout", args.layout, "--no-progress"]))
        plain_nii = len(list((tmp / "plain0").rglob("*.nii.gz")))
        rows = list(json.loads((tmp / "c0" / "conversion.json").read_text()))
    best_base, best_ours = min(base_t), min(ours_t)
    print(f"inputs: {len(inputs)} folders, {n_files} files; repeats: {args.repeat} (best of)")
    print(f"plain dcm2niix:          {best_base:6.2f} s  ({plain_nii} NIfTI, unlabelled)")
    print(f"breastlab sort+convert:  {best_ours:6.2f} s  ({sum(r['status'] == 'converted' for r in rows)} units "
          f"converted and checked, {args.layout} layout)")
    print(f"ratio breastlab / plain dcm2niix: {best_ours / best_base:.2f}x")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
