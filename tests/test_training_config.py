"""One typed configuration from command line / config file to provenance and back (issue 15),
and one reader per run artefact."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from breastlab.core.vocab import Normalization, Optimizer, Split
from breastlab.training.config import FourViewConfig, TrainConfig, config_from_file


def _custom() -> FourViewConfig:
    return FourViewConfig.from_dict({
        "models": "mlp,viewwise", "repeats": 3, "seed": 7, "pretrained": False,
        "autoencoder_pretrain_epochs": 2, "fusion": "attention", "threshold_rule": "fixed:0.4",
        "epochs": 4, "batch_size": 2, "lr": 0.01, "optimizer": "adamw", "scheduler": "cosine",
        "select_metric": "loss", "patience": 2, "threads": 1, "image_size": 48,
        "views": "LCC,RCC", "flip_right": False, "normalization": "minmax", "augment": False,
        "split": "kfold", "folds": 3, "resplit": True, "force": True, "evaluate": False,
        "devices": 2})


def test_round_trip_of_every_setting() -> None:
    cfg = _custom()
    back = FourViewConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))  # as provenance
    assert back == cfg
    assert cfg.split.method is Split.KFOLD and cfg.train.optimizer is Optimizer.ADAMW
    assert cfg.preprocessing.normalization is Normalization.MINMAX
    assert cfg.preprocessing.views == ("LCC", "RCC") and cfg.train.num_threads == 1
    assert cfg.model_kwargs == {"viewwise": {"fusion": "attention"}}
    # plain strings in the dict form (no enum reprs in provenance.json)
    assert cfg.to_dict()["train"]["optimizer"] == "adamw"
    assert '"Optimizer.' not in json.dumps(cfg.to_dict())


def test_defaults_are_the_seed_and_frozen() -> None:
    cfg = FourViewConfig()
    assert cfg.models == ("resnet18", "mlp", "autoencoder", "viewwise") and cfg.repeats == 5
    assert cfg.pretrained is True and cfg.preprocessing.image_size == 256
    t = cfg.train
    assert (t.optimizer, t.lr, t.momentum, t.weight_decay, t.batch_size) == ("sgd", 1e-3, 0.9,
                                                                              5e-4, 8)
    with pytest.raises(AttributeError):
        cfg.repeats = 2  # type: ignore[misc]
    per_model = cfg.train_config("autoencoder", 2)
    assert per_model.seed == 2 and per_model.pretrain_epochs == 10
    assert cfg.train_config("mlp", 1).pretrain_epochs == 0


@pytest.mark.parametrize("bad, word", [
    ({"optimizer": "adagrad"}, "optimizer"), ({"split": "loo"}, "split"),
    ({"models": "resnet50"}, "resnet50"), ({"image_size": 4}, "image_size"),
    ({"folds": 1}, "folds"), ({"epochs": 0}, "epochs"), ({"threshold_rule": "best"}, "rule"),
    ({"normalisation": "zscore"}, "normalisation"), ({"train": {"epoch": 3}}, "epoch"),
])
def test_validated_once_with_the_setting_named(bad: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        FourViewConfig.from_dict(bad)


def test_config_file_round_trip_through_the_cli(tmp_path: Path) -> None:
    """TOML (flat options or the nested groups) → train → provenance → from_dict."""
    from tests.cli_helpers import invoke

    from breastlab.phantom.bsgi import write_bsgi_phantom

    write_bsgi_phantom(tmp_path / "ph", n_cases=12, matrix=32)
    invoke(["cases", tmp_path / "ph", "--out", tmp_path / "cases.csv", "--no-progress"])
    toml = tmp_path / "run.toml"
    toml.write_text('models = "mlp"\nrepeats = 1\npretrained = false\n'
                    '[train]\nepochs = 1\nbatch_size = 4\nnum_threads = 1\n'
                    '[preprocessing]\nimage_size = 16\n')
    assert FourViewConfig.from_dict(config_from_file(toml)).train.batch_size == 4
    invoke(["train", tmp_path / "cases.csv", "--out", tmp_path / "run", "--config", toml,
            "--lr", "0.01", "-q", "--no-evaluate"])
    prov = json.loads((tmp_path / "run" / "provenance.json").read_text())
    back = FourViewConfig.from_dict(prov["config"]["settings"])
    assert back.train == TrainConfig(epochs=1, batch_size=4, num_threads=1, lr=0.01)
    assert back.preprocessing.image_size == 16 and back.models == ("mlp",)
    assert back.run.config_file == str(toml) and back.run.evaluate is False


def test_mri_config_round_trip() -> None:
    from breastlab.seriesmodels.train_config import MRITrainConfig

    cfg = MRITrainConfig.from_dict({"task": "sequence", "classes": "T2WI,ADC", "epochs": 3,
                                    "split": "kfold", "aggregation": "mean"})
    assert MRITrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.classes == ("T2WI", "ADC")
    with pytest.raises(ValueError, match="aggregation"):
        MRITrainConfig(aggregation="median")


# ------------------------------------------------------------------ one reader per artefact
def test_artefact_readers_round_trip(tmp_path: Path) -> None:
    from breastlab.core import artefacts

    rows = artefacts.prediction_rows(["a:L", "a:R"], "val", [0, 1], np.array([[0.9, 0.1], [0.2, 0.8]]),
                                     extra=[{"exam_id": "a", "breast": "L"},
                                            {"exam_id": "a", "breast": "R"}])
    path = artefacts.write_predictions(tmp_path / "predictions.csv", rows,
                                       artefacts.prediction_columns(2, level="breast"))
    p = artefacts.read_predictions(path)
    assert p.case_id == ["a:L", "a:R"] and p.rows[1]["breast"] == "R"
    assert p.subset("val").prob[:, 1].tolist() == pytest.approx([0.1, 0.8])
    artefacts.write_cases(tmp_path / "cases.csv", [{"case_id": "a", "label": 1, "LCC": "x.dcm"}],
                          ["case_id", "patient_id", "label", "manufacturer", "LCC"])
    cases = artefacts.read_cases(tmp_path / "cases.csv")
    assert cases.columns[3] == "manufacturer" and cases[0]["patient_id"] == ""
    (tmp_path / "semi.csv").write_text("case_id;patient_id;label;LCC\nb;p;0;y.png\n")
    assert artefacts.read_cases(tmp_path / "semi.csv")[0]["LCC"] == "y.png"  # spreadsheet CSV
    artefacts.write_metrics(tmp_path / "metrics.json", {"schema": 1, "models": {}})
    assert artefacts.read_metrics(tmp_path / "metrics.json")["schema"] == 1
    assert artefacts.read_provenance(tmp_path / "missing.json") == {}


def test_readers_are_defined_once() -> None:
    """No other module defines its own reader of the four artefacts."""
    import ast

    root = Path(__file__).resolve().parents[1] / "src" / "breastlab"
    names = {"read_predictions", "read_cases", "read_metrics", "read_provenance",
             "read_case_csv", "read_rows", "read_case_info"}
    allowed = {"core/artefacts.py",
               "multiview/case_table.py",   # read_cases → CaseTable, via core.artefacts
               "multiview/dataset.py",      # read_case_csv: rows, via core.artefacts
               "evaluation/levels.py",      # read_case_info: two columns, via core.artefacts
               "core/rundir.py"}            # RunDir.read_provenance, via core.artefacts
    for f in root.rglob("*.py"):
        rel = f.relative_to(root).as_posix()
        tree = ast.parse(f.read_text(encoding="utf-8"))
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)} & names
        if defined and rel not in allowed:
            pytest.fail(f"{rel} defines {sorted(defined)}: use breastlab.core.artefacts")
        if rel in allowed and rel != "core/artefacts.py":
            assert "artefacts" in f.read_text(encoding="utf-8"), rel


def test_each_predictions_file_is_parsed_once_per_evaluation(tmp_path: Path, monkeypatch) -> None:
    """evaluate_run (with its levels) reads each predictions.csv and provenance.json once."""
    import builtins

    from breastlab.core import artefacts
    from breastlab.core.provenance import run_manifest
    from breastlab.core.rundir import RunDir
    from breastlab.evaluation.run import evaluate_run

    run = RunDir(tmp_path / "run")
    rng = np.random.default_rng(0)
    artefacts.write_provenance(run.provenance, run_manifest(
        {"task": "fourview", "class_names": ["benign", "malignant"], "views": ["LCC"]}))
    for r in range(2):
        y = np.array([0, 1] * 10)
        p = np.clip(y * 0.5 + rng.random(20) * 0.5, 0, 1)
        rows = (artefacts.prediction_rows([f"c{i}" for i in range(10)], "val", y[:10],
                                          np.c_[1 - p[:10], p[:10]])
                + artefacts.prediction_rows([f"c{i}" for i in range(10, 20)], "test", y[10:],
                                            np.c_[1 - p[10:], p[10:]]))
        artefacts.write_predictions(run.predictions("mlp", r), rows,
                                    artefacts.prediction_columns(2))
    opened: list[str] = []
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        opened.append(Path(file).name if isinstance(file, (str, Path)) else "")
        return real_open(file, *args, **kwargs)

    provenance_reads = []
    real_read_provenance = artefacts.read_provenance

    def counting_read_provenance(path):
        provenance_reads.append(path)
        return real_read_provenance(path)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(artefacts, "read_provenance", counting_read_provenance)
    artefacts._PARSED.clear()
    metrics = evaluate_run(run.root)
    assert opened.count("predictions.csv") == 2  # two repeats, each once
    assert len(provenance_reads) == 1
    assert metrics["models"]["mlp"]["levels"]["exam"]["repeats"]["repeat1"]["test"]["n"] == 10


# ------------------------------------------------------------------ one output channel
def test_run_log_is_a_logging_handler(tmp_path: Path, capsys) -> None:
    """While a run is open, every breastlab logger's message reaches train.log; events keep
    their JSON form; per-epoch lines go to stdout only off a terminal (echo)."""
    import logging

    from breastlab.training.runlog import RunLog

    with RunLog(tmp_path, echo=True) as runlog:
        runlog.event("start", "training mlp", models=["mlp"])
        logging.getLogger("breastlab.multiview.dataset").warning("skipping case %s: %s", "c1",
                                                                  "unreadable")
    logging.getLogger("breastlab.multiview.dataset").warning("after the run")
    text = (tmp_path / "train.log").read_text()
    assert "training mlp" in text and "warning: skipping case c1: unreadable" in text
    assert "after the run" not in text  # the handler left with the run
    events = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["start", "warning"]
    assert events[1]["text"] == "skipping case c1: unreadable"
    out = capsys.readouterr()
    assert "training mlp" in out.out and "skipping case" not in out.out


def test_one_reporter_per_command() -> None:
    from breastlab.core.progress import reporter, reporting

    with reporting(False):
        assert reporter().enabled is False and reporter().bars() is None
        with reporting(True):
            assert reporter().enabled is True
        assert reporter().enabled is False
