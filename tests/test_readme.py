"""The README's Python blocks marked ``<!-- runnable -->`` run as written."""
from __future__ import annotations

import os
import re
import runpy
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def runnable_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    return re.findall(r"<!-- runnable -->\s*```python\n(.*?)```", text, flags=re.S)


def test_readme_has_runnable_blocks() -> None:
    assert runnable_blocks(), "README lost its runnable Python API block"


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(runnable_blocks())))
def test_readme_block_runs(index: int, tmp_path: Path, monkeypatch, one_torch_thread) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BREASTLAB_OFFLINE", "1")
    script = tmp_path / "snippet.py"
    script.write_text(runnable_blocks()[index], encoding="utf-8")
    runpy.run_path(str(script), run_name="__main__")
    if "write_report" in runnable_blocks()[index]:
        assert (tmp_path / "run" / "report.html").is_file()
        assert (tmp_path / "run" / "train.log").stat().st_size > 0
    assert os.getcwd() == str(tmp_path)
