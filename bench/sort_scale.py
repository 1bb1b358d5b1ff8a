"""Benchmark: ``breastlab sort`` at archive scale (flat memory, incremental re-runs).

Builds once (reused afterwards) ``bench/out/scale_tree/copyNN/`` from the real files of
``$BREASTLAB_DATA`` (``nact-dce`` and ``dcmqa/*/In``, the set ``bench/sort_speed.py``
uses). Copy 00 is hard links; every other copy is the same bytes with its Study, Series
and SOP Instance UIDs rewritten (same length, consistently across the copy), so each copy
counts as new studies rather than duplicates: a hard link cannot change a UID. Trees of
about 20k, 80k (and, with ``--sizes 20000,80000,320000``, 320k) files are the first N
copies, given to one ``breastlab sort`` as several inputs. Then, in the same run:

1. a full run per tree (``--full``, fresh ``--out``): wall, CPU, peak RSS of the largest
   process (``ru_maxrss`` of waited-for children), files/s; RSS ratio largest/smallest;
2. an incremental re-run on the largest tree after adding one exam (one more rewritten
   copy of the NACT DCE study) against that tree's full run;
3. ``--engine dask`` with a LocalCluster of 2 worker processes against the default engine
   with 2 worker processes, on the smallest tree.

Every command runs in a fresh process with a warm page cache.

``--generated`` uses the realistic large archive of ``bench/archive_gen.py`` instead
(header-only copies with fresh UIDs and patient identity per copy, a few KB to a few
hundred KB on disk each): sizes 20,000, 320,000 and 1,000,000 files are the first copies
of one generated tree; it prints the disk each size needs and removes the tree at the end
(``--keep`` keeps it). The 1M / 20k peak-RSS ratio is the flat-memory check.

Usage::

    nice .venv/bin/python bench/sort_scale.py [--sizes 20000,80000] [--workers 2]
    nohup nice .venv/bin/python bench/sort_scale.py --generated --sizes 20000,320000,1000000 > scale.log &
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
sys.path.insert(0, str(ROOT / "bench"))

from sort_speed import _WRAP, source_files, warm  # noqa: E402

from breastlab.core.settings import data_root  # noqa: E402

OUT = ROOT / "bench" / "out"
#: the real command line (``breastlab.cli.main`` imports no model library at start-up)
_CLI = "from breastlab.cli.main import app; app()"
TREE = OUT / "scale_tree"


def rewrite_uids(src: Path, dst: Path, mapping: dict[bytes, bytes]) -> None:
    data = src.read_bytes()
    for old in sorted(mapping, key=len, reverse=True):
        data = data.replace(old, mapping[old])
    dst.write_bytes(data)


def source_uids(files: list[Path]) -> dict[Path, set[str]]:
    from breastlab.dicom.scan import scan_paths

    scan = scan_paths([str(p) for p in files], progress=False)
    uids: dict[Path, set[str]] = {}
    for r in scan.records:
        uids.setdefault(Path(r.path), set()).update(u for u in (r.study_uid, r.series_uid, r.sop_instance_uid) if u)
    return uids


def build(data: Path, n_copies: int) -> list[Path]:
    files = source_files(data)
    marker = TREE / ".complete.json"
    want = {"copies": n_copies, "n_source": len(files), "format": 2}
    if marker.is_file() and json.loads(marker.read_text()) == want:
        return [TREE / f"copy{c:02d}" for c in range(n_copies)]
    shutil.rmtree(TREE, ignore_errors=True)
    uids = source_uids(files)
    for c in range(n_copies):
        for src in files:
            dst = TREE / f"copy{c:02d}" / src.relative_to(data)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if c == 0 or src not in uids:
                os.link(src, dst)
            else:
                rewrite_uids(src, dst, _mapping(uids[src], c))
    marker.write_text(json.dumps(want))
    return [TREE / f"copy{c:02d}" for c in range(n_copies)]


def _mapping(uids: set[str], copy: int) -> dict[bytes, bytes]:
    """Same-length rewrite for one copy: the first three characters become ``9`` + the copy number.

    (Real UIDs start "1.2." or "1.3.", so no rewritten UID equals an original one; two
    UIDs that differ only in their first three characters would collide, which the
    source data does not have: the benchmark prints the duplicates it finds.)
    """
    code = f"9{copy:02d}"
    return {u.encode(): (code + u[3:]).encode() for u in uids if len(u) > 6}


def timed(cmd: list[str], env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", _WRAP, *cmd], capture_output=True, text=True, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        print(f"[warn] exit {result['rc']}: {result['stderr'][-400:]}", file=sys.stderr)
    return result


GEN_TREE = OUT / "gen_tree"


def build_generated(sizes: list[int]) -> tuple[list[Path], int, dict[int, int]]:
    """The generated archive (bench/archive_gen.py): whole copies for the largest size, plus one more."""
    from archive_gen import disk_usage, generate, load_templates

    templates = load_templates(data_root())
    n_source = len(templates)
    copies_for = {n: max(1, round(n / n_source)) for n in sizes}
    n_copies = max(copies_for.values()) + 1  # the extra copy supplies the "new exam"
    info = generate(GEN_TREE, n_copies * n_source, templates=templates)
    print(f"[gen] {json.dumps(info)}", file=sys.stderr)
    copies = [GEN_TREE / f"c{c:04d}" for c in range(n_copies)]
    per_copy = disk_usage(copies[0])
    for n in sizes:
        print(f"[gen] disk for {copies_for[n] * n_source} files: {per_copy * copies_for[n] / 1e9:.2f} GB "
              f"(du of one copy x copies)", file=sys.stderr)
    return copies, n_source, copies_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,80000", help="tree sizes in files (comma list)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--generated", action="store_true", help="the archive of bench/archive_gen.py")
    parser.add_argument("--keep", action="store_true", help="keep the generated archive")
    parser.add_argument("--no-dask", action="store_true", help="skip the engine comparison")
    args = parser.parse_args()
    data = data_root()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.generated:
        copies, n_source, copies_for = build_generated(sizes)
        tree = GEN_TREE
    else:
        n_source = len(source_files(data))
        copies_for = {n: max(1, round(n / n_source)) for n in sizes}
        copies = build(data, max(copies_for.values()) + 1)  # the extra copy supplies the "new exam"
        tree = TREE
    if sum(1 for _ in tree.rglob("*")) < 400_000:
        warm(tree)  # larger trees: the run itself warms what it reads first
    exe = [sys.executable, "-c", _CLI]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    extra = ["--no-progress"] + (["--workers", str(args.workers)] if args.workers else [])
    rows = []
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    for n in sizes:
        inputs = [str(p) for p in copies[: copies_for[n]]]
        n_files = copies_for[n] * n_source
        out = OUT / f"scale_out_{n}"
        shutil.rmtree(out, ignore_errors=True)
        run = timed([*exe, "sort", *inputs, "--out", str(out), "--full", *extra], env)
        run.update(name=f"full, {n_files} files", n_files=n_files)
        rows.append(run)
        print(f"[run] {run['name']}: {run['wall']:.1f} s, peak RSS {run['maxrss_kb'] / 1024:.0f} MB", file=sys.stderr)
    largest = sizes[-1]
    out = OUT / f"scale_out_{largest}"
    exam = copies[-1] / "nact-dce"
    inputs = [str(p) for p in copies[: copies_for[largest]]] + [str(exam)]
    inc = timed([*exe, "sort", *inputs, "--out", str(out), *extra], env)
    n_exam = sum(1 for p in exam.rglob("*") if p.is_file())
    inc.update(name=f"incremental, +1 exam ({n_exam} files)", n_files=rows[-1]["n_files"] + n_exam)
    rows.append(inc)
    again = timed([*exe, "sort", *inputs, "--out", str(out), *extra], env)  # nothing changed since
    again.update(name="unchanged re-run", n_files=inc["n_files"])
    rows.append(again)
    # the Dask engine, 2 local worker processes, against the default engine with 2 workers (smallest tree)
    small = sizes[0]
    inputs = [str(p) for p in copies[: copies_for[small]]]
    pair = {}
    for engine in () if args.no_dask else ("default", "dask"):
        out = OUT / f"scale_out_{engine}"
        shutil.rmtree(out, ignore_errors=True)
        run = timed([*exe, "sort", *inputs, "--out", str(out), "--full", "--no-progress", "-j", "2",
                     "--engine", engine], env)
        run.update(name=f"engine {engine}, 2 workers, {copies_for[small] * n_source} files",
                   n_files=copies_for[small] * n_source)
        rows.append(run)
        pair[engine] = run

    print(f"{'run':42s} {'wall s':>8s} {'cpu s':>8s} {'peak RSS MB':>12s} {'files/s':>9s}")
    for r in rows:
        print(f"{r['name']:42s} {r['wall']:8.2f} {r['cpu']:8.1f} {r['maxrss_kb'] / 1024:12.1f} "
              f"{r['n_files'] / r['wall']:9.0f}")
    full = [r for r in rows if r["name"].startswith("full")]
    print(f"\npeak RSS, largest / smallest tree: {full[-1]['maxrss_kb'] / full[0]['maxrss_kb']:.2f}x (target <= 1.25x)")
    print(f"incremental re-run / full run ({largest}): {inc['wall'] / full[-1]['wall']:.1%} (target <= 5%)")
    print(f"unchanged re-run / full run ({largest}): {again['wall'] / full[-1]['wall']:.1%}")
    if pair:
        print(f"dask (2 local workers) / default (2 workers): {pair['dask']['wall'] / pair['default']['wall']:.2f}x "
              f"(target <= 1.3x); per dask worker: {pair['dask']['n_files'] / pair['dask']['wall'] / 2:.0f} files/s")
    print(f"cores: {os.cpu_count()}  load average before: {load_before}  python {platform.python_version()}")
    (OUT / "sort_scale.json").write_text(json.dumps(rows, indent=2))
    if args.generated and not args.keep:
        shutil.rmtree(GEN_TREE, ignore_errors=True)
        for n in sizes:
            shutil.rmtree(OUT / f"scale_out_{n}", ignore_errors=True)


if __name__ == "__main__":
    main()
