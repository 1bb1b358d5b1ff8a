"""core/publish: output sets appear whole, under a lock, with no temporaries left behind."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from breastlab.core import atomic, publish
from breastlab.core.publish import OutputError, OutputLocked, staged_outputs, verify_outputs


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


def test_publish_replaces_the_whole_set(tmp_path):
    out = tmp_path / "out"
    with staged_outputs(out) as stage:
        atomic.write_text(stage / "a.csv", "one")
        atomic.write_text(stage / "sub" / "b.csv", "two")
        assert not out.exists()  # nothing visible before the end
    assert (out / "a.csv").read_text() == "one"
    assert verify_outputs(out) == []
    files = json.loads((out / publish.MANIFEST_NAME).read_text())["files"]
    assert set(files) == {"a.csv", "sub/b.csv"} and len(files["a.csv"]["sha256"]) == 64

    with staged_outputs(out) as stage:
        atomic.write_text(stage / "c.csv", "three")
    assert sorted(p.name for p in out.iterdir()) == ["c.csv", publish.MANIFEST_NAME]  # no leftover a.csv
    assert _siblings(out) == [".out.lock"]  # no staging or old folders


def test_failure_keeps_previous_set_and_removes_stage(tmp_path):
    out = tmp_path / "out"
    with staged_outputs(out) as stage:
        atomic.write_text(stage / "a.csv", "old")
    with pytest.raises(ValueError):
        with staged_outputs(out) as stage:
            atomic.write_text(stage / "a.csv", "new")
            raise ValueError("boom")
    assert (out / "a.csv").read_text() == "old" and verify_outputs(out) == []
    assert _siblings(out) == [".out.lock"]


def test_second_run_fails_at_once_while_locked(tmp_path):
    out = tmp_path / "out"
    with staged_outputs(out):
        t0 = time.monotonic()
        with pytest.raises(OutputLocked, match=f"pid {os.getpid()}"):
            with staged_outputs(out):
                pass
        assert time.monotonic() - t0 < 1.0


def test_refuses_folders_it_did_not_write(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not written by breastlab"):
        with staged_outputs(foreign):
            pass
    assert (foreign / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        publish.check_target(tmp_path / "file")
    with pytest.raises(OutputError, match="not a folder"):
        publish.check_target(tmp_path / "file" / "below")


def test_stage_and_outputs_honour_umask(tmp_path):
    saved = os.umask(0o027)
    try:
        with staged_outputs(tmp_path / "out") as stage:
            atomic.write_text(stage / "a.csv", "x")
    finally:
        os.umask(saved)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "out" / "a.csv").stat().st_mode) == 0o640


def test_verify_detects_tampering(tmp_path):
    out = tmp_path / "out"
    with staged_outputs(out) as stage:
        atomic.write_text(stage / "a.csv", "one")
    (out / "a.csv").write_text("two")
    (out / "extra.csv").write_text("")
    problems = verify_outputs(out)
    assert "content differs: a.csv" in problems and "not in manifest: extra.csv" in problems


def test_fallback_recovers_a_set_renamed_aside(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with staged_outputs(out) as stage:
        atomic.write_text(stage / "a.csv", "old")
    # a run killed between the two renames of the fallback: the set sits aside, target gone
    aside = tmp_path / ".out.old-999-abcd"
    os.rename(out, aside)
    (tmp_path / ".out.staging-999-x").mkdir()
    monkeypatch.setattr(publish, "_exchange", lambda a, b: False)
    with publish.output_lock(out):
        publish.clean_stale(out)
    assert (out / "a.csv").read_text() == "old" and _siblings(out) == [".out.lock"]
    with staged_outputs(out) as stage:  # the two-rename path itself
        atomic.write_text(stage / "a.csv", "new")
    assert (out / "a.csv").read_text() == "new" and _siblings(out) == [".out.lock"]


_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from breastlab.core import atomic
    from breastlab.core.publish import staged_outputs
    out, tag, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    with staged_outputs(out) as stage:
        for i in range(n):
            atomic.write_text(stage / f"f{i}.txt", tag * 1000)
            time.sleep(0.002)
        print("publishing", flush=True)
    """
)


def _wait_for_no_temporaries(out: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(not n.startswith((".out.staging-", ".out.old-")) for n in _siblings(out)):
            return
        time.sleep(0.05)
    raise AssertionError(f"temporaries left beside {out}: {_siblings(out)}")


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15, 0.3])
def test_sigkill_at_any_moment_leaves_old_or_new_set(tmp_path, delay):
    out = tmp_path / "out"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    subprocess.run([sys.executable, script, out, "A", "40"], check=True)
    proc = subprocess.Popen([sys.executable, script, out, "B", "40"], stdout=subprocess.DEVNULL)
    time.sleep(0.3 + delay)  # interpreter start-up is ~0.2-0.3 s: kill before, during and after staging
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _wait_for_no_temporaries(out)  # the watchdog removes the killed run's stage at once
    assert verify_outputs(out) == []
    tags = {p.read_text()[:1] for p in out.glob("f*.txt")}
    assert tags in ({"A"}, {"B"}) and len(list(out.glob("f*.txt"))) == 40
    # the next run cleans up whatever the killed one left and publishes
    subprocess.run([sys.executable, script, out, "C", "3"], check=True, stdout=subprocess.DEVNULL)
    assert verify_outputs(out) == [] and {p.read_text()[:1] for p in out.glob("f*.txt")} == {"C"}
    assert _siblings(out) == [".out.lock", "writer.py"]


def test_outputs_of_an_older_version_may_be_replaced_but_nothing_else(tmp_path):
    legacy = {"series.csv", "provenance.json"}
    old = tmp_path / "sorted"
    old.mkdir()
    for name in legacy:
        (old / name).write_text("old")
    with staged_outputs(old, replaceable=legacy) as stage:
        atomic.write_text(stage / "series.csv", "new")
    assert (old / "series.csv").read_text() == "new" and not (old / "provenance.json").exists()
    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    (run / "provenance.json").write_text("{}")
    with pytest.raises(OutputError, match="not written by breastlab"):
        with staged_outputs(run, replaceable=legacy):
            pass
    assert (run / "models").is_dir()


def test_a_link_to_the_output_folder_stays_a_link(tmp_path):
    (tmp_path / "disk" / "sorted").mkdir(parents=True)
    (tmp_path / "sorted").symlink_to(tmp_path / "disk" / "sorted")
    for text in ("one", "two"):
        with staged_outputs(tmp_path / "sorted") as stage:
            atomic.write_text(stage / "a.csv", text)
    assert (tmp_path / "sorted").is_symlink() and (tmp_path / "sorted" / "a.csv").read_text() == "two"
    assert verify_outputs(tmp_path / "sorted") == []
