"""Run the ``breastlab`` CLI in-process, as the CLI tests do."""
from __future__ import annotations

from typer.testing import CliRunner, Result

from breastlab.cli.main import app


def invoke(args: list, ok: bool = True) -> Result:
    """``breastlab ARGS`` in-process; never a traceback, and exit 0 when ``ok``."""
    res = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"}).invoke(app, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(f"breastlab {' '.join(map(str, args))} raised {res.exception!r}\n{res.output}")
    if ok:
        assert res.exit_code == 0, res.output
    return res
