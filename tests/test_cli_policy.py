"""One error and output policy for every command (issue 15).

* exit codes: 0 done, 1 nothing to do, 2 bad usage, 3 failed mid-run, 130 interrupted;
* every error message starts ``breastlab COMMAND: error:`` and is never a traceback;
* option vocabularies are ``StrEnum`` choices listed in ``--help``; every option has help
  text, and an option without a fixed default says what it defaults to.
"""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import get_args

import pytest
import typer

from breastlab.cli.main import app
from breastlab.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_NOTHING, EXIT_USAGE
from tests.cli_helpers import invoke


def _commands() -> list[tuple[str, ...]]:
    """Every leaf command of the CLI as its words (``("mri", "train")``)."""
    root = typer.main.get_command(app)
    out: list[tuple[str, ...]] = []

    def walk(group, prefix: tuple[str, ...]) -> None:
        for name, cmd in sorted(group.commands.items()):
            if hasattr(cmd, "commands"):
                walk(cmd, (*prefix, name))
            else:
                out.append((*prefix, name))

    walk(root, ())
    return out


def _base_type(param) -> type | None:
    """The option's Python type, unwrapped from ``list[...]`` / ``X | None``."""
    ann = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    while get_args(ann):
        ann = next(a for a in get_args(ann) if a is not type(None))
    return ann if isinstance(ann, type) else None


def _command(words: tuple[str, ...]):
    cmd = typer.main.get_command(app)
    for w in words:
        cmd = cmd.commands[w]
    return cmd


COMMANDS = _commands()


def test_the_cli_has_the_expected_commands() -> None:
    assert {("sort",), ("train",), ("cases",), ("mri", "train"), ("pacs", "sort"),
            ("phantom", "bsgi"), ("report",), ("evaluate",), ("predict",)} <= set(COMMANDS)


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_bad_usage_is_exit_2_with_the_command_prefix(words: tuple[str, ...]) -> None:
    res = invoke([*words, "--no-such-option"], ok=False)
    assert res.exit_code == EXIT_USAGE, res.output
    first = res.output.strip().splitlines()[0]
    assert first.startswith(f"breastlab {' '.join(words)}: error: "), res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_every_option_has_help_and_says_its_default(words: tuple[str, ...]) -> None:
    for param in _command(words).params:
        if param.param_type_name != "option" or param.name == "help":
            continue
        assert (param.help or "").strip(), f"{' '.join(words)} {param.opts[0]}: no help text"
        if param.default is None and _base_type(param) in (int, float):
            # an amount without a fixed default (--workers, --threads): say what it is
            assert "default" in param.help.lower(), (
                f"{' '.join(words)} {param.opts[0]}: no fixed default, and the help does not "
                "say what happens without it ([default: ...])")


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_vocabularies_are_choices_in_help(words: tuple[str, ...]) -> None:
    cmd = _command(words)
    enums = [p for p in cmd.params if p.param_type_name == "option"
             and isinstance(_base_type(p), type) and issubclass(_base_type(p), Enum)]
    if not enums:
        pytest.skip("no vocabulary option")
    text = invoke([*words, "--help"]).output
    flat = "".join(text.split()).replace("│", "")
    for p in enums:
        values = [m.value for m in _base_type(p)]
        assert "[" + "|".join(values) + "]" in flat, (p.opts[0], values)


def test_free_text_vocabularies_are_gone() -> None:
    """The options the issue found typed TEXT now list their choices."""
    wanted = {("sort",): ("--layout", "--engine"), ("mri", "train"): ("--task", "--aggregation"),
              ("cases",): ("--view-set", "--missing", "--duplicates", "--group-by"),
              ("train",): ("--split", "--optimizer", "--normalization", "--fusion")}
    for words, opts in wanted.items():
        params = {p.opts[0]: p for p in _command(words).params}
        for opt in opts:
            assert issubclass(_base_type(params[opt]), Enum), f"{' '.join(words)} {opt}"


# ------------------------------------------------------------------ exit codes by outcome
def test_nothing_to_do_is_exit_1(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    res = invoke(["cases", tmp_path / "empty", "--out", tmp_path / "c.csv", "--no-progress"],
                 ok=False)
    assert res.exit_code == EXIT_NOTHING
    assert res.output.startswith("breastlab cases: error: no case built")


def test_unparseable_views_suggest_the_single_view_set(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    for cls in ("benign", "malignant"):
        (tmp_path / "us" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "us" / cls / f"img{i}.png")
    res = invoke(["cases", tmp_path / "us", "--out", tmp_path / "c.csv", "--no-progress"],
                 ok=False)
    assert res.exit_code == EXIT_NOTHING and "unparseable-view" in res.output
    assert "--view-set single" in res.output


def test_failure_mid_run_is_exit_3_and_interrupt_130(tmp_path: Path, monkeypatch) -> None:
    import breastlab.multiview.cases as cases

    (tmp_path / "in").mkdir()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "c.csv"))

    monkeypatch.setattr(cases, "assemble_cases", disk_full)
    res = invoke(["cases", tmp_path / "in", "--out", tmp_path / "c.csv"], ok=False)
    assert res.exit_code == EXIT_FAILED
    assert res.output.startswith("breastlab cases: error: OSError: No space left on device")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cases, "assemble_cases", interrupted)
    res = invoke(["cases", tmp_path / "in", "--out", tmp_path / "c.csv"], ok=False)
    assert res.exit_code == EXIT_INTERRUPTED
    assert res.output.startswith("breastlab cases: error: interrupted")


def test_bad_input_is_exit_2_in_nested_commands(tmp_path: Path) -> None:
    res = invoke(["mri", "evaluate", tmp_path], ok=False)  # not a run folder
    assert res.exit_code == EXIT_USAGE
    assert res.output.startswith("breastlab mri evaluate: error: ")
    res = invoke(["query", tmp_path, "SELECT * FROM nowhere"], ok=False)
    assert res.exit_code == EXIT_USAGE and res.output.startswith("breastlab query: error: ")


def test_every_project_exception_has_the_one_base() -> None:
    from breastlab.convert.dcm2niix import Dcm2niixMissing
    from breastlab.core.errors import BreastlabError
    from breastlab.core.publish import OutputError
    from breastlab.models.files import ModelFileError
    from breastlab.models.weights import WeightsUnavailableError
    from breastlab.multiview.cases import CaseAssemblyError
    from breastlab.multiview.preprocess import ImageLoadError
    from breastlab.pacs.errors import PacsError
    from breastlab.reporting.html import MissingMetricsError
    from breastlab.training.distributed import DistributedRunError
    from breastlab.training.experiment import RunConfigError

    codes = {cls: cls.exit_code for cls in (
        Dcm2niixMissing, OutputError, ModelFileError, WeightsUnavailableError, CaseAssemblyError,
        ImageLoadError, PacsError, MissingMetricsError, DistributedRunError, RunConfigError)}
    assert all(issubclass(cls, BreastlabError) for cls in codes)
    assert codes[RunConfigError] == codes[WeightsUnavailableError] == EXIT_USAGE
    assert codes[DistributedRunError] == codes[PacsError] == EXIT_FAILED


#: exceptions that never reach a user: raised and caught inside the DICOM readers (a file becomes
#: a skipped.csv row with the reason) or inside one module
INTERNAL_SIGNALS = {"NeedMore", "Malformed", "_BudgetSpent", "Truncated", "NotDicom", "Fallback",
                    "Oversized", "Special", "PixelDataError", "_Unsupported", "LimitExceeded"}


def test_no_exception_class_outside_the_one_base() -> None:
    """Every exception class defined in src/breastlab derives from BreastlabError (through its
    bases), except the internal signals above; a new class that forgets the base fails here."""
    import ast
    import builtins

    package = Path(__file__).resolve().parents[1] / "src" / "breastlab"
    project: dict[str, list[str]] = {}
    for f in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                project[node.name] = [ast.unparse(b).split(".")[-1] for b in node.bases]

    def is_exception(name: str) -> bool:
        obj = getattr(builtins, name, None)
        if isinstance(obj, type):
            return issubclass(obj, BaseException)
        return any(is_exception(b) for b in project.get(name, ()))

    def has_base(name: str) -> bool:
        return name == "BreastlabError" or any(has_base(b) for b in project.get(name, ()))

    stray = sorted(n for n in project if is_exception(n) and not has_base(n) and n not in INTERNAL_SIGNALS)
    assert not stray, f"exception classes without the BreastlabError base: {stray}"
    assert not INTERNAL_SIGNALS - set(project), "an internal signal is gone: drop it from the list"
