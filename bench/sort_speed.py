"""Benchmark: ``breastlab sort`` against a plain pydicom loop and ``dcm2niix -b o``.

Builds (once, reused afterwards) a tree of >= 20,000 DICOM files under
``bench/out/sort_tree`` by copying the real files of ``$BREASTLAB_DATA``
(``nact-dce`` and ``dcmqa/*/In``; the SEG mask and licence file come along, so
the tree also holds files that must be skipped). Then times, in the same run:

1. ``breastlab sort TREE --out OUT`` (the full CLI; until it exists, a
   ``python -c`` call of ``breastlab.dicom.scan.scan_paths``);
2. a plain ``pydicom.dcmread(path, stop_before_pixels=True)`` loop over the
   same files (one process);
3. ``dcm2niix -b o -d 9 -o OUT TREE`` (BIDS sidecars only, no images; ``-d 9``
   because the default search depth, 5, would miss the deepest folders).

Every command runs in a fresh process (start-up included), with a warm page
cache (the tree is read once before timing). Peak RSS is the largest single
process of the command tree (``ru_maxrss`` of waited-for children).

Usage::

    nice .venv/bin/python bench/sort_speed.py [--copies N] [--workers W] [--repeat R]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from breastlab.core.settings import data_root  # noqa: E402

OUT = ROOT / "bench" / "out"
TREE = OUT / "sort_tree"
MIN_FILES = 20_000

_WRAP = r"""
import resource, subprocess, sys, time, json
t0 = time.perf_counter()
proc = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
wall = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": wall, "rc": proc.returncode, "maxrss_kb": usage.ru_maxrss,
                  "cpu": usage.ru_utime + usage.ru_stime, "stderr": proc.stderr.decode()[-2000:],
                  "stdout_head": proc.stdout.decode(errors="replace")[:600]}))
"""

_PLAIN_LOOP = r"""
import os, sys, pydicom
n = bad = 0
for root, dirs, files in os.walk(sys.argv[1]):
    dirs[:] = [d for d in dirs if not d.startswith('.')]
    for name in files:
        if name.startswith('.'):
            continue
        try:
            pydicom.dcmread(os.path.join(root, name), stop_before_pixels=True)
            n += 1
        except Exception:
            bad += 1
print(n, bad)
"""

_SCAN_ONLY = r"""
import sys
from breastlab.dicom.scan import scan_paths
r = scan_paths([sys.argv[1]], workers=int(sys.argv[2]) if len(sys.argv) > 2 else None, progress=False)
print(len(r.records), len(r.skipped))
"""


#: in one process: header reading per file with the compiled and the pure-Python walker (CPU time, best
#: of 3), and the share of the index commit in a whole sort (sort_exam, one worker)
_IN_PROCESS = r"""
import json, os, sys, time
from breastlab.dicom import _parse
from breastlab.dicom.headers import read_records
files = [os.path.join(r, n) for r, ds, ns in os.walk(sys.argv[1]) for n in sorted(ns)][: int(sys.argv[2])]
out = {}
for mode in (True, False):
    _parse.use_compiled(mode)
    for p in files[:200]:
        read_records(p)
    best = 1e9
    for _ in range(3):
        t = time.process_time()
        for p in files:
            read_records(p)
        best = min(best, time.process_time() - t)
    out[_parse.WALKER] = best / len(files) * 1e3
_parse.use_compiled(True)
import shutil
import pyarrow as pa
t = time.process_time()
pa.array([1])  # pyarrow imports pandas at its first array from Python objects: a fixed cost, not the commit's
out["pyarrow_first_array_s"] = time.process_time() - t
from breastlab.index import store
from breastlab.mri.sorter import sort_exam
spent = [0.0]
real = store.commit_batch
def timed_commit(*a, **kw):
    t = time.process_time()
    try:
        return real(*a, **kw)
    finally:
        spent[0] += time.process_time() - t
store.commit_batch = timed_commit
dest = sys.argv[3]
shutil.rmtree(dest, ignore_errors=True)
t = time.process_time()
sort_exam([sys.argv[1]], out_dir=dest, workers=1, progress=False, keep_records=False)
out["sort_cpu_s"] = time.process_time() - t
out["commit_cpu_s"] = spent[0]
shutil.rmtree(dest, ignore_errors=True)
print(json.dumps(out))
"""


def source_files(data: Path) -> list[Path]:
    files = [p for p in sorted((data / "nact-dce").rglob("*")) if p.is_file()]
    for vendor in sorted((data / "dcmqa").iterdir()):
        if (vendor / "In").is_dir():
            files += [p for p in sorted((vendor / "In").rglob("*")) if p.is_file()]
    return files


def build_tree(data: Path, copies: int | None) -> int:
    files = source_files(data)
    if not files:
        raise SystemExit(f"no source files under {data}")
    copies = copies or -(-MIN_FILES // len(files))
    marker = TREE / ".complete.json"
    want = {"copies": copies, "n_source": len(files)}
    if marker.is_file() and json.loads(marker.read_text()) == want:
        return copies * len(files)
    if TREE.exists():
        shutil.rmtree(TREE)
    for c in range(copies):
        for src in files:
            rel = src.relative_to(data)
            dst = TREE / f"copy{c:02d}" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    marker.write_text(json.dumps(want))
    return copies * len(files)


def warm(tree: Path) -> None:
    for root, _, names in os.walk(tree):
        for name in names:
            with open(os.path.join(root, name), "rb") as fh:
                while fh.read(1 << 20):
                    pass


def timed(cmd: list[str], env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", _WRAP, *cmd], capture_output=True, text=True, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cmd"] = " ".join(cmd)
    return result


def cli_available(env: dict[str, str]) -> bool:
    exe = Path(sys.executable).parent / "breastlab"
    if not exe.exists():
        return False
    probe = subprocess.run([str(exe), "sort", "--help"], capture_output=True, env=env)
    return probe.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=None, help="copies of the source set (default: enough for 20,000 files)")
    parser.add_argument("--workers", type=int, default=None, help="scan workers (default: all cores)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per command; the best is kept")
    parser.add_argument("--skip-dcm2niix", action="store_true")
    args = parser.parse_args()

    data = data_root()
    n_files = build_tree(data, args.copies)
    warm(TREE)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    bin_dir = Path(sys.executable).parent
    sort_out = OUT / "sort_result"
    d2n_out = OUT / "dcm2niix_out"

    commands: dict[str, list[str]] = {}
    pure_env = dict(env, BREASTLAB_PURE_PYTHON="1")
    if cli_available(env):
        commands["breastlab sort"] = [str(bin_dir / "breastlab"), "sort", str(TREE), "--out", str(sort_out)]
        if args.workers:
            commands["breastlab sort"] += ["--workers", str(args.workers)]
        commands["breastlab sort, pure-Python walker"] = commands["breastlab sort"]
        commands["breastlab sort, unchanged re-run"] = commands["breastlab sort"]
    else:
        print("[info] `breastlab sort` not available yet: timing scan_paths only", file=sys.stderr)
    # header reading alone (scan_paths), to separate parsing from the sorting rules/outputs
    commands["scan_paths only (header reading)"] = [
        sys.executable, "-c", _SCAN_ONLY, str(TREE), *([str(args.workers)] if args.workers else [])]
    commands["plain pydicom loop"] = [sys.executable, "-c", _PLAIN_LOOP, str(TREE)]
    if not args.skip_dcm2niix:
        commands["dcm2niix -b o"] = [str(bin_dir / "dcm2niix"), "-b", "o", "-d", "9", "-o", str(d2n_out), str(TREE)]

    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    results = {}
    for name, cmd in commands.items():
        best = None
        for _ in range(args.repeat):
            for folder in (sort_out, d2n_out):
                if name != "breastlab sort, unchanged re-run":  # re-runs on the previous run's --out
                    shutil.rmtree(folder, ignore_errors=True)
            d2n_out.mkdir(parents=True, exist_ok=True)
            run = timed(cmd, pure_env if "pure-Python" in name else env)
            if run["rc"] != 0:
                print(f"[warn] {name} exited {run['rc']}: {run['stderr'][-500:]}", file=sys.stderr)
            if best is None or run["wall"] < best["wall"]:
                best = run
        results[name] = best
        print(f"{name:45s} {best['wall']:8.2f} s  cpu {best['cpu']:7.1f} s  peak RSS {best['maxrss_kb'] / 1024:7.1f} MB")

    print()
    print(f"files: {n_files}  cores: {os.cpu_count()}  load average before: {load_before}  "
          f"python {platform.python_version()}")
    proc = subprocess.run([sys.executable, "-c", _IN_PROCESS, str(TREE), str(min(n_files, 6000)),
                           str(OUT / "in_process_out")], capture_output=True, text=True, env=env)
    inproc = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {}
    if proc.returncode:
        print(f"[warn] in-process measure failed: {proc.stderr[-500:]}", file=sys.stderr)
    print("\nratios (one run):")
    if inproc.get("compiled"):
        print(f"header reading per file, one process (CPU): compiled {inproc['compiled']:.3f} ms, pure Python "
              f"{inproc['python']:.3f} ms: {inproc['python'] / inproc['compiled']:.2f}x (target >= 2.5x)")
    if inproc:
        print(f"index commit / whole sort (CPU, one process): {inproc['commit_cpu_s'] / inproc['sort_cpu_s']:.1%} "
              f"(target <= 10%; pyarrow's first array, which imports pandas, measured apart: "
              f"{inproc['pyarrow_first_array_s']:.2f} s)")
    if "breastlab sort" in results and "dcm2niix -b o" in results:
        d2n = results["dcm2niix -b o"]["wall"]
        for name in ("breastlab sort", "breastlab sort, unchanged re-run", "breastlab sort, pure-Python walker"):
            print(f"{name} / dcm2niix -b o (wall): {results[name]['wall'] / d2n:.2f}x (target <= 1.5x)")
    if "breastlab sort" in results:
        print(f"unchanged re-run / full sort (wall): "
              f"{results['breastlab sort, unchanged re-run']['wall'] / results['breastlab sort']['wall']:.1%}")
    baselines = [n for n in results if n in ("plain pydicom loop", "dcm2niix -b o")]
    for ours_name in [n for n in results if n not in baselines]:
        ours = results[ours_name]
        for name in baselines:
            base = results[name]
            print(f"{ours_name} vs {name}: wall {base['wall'] / ours['wall']:.2f}x, "
                  f"cpu {base['cpu'] / ours['cpu']:.2f}x  (>1 = ours faster)")
    (OUT / "sort_speed.json").write_text(json.dumps({"n_files": n_files, "results": results, "in_process": inproc},
                                                    indent=2))


if __name__ == "__main__":
    main()
