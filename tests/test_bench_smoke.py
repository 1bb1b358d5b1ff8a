"""Smoke test of bench/breastmnist.py on a tiny subset (the benchmark code path runs)."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from conftest import require

BENCH = Path(__file__).resolve().parents[1] / "bench" / "breastmnist.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_breastmnist", BENCH)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_breastmnist_bench_quick(shared_data, tmp_path, capsys, monkeypatch):
    require(shared_data / "breastmnist" / "breastmnist_28.npz")
    monkeypatch.setenv("BREASTLAB_DATA", str(shared_data))
    bench = _load_bench()
    rc = bench.main(["--quick", "--epochs", "1", "--seeds", "0", "--batch-size", "16",
                     "--out", str(tmp_path), "--no-resume"])
    assert rc == 0
    out = capsys.readouterr().out.strip().splitlines()
    m = re.fullmatch(r"breastmnist28 test AUC=([0-9.]+) ACC=([0-9.]+)", out[-1])
    assert m, out[-1]
    auc, acc = float(m.group(1)), float(m.group(2))
    assert 0.0 <= auc <= 1.0 and 0.0 <= acc <= 1.0
    assert any("fingerprint sha256=" in line for line in out)
    run = tmp_path / "quick"
    assert (run / "provenance.json").is_file() and (run / "results.json").is_file()
    assert (run / "seed0" / "model.pt").is_file()
