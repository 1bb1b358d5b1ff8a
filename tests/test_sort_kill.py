"""``breastlab sort`` killed (SIGKILL) at various moments, and two runs on one --out.

After a kill, --out holds the previous complete set or the new complete set (checked
against its manifest, and series.csv against instances.csv), no temporaries are left
beside --out or --export, and no process of the run survives (workers die with their
parent; the clean-up watchdog exits once it has cleaned up).
"""
from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from breastlab.core.publish import verify_outputs
from conftest import require


def _cli(inputs: list[Path], out: Path, export: Path) -> list[str]:
    return [sys.executable, "-m", "breastlab.cli.main", "sort", *map(str, inputs), "--out", str(out),
            "--export", str(export), "-j", "2", "--no-progress"]


def _processes_with(marker: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                if marker.encode() in fh.read():
                    found.append(int(name))
        except OSError:
            continue
    return found


def _wait_gone(marker: str, timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _temporaries(*folders: Path) -> list[str]:
    return [p.name for f in folders for p in f.parent.iterdir()
            if p.name.startswith((f".{f.name}.staging-", f".{f.name}.old-"))]


def _consistent(out: Path) -> set[str]:
    """The set is whole (manifest) and self-consistent; returns its series UIDs."""
    assert verify_outputs(out) == []
    with open(out / "series.csv", newline="") as fh:
        series = list(csv.DictReader(fh))
    with open(out / "instances.csv", newline="") as fh:
        instances = list(csv.DictReader(fh))
    assert {r["set_id"] for r in instances} == {r["set_id"] for r in series}
    return {r["series_uid"] for r in series}


@pytest.fixture
def exam(shared_data: Path, tmp_path: Path) -> dict[str, Path]:
    ge = require(shared_data / "dcmqa" / "ge" / "In")
    dce = require(shared_data / "nact-dce" / "UCSF-BR-06" / "image_dce_3dfgre_orig")
    shutil.copytree(ge, tmp_path / "in" / "ge")
    shutil.copytree(dce, tmp_path / "in" / "dce")
    return {"ge": tmp_path / "in" / "ge", "dce": tmp_path / "in" / "dce"}


@pytest.mark.slow
def test_sigkill_at_any_moment_leaves_a_complete_set(exam: dict[str, Path], tmp_path: Path) -> None:
    out, export = tmp_path / "sorted", tmp_path / "exported"
    first = subprocess.run(_cli([exam["ge"]], out, export), capture_output=True, timeout=300)
    assert first.returncode == 0, first.stderr
    old = _consistent(out)
    seen = set()
    for delay in (0.3, 0.7, 1.0, 1.4, 1.8, 2.5, 4.0):
        proc = subprocess.Popen(_cli([exam["ge"], exam["dce"]], out, export),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        finished = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert _wait_gone(str(out)) == [], f"processes of the killed run survive (delay {delay})"
        assert _temporaries(out, export) == [], delay
        uids = _consistent(out)
        assert uids == old or uids > old, delay  # the old set or the new one (which adds the DCE series)
        assert verify_outputs(export) == []
        seen.add("new" if uids > old else "old")
        if finished:
            break
    # the next run starts from whatever a kill left and completes
    last = subprocess.run(_cli([exam["ge"], exam["dce"]], out, export), capture_output=True, timeout=300)
    assert last.returncode == 0, last.stderr
    assert _consistent(out) > old and _temporaries(out, export) == []
    assert "old" in seen  # at least one kill hit the run before it published


def test_a_second_run_on_the_same_out_fails_at_once(exam: dict[str, Path], tmp_path: Path) -> None:
    """While another run holds --out (here: this test, through the same lock), sort fails at
    once with exit 2 and one line naming the holder, and touches neither output folder."""
    from breastlab.core.publish import output_lock, staged_outputs

    out, export = tmp_path / "sorted", tmp_path / "exported"
    with staged_outputs(out) as stage:
        (stage / "series.csv").write_text("previous\n")
    with output_lock(out):
        second = subprocess.run(_cli([exam["ge"]], out, export), capture_output=True, text=True, timeout=120)
    assert second.returncode == 2, second.stderr
    assert "another run" in second.stderr and f"pid {os.getpid()}" in second.stderr
    assert "Traceback" not in second.stderr and len(second.stderr.strip().splitlines()) == 1
    assert (out / "series.csv").read_text() == "previous\n" and not export.exists()
    assert _temporaries(out, export) == []
    # once the lock is free, the same command works
    again = subprocess.run(_cli([exam["ge"]], out, export), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert _consistent(out)
