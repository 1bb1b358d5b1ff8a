"""Benchmark: what ``breastlab sort --review`` adds to ``breastlab sort`` (issue 20: at most 20%).

Writes (once, reused afterwards) a 20+-study phantom tree under ``bench/out/review_tree``
(7 seeds x 3 vendors of :func:`breastlab.phantom.mri.write_mri_phantom`, 16 slices of
128x128), then times, in the same run and alternating, ``breastlab sort TREE --out OUT
--full`` without and with ``--review`` (fresh processes, fresh output folders, same
``--workers``), best of ``--repeat``. Prints both wall times, the CPU time of each command
with its worker processes (less sensitive to a busy machine), the ratios and the page's size.
``--data PATH`` times another tree instead (e.g. ``$BREASTLAB_DATA``).

Usage::

    nice .venv/bin/python bench/review_overhead.py [--data PATH] [--workers W] [--repeat R]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
OUT = ROOT / "bench" / "out"
TREE = OUT / "review_tree"


def phantom_tree(seeds: int = 7) -> Path:
    from breastlab.phantom.mri import write_mri_phantom

    done = TREE / ".complete"
    if not done.is_file():
        shutil.rmtree(TREE, ignore_errors=True)
        for seed in range(seeds):
            write_mri_phantom(TREE / f"seed{seed}", seed=seed)
        done.write_text("ok\n")
    return TREE


def sort_once(tree: Path, out: Path, workers: int, review: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its workers) of one sort."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "breastlab.cli.main", "sort", str(tree), "--out", str(out), "--full",
           "--no-progress", "-j", str(workers)] + (["--review"] if review else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "BREASTLAB_CONFIG": str(OUT / "no-config.toml")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="tree to sort (default: the phantom tree)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)
    tree = args.data or phantom_tree()
    plain, review = [], []
    for _ in range(args.repeat):
        plain.append(sort_once(tree, OUT / "review_plain", args.workers, False))
        review.append(sort_once(tree, OUT / "review_page", args.workers, True))
    page = OUT / "review_page" / "review.html"
    html = page.read_text(encoding="utf-8")
    data = json.loads(html.split('type="application/json">', 1)[1].split("</script>", 1)[0])
    n_images = sum(int(s.get("n_images") or 0) for s in data["sets"])
    t_plain, t_review = min(w for w, _ in plain), min(w for w, _ in review)
    c_plain, c_review = min(c for _, c in plain), min(c for _, c in review)
    print(f"tree {tree}: {len(data['studies'])} studies, {len(data['sets'])} image sets, {n_images} images; "
          f"workers {args.workers}")
    print(f"sort {t_plain:.2f} s; sort --review {t_review:.2f} s; review page {page.stat().st_size / 1024:.0f} KB "
          f"({sum(1 for s in data['sets'] if not s.get('img'))} sets without a thumbnail)")
    print(f"CPU time (all processes): sort {c_plain:.2f} s; sort --review {c_review:.2f} s; "
          f"ratio {c_review / c_plain:.3f} (+{100 * (c_review / c_plain - 1):.1f}%)")
    print(f"ratio (sort --review / sort) = {t_review / t_plain:.3f}  (+{100 * (t_review / t_plain - 1):.1f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
