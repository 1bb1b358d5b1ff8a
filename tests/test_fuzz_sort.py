"""Fuzz suite: ``breastlab sort`` on a hostile tree (real files, 480 mutants, special entries).

Fixed seed, time-bounded. Asserts: exit 0, no traceback, no file failed by a bug (reason
``error``), nothing lost (every entry is in instances.csv or skipped.csv), good series
sorted exactly as on a clean tree, input unchanged, bounded memory. The counts are
printed (``pytest -s``) and written to ``fuzz-counts.json`` in the test's folder.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import require
from fuzz_mutants import all_entries, build_tree, tree_state

SEED = 7
TIME_LIMIT = 300  # seconds for one sort run: a hang fails the test instead of stalling the suite
RSS_LIMIT_MB = 1024  # the header cap is 64 MiB; a healthy run stays near 250 MB

#: runs the CLI as a child and reports the peak RSS of its process tree (ru_maxrss, KiB)
_MEASURE = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(sys.argv[1:])\n"
    "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(r.returncode)\n"
)


def _sort(inputs: Path, out: Path, export: Path | None = None) -> tuple[subprocess.CompletedProcess, int]:
    cli = [sys.executable, "-m", "breastlab.cli.main", "sort", str(inputs), "--out", str(out), "-j", "2",
           "--no-progress"]
    if export is not None:
        cli += ["--export", str(export)]
    proc = subprocess.run([sys.executable, "-c", _MEASURE, *cli], capture_output=True, text=True,
                          errors="replace", timeout=TIME_LIMIT, env={**os.environ, "COLUMNS": "200"})
    peak = int(next(line.split()[1] for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB")))
    return proc, peak


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as fh:
        return list(csv.DictReader(fh))


def _series_view(rows: list[dict[str, str]], uids: set[str]) -> list[tuple]:
    keys = ("series_uid", "image_set", "label", "n_images", "b_value", "dce_phase", "rule", "b_values")
    return sorted(tuple(r[k] for k in keys) for r in rows if r["series_uid"] in uids)


@pytest.mark.slow
def test_sort_survives_a_hostile_tree(shared_data: Path, tmp_path: Path) -> None:
    require(shared_data / "nact-dce")
    require(shared_data / "dcmqa")
    t0 = time.monotonic()
    tree = build_tree(tmp_path / "in", shared_data, seed=SEED)
    entries = all_entries(tree.root)
    before = tree_state(tree.root)

    clean, _ = _sort(tree.good, tmp_path / "clean")
    assert clean.returncode == 0, clean.stderr
    hostile, peak_kb = _sort(tree.root, tmp_path / "out", tmp_path / "export")
    output = hostile.stdout + hostile.stderr
    assert hostile.returncode == 0, output[-3000:]
    assert "Traceback" not in output

    instances = _rows(tmp_path / "out" / "instances.csv")
    skipped = _rows(tmp_path / "out" / "skipped.csv")
    accounted = {os.fsencode(r["path"]) for r in instances} | {os.fsencode(r["path"]) for r in skipped}
    lost = sorted(entries - accounted)
    crashes = [r for r in skipped if r["reason"] == "error"]

    good_rows = _rows(tmp_path / "clean" / "series.csv")
    good_uids = {r["series_uid"] for r in good_rows}
    counts = {
        "seed": SEED,
        "entries": len(entries),
        "mutants": tree.n_mutants,
        "mutations": tree.kinds,
        "files_tried": len(entries),
        "records": len(instances),
        "skipped": len(skipped),
        "skip_reasons": {k: sum(r["reason"] == k for r in skipped) for k in sorted({r["reason"] for r in skipped})},
        "crashes": len(crashes),
        "hangs": 0,  # a hang would have raised TimeoutExpired above
        "entries_lost": len(lost),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "seconds": round(time.monotonic() - t0, 1),
    }
    (tmp_path / "fuzz-counts.json").write_text(json.dumps(counts, indent=2))
    print("\nfuzz counts:", json.dumps(counts))

    assert not crashes, crashes[:5]
    assert not lost, lost[:10]
    assert _series_view(_rows(tmp_path / "out" / "series.csv"), good_uids) == _series_view(good_rows, good_uids)
    assert tree_state(tree.root) == before  # the input tree is unchanged
    assert peak_kb / 1024 < RSS_LIMIT_MB
    # hostile names were exported safely, inside the export folder
    exported = [os.fsencode(r["export_path"]) for r in instances if r["export_path"]]
    root = os.fsencode(os.path.realpath(tmp_path / "export")) + b"/"
    assert exported and all(os.path.realpath(p).startswith(root) and os.path.isfile(p) for p in exported)
    # header text reached the terminal without control characters
    assert "\x1b" not in hostile.stdout and "\x07" not in hostile.stdout
