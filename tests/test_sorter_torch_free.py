"""The header sorter needs no torch: it imports nothing from training, evaluation, reporting or models.

A fresh interpreter (a subprocess: this one has torch loaded by other tests) imports the
sorter and runs the work path of ``breastlab sort`` (``cli.sort_cmd._run``, without image
models) on a small phantom exam, then lists what it loaded.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FORBIDDEN_FOLDERS = ("training", "evaluation", "reporting", "models", "explain")

_SCRIPT = r"""
import json, sys
from pathlib import Path
from breastlab.mri import sorter  # noqa: F401
from breastlab.cli import sort_cmd

exam, out = Path(sys.argv[1]), Path(sys.argv[2])
code = sort_cmd._run([exam], out, None, False, False, False, 1, 400.0, False, None, review=True)
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "breastlab.")))
print(json.dumps({"code": code, "loaded": loaded}))
"""


def test_sort_work_path_loads_no_torch(tmp_path: Path) -> None:
    from breastlab.phantom.mri import write_mri_phantom

    exam = tmp_path / "exam"
    write_mri_phantom(exam, vendors=("GE",), n_slices=4, matrix=32)
    env = {**os.environ, "BREASTLAB_CONFIG": str(tmp_path / "no-config.toml")}  # no user image models
    env.pop("BREASTLAB_MRI_MODEL", None)
    run = subprocess.run([sys.executable, "-c", _SCRIPT, str(exam), str(tmp_path / "out")],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["code"] == 0 and (tmp_path / "out" / "series.csv").is_file()
    loaded = report["loaded"]
    assert "torch" not in loaded
    assert "breastlab.mri.sorter" in loaded and "breastlab.dicom.scan" in loaded  # the sort did run
    assert "breastlab.review.thumbs" in loaded and (tmp_path / "out" / "review.html").is_file()  # and --review
    above = [m for m in loaded if m.split(".")[1:2] and m.split(".")[1] in FORBIDDEN_FOLDERS]
    assert not above, f"the header sorter pulled in {above}"


def test_the_cli_starts_without_torch() -> None:
    """``breastlab sort`` as a user runs it: building the whole CLI (every command's options
    and help) loads no torch, so a header-only sort does not pay torch's start-up and memory."""
    script = ("import sys; from breastlab.cli.main import app; import typer; typer.main.get_command(app); "
              "print('torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "False"
