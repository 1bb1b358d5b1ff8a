"""``breastlab sort``: options checked before any work, one-line errors, documented exit codes."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from breastlab.cli.main import app
from breastlab.cli.sort_cmd import EXIT_NOTHING, EXIT_USAGE


def _run(args: list, env: dict | None = None):
    res = CliRunner(env={"COLUMNS": "200", **(env or {})}).invoke(app, ["sort", *map(str, args), "--no-progress"])
    assert "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


@pytest.fixture
def exam(tmp_path: Path) -> Path:
    """A tiny real-looking exam: two synthetic MR files."""
    from test_dicom_scan import _synthetic_mr

    root = tmp_path / "exam"
    root.mkdir()
    for i in range(2):
        _synthetic_mr(root / f"{i}.dcm")
    return root


def _one_error_line(res) -> str:
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    assert lines[0].startswith("breastlab sort: error: "), lines[0]
    return lines[0]


def test_bad_paths_are_usage_errors_and_nothing_is_written(exam: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    cases = {
        "is not a folder": ["--out", a_file],
        "under": ["--out", a_file / "below"],
        "virtual file system": ["--out", "/proc/breastlab-out"],
        "inside the input folder": ["--out", exam / "sorted"],
        "not written by breastlab": ["--out", foreign],
        "--export": ["--out", tmp_path / "o1", "--export", a_file],
        "separate folders": ["--out", tmp_path / "o2", "--export", tmp_path / "o2"],
        "neither inside the other": ["--out", tmp_path / "o3", "--export", tmp_path / "o3" / "e"],
        "exclude each other": ["--out", tmp_path / "o4", "--link", "--copy"],
        "no such file": ["--out", tmp_path / "o5", tmp_path / "missing"],
    }
    for expected, args in cases.items():
        res = _run([exam, *args])
        assert res.exit_code == EXIT_USAGE, (expected, res.output)
        line = _one_error_line(res)
        if expected not in ("under", "--export"):
            assert expected in line, (expected, line)
    for name in ("o1", "o2", "o3", "o4", "o5"):
        assert not (tmp_path / name).exists(), name
    assert (foreign / "notes.txt").read_text() == "mine" and sorted(os.listdir(foreign)) == ["notes.txt"]
    assert sorted(p.name for p in exam.iterdir()) == ["0.dcm", "1.dcm"]


def test_input_inside_out_is_refused(exam: Path, tmp_path: Path) -> None:
    res = _run([exam, "--out", tmp_path])  # would replace the folder holding the input
    assert res.exit_code == EXIT_USAGE
    assert "input" in _one_error_line(res)


def test_read_only_parent_is_a_usage_error(exam: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    res = _run([exam, "--out", ro / "out"])
    assert res.exit_code == EXIT_USAGE and "not writable" in _one_error_line(res)


def test_bad_numbers_and_config(exam: Path, tmp_path: Path) -> None:
    res = _run([exam, "--out", tmp_path / "o", "--b-threshold", "inf"])
    assert res.exit_code == EXIT_USAGE and "finite" in _one_error_line(res)
    res = _run([exam, "--out", tmp_path / "o", "--b-threshold", "nan"])  # click's range check
    assert res.exit_code == EXIT_USAGE and "--b-threshold" in res.output
    res = _run([exam, "--out", tmp_path / "o", "--workers", "0"])  # click range check: exit 2, no traceback
    assert res.exit_code == EXIT_USAGE
    cfg = tmp_path / "cfg"
    (cfg / "breastlab").mkdir(parents=True)
    (cfg / "breastlab" / "config.toml").write_text("[sort\nmodels = ")  # not TOML
    res = _run([exam, "--out", tmp_path / "o"], env={"BREASTLAB_CONFIG": str(cfg / "breastlab" / "config.toml"), "BREASTLAB_MRI_MODEL": ""})
    assert res.exit_code == EXIT_USAGE and "config" in _one_error_line(res)
    assert not (tmp_path / "o").exists()


def test_nothing_to_sort_exits_1_with_outputs(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt.bak").write_text("not dicom")
    res = _run([tmp_path / "in", "--out", tmp_path / "o"])
    assert res.exit_code == EXIT_NOTHING and "nothing to sort" in res.output
    assert "not-dicom" in (tmp_path / "o" / "skipped.csv").read_text()


def test_rerun_replaces_the_set_and_keeps_the_umask(exam: Path, tmp_path: Path) -> None:
    saved = os.umask(0o002)
    try:
        assert _run([exam, "--out", tmp_path / "o"]).exit_code == 0
        assert _run([exam, "--out", tmp_path / "o"]).exit_code == 0  # an earlier set may be replaced
    finally:
        os.umask(saved)
    from breastlab.core.publish import verify_outputs

    assert verify_outputs(tmp_path / "o") == []
    assert (tmp_path / "o" / "series.csv").stat().st_mode & 0o777 == 0o664
    assert sorted(p.name for p in tmp_path.iterdir()) == [".o.lock", "exam", "o"]


def test_export_places_the_target_of_a_symlinked_input(tmp_path: Path) -> None:
    from test_dicom_scan import _synthetic_mr

    (tmp_path / "elsewhere").mkdir()
    real = _synthetic_mr(tmp_path / "elsewhere" / "real.dcm")
    (tmp_path / "in").mkdir()
    os.symlink(real, tmp_path / "in" / ("L" * 251))  # a long name too: no temporary name may overflow
    for _ in range(2):  # re-running leaves nothing behind
        res = _run([tmp_path / "in", "--out", tmp_path / "o", "--export", tmp_path / "e"])
        assert res.exit_code == 0, res.output
    (placed,) = [p for p in (tmp_path / "e").rglob("*") if p.is_file() and p.name != "manifest.json"]
    assert not placed.is_symlink() and os.path.samefile(placed, real)  # a hard link to the target
    assert len(placed.name.encode()) <= 255
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp") or ".staging-" in p.name]
    assert leftovers == []
