"""The experiment loop: models × repeats of one task → a run directory.

Every trained model of breastlab (four-view diagnosis, MRI series classification) goes
through ``run_experiment``; what differs between them is a ``Task``:

* its cases: ``case_ids``, integer ``labels`` and ``patient_ids`` (the split groups);
* ``config``: the run configuration for ``provenance.json`` (``class_names`` required,
  ``core.rundir.RunConfig``) and ``fingerprint``, the data fingerprint;
* ``write_cases(run)``: ``cases.csv``;
* ``make_split(repeat)``: the patient-level split of a repeat;
* ``jobs(repeat, split)``: the models to train at each level (exam, breast) with their
  training, validation and prediction data;
* ``build_model(name, job, repeat)`` and ``train_config(name, repeat)``;
* ``model_meta(name, job, repeat, split)``: what ``model.pt`` records;
* ``predict(net, job)``: the tables to write beside the model (``predictions.csv`` and any
  extras), ``{file name: (rows, columns)}``;
* ``after_model(run, name, repeat, job)``: optional, e.g. copy a model for ``sort --model``.

The loop owns the rest: the configuration guard and ``force``, ``provenance.json``,
splits (made once, reloaded on resume, checked for patient leakage), seeds (``seed + r``),
resume (a finished model is skipped, an unfinished one continues from its checkpoint),
progress bars and ``train.log``/``train_log.jsonl``, writing predictions, and
multi-process training (``training.distributed``: rank 0 alone writes). Evaluation and
the report run after it, never from inside it.
"""
from __future__ import annotations

import logging
import shutil
import sys
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from breastlab.core.artefacts import write_predictions, write_provenance
from breastlab.core.atomic import write_csv
from breastlab.core.errors import UsageError
from breastlab.core.provenance import run_manifest, seed_everything
from breastlab.core.rundir import PREDICTIONS, REPORT, RunConfig, RunDir

from . import distributed as ddp
from .loop import TrainConfig, train_classifier
from .runlog import RunLog
from .splits import check_split, load_split, save_split

log = logging.getLogger(__name__)

# Config keys that may grow between invocations on the same RUN_DIR, and keys that do not
# define the run (how fast, how it is shown).
EXTENDABLE = ("models", "repeats", "training_seeds")
IGNORED = ("num_threads", "eval_batch_size", "progress", "devices", "nodes", "phantom",
           "device", "num_workers", "device_info")  # a run resumes on another device


class RunConfigError(UsageError):
    """RUN_DIR holds a run with a different configuration."""


@dataclass
class Job:
    """One model to train at one level of one repeat."""

    level: str                     # "exam" or "breast" (core.rundir.LEVELS)
    train: Dataset
    val: Dataset
    predict: dict[str, Dataset]    # split name → data to predict after training
    in_channels: int
    size: int = 0                  # cases (or breasts) trained on, for the log
    unit: str = "cases"


class Task(Protocol):
    """What ``run_experiment`` needs from a task (module docstring)."""

    title: str
    case_ids: list[str]
    labels: Any
    patient_ids: list[str]
    config: dict[str, Any]
    fingerprint: str | None

    def write_cases(self, run: RunDir) -> None: ...
    def make_split(self, repeat: int) -> dict[str, Any]: ...
    def jobs(self, repeat: int, split: dict[str, Any]) -> list[Job]: ...
    def build_model(self, name: str, job: Job, repeat: int) -> nn.Module: ...
    def train_config(self, name: str, repeat: int) -> TrainConfig: ...
    def model_meta(self, name: str, job: Job, repeat: int, split: dict[str, Any]
                   ) -> dict[str, Any]: ...
    def predict(self, net: nn.Module, job: Job
                ) -> dict[str, tuple[list[dict[str, Any]], list[str]]]: ...


@dataclass
class ExperimentResult:
    run_dir: RunDir
    trained: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)


def comparable(config: dict[str, Any]) -> dict[str, Any]:
    """What must match between invocations on one RUN_DIR: not the extendable keys, not how
    the run is carried out (``settings.run``, thread counts)."""
    out = {k: v for k, v in config.items() if k not in EXTENDABLE and k not in IGNORED}
    if isinstance(out.get("train"), dict):
        out["train"] = {k: v for k, v in out["train"].items() if k not in IGNORED}
    if isinstance(out.get("settings"), dict):
        out["settings"] = comparable({k: v for k, v in out["settings"].items() if k != "run"})
    return out


def config_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} → {b!r}")
    return out


def _guard(run: RunDir, config: dict[str, Any], models: list[str], repeats: int, seed: int,
           force: bool) -> dict[str, Any]:
    """Refuse another configuration in ``run`` (unless ``force``); a resumed run keeps the
    union of models and the larger repeat count. Returns the configuration to record."""
    if not run.provenance.is_file():
        return config
    old = run.raw_config()
    diff = config_diff(comparable(old), comparable(config))
    if diff and not force:
        raise RunConfigError(
            f"{run.root} holds a run with a different configuration:\n  "
            + "\n  ".join(diff[:20])
            + "\nUse another --out folder, or --force to discard the old results.")
    if diff:
        log.warning("--force: discarding previous results in %s", run.root)
        if ddp.is_main():
            for sub in (run.models_dir, run.splits_dir, run.explain):
                shutil.rmtree(sub, ignore_errors=True)
            for f in (run.metrics, run.root / REPORT):
                f.unlink(missing_ok=True)
        return config
    old_models = [m for m in old.get("models", []) if m not in models]
    if old_models:
        config["models"] = old_models + models
    config["repeats"] = max(int(old.get("repeats", 0)), int(repeats))
    config["training_seeds"] = [int(seed) + r for r in range(config["repeats"])]
    if isinstance(config.get("settings"), dict):  # the recorded settings cover the whole run
        config["settings"] = {**config["settings"], "models": config["models"],
                              "repeats": config["repeats"]}
    return config


def _isatty_stdout() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def run_experiment(task: Task, run_dir: str | RunDir, *, models: list[str], repeats: int,
                   seed: int = 0, force: bool = False, guard: bool = True,
                   progress: bool | None = None) -> ExperimentResult:
    """Train every model of ``models`` for ``repeats`` repeats of ``task`` into ``run_dir``.

    ``guard=False`` records the configuration without comparing it with a previous one
    (the MRI series runs, where a resumed checkpoint still refuses other settings).
    ``progress``: bars and per-epoch lines; default: the command's reporter
    (``core.progress.reporter``).
    """
    if progress is None:
        from breastlab.core.progress import reporter

        progress = reporter().enabled
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    config = dict(task.config)
    RunConfig.from_dict(config, source="the run configuration")  # class names required
    if guard:
        config = _guard(run, config, models, repeats, seed, force)
    main = ddp.is_main()
    if main:
        run.root.mkdir(parents=True, exist_ok=True)
        write_provenance(run.provenance, run_manifest(config, data_fingerprint=task.fingerprint))
        task.write_cases(run)
    ddp.barrier()
    result = ExperimentResult(run_dir=run, config=config)
    groups = dict(zip(task.case_ids, task.patient_ids))
    interactive = progress and _isatty_stdout() and main
    bars = overall = None
    if interactive:
        from breastlab.core.progress import make_progress

        bars = make_progress()
        bars.start()
        overall = bars.add_task(task.title, total=repeats * len(models))
    runlog = RunLog(run.root, echo=bool(progress) and not interactive) if main else None
    say = runlog.event if runlog is not None else (lambda *a, **k: None)
    try:
        if runlog is not None:
            runlog.__enter__()
        start = (getattr(task, "start_message", None)
                 or f"training {', '.join(models)} × {repeats} repeat(s)")
        say("start", start, models=models, repeats=repeats, n_cases=len(task.case_ids),
            split_unit=config.get("split_unit", "patient"),
            processes=ddp.world_size())
        for w in config.get("split_warnings") or []:
            say("warning", w, text=w)
        for r in range(repeats):
            split_path = run.split(r)
            if split_path.is_file():
                sp = load_split(split_path)
            else:  # deterministic: every rank draws the same split, rank 0 keeps it
                sp = task.make_split(r)
                if main:
                    save_split(split_path, sp)
            check_split(sp, groups)
            jobs = task.jobs(r, sp)
            for name in models:
                if all(run.predictions(name, r, j.level).is_file() for j in jobs):
                    result.skipped.append((name, r))
                    if bars is not None:
                        bars.advance(overall)
                    continue
                if bars is not None:
                    bars.update(overall, description=f"{name} repeat {r + 1}/{repeats}")
                for job in jobs:
                    if run.predictions(name, r, job.level).is_file():
                        continue
                    what = f"{name} repeat {r + 1}/{repeats}" + (
                        f" ({job.level})" if job.level != "exam" else "")
                    _train_one(task, run, name, r, sp, job, what, bars, runlog, say)
                result.trained.append((name, r))
                if bars is not None:
                    bars.advance(overall)
        say("end", f"done: trained {len(result.trained)}, already done "
            f"{len(result.skipped)} (model, repeat) runs", trained=len(result.trained))
    finally:
        if runlog is not None:
            runlog.__exit__(None, None, None)
        if bars is not None:
            bars.stop()
    return result


def _train_one(task: Task, run: RunDir, name: str, r: int, sp: dict[str, Any], job: Job,
               what: str, bars: Any, runlog: RunLog | None, say: Any) -> None:
    """Train one model for one repeat at one level and write its predictions."""
    cfg = task.train_config(name, r)
    seed_everything(cfg.seed)
    torch.manual_seed(cfg.seed)
    net = task.build_model(name, job, r)
    say("model", f"{what}: training {name} on {job.size or len(job.train)} {job.unit}, "
        f"{len(job.val)} for validation", model=name, repeat=r, level=job.level)
    on_epoch = (lambda row: runlog.epoch(what, row)) if runlog is not None else None
    train_classifier(net, job.train, job.val if len(job.val) else None, cfg,
                     run.model_dir(name, r, job.level), progress=bars or False, resume=True,
                     meta=task.model_meta(name, job, r, sp), label=f"{name} r{r} ",
                     on_epoch=on_epoch)
    if ddp.is_main():
        out = run.model_dir(name, r, job.level)
        tables = task.predict(net, job)
        # predictions.csv last: its presence marks the model as done
        for fname, (rows, cols) in sorted(tables.items(), key=lambda t: t[0] == PREDICTIONS):
            if fname == PREDICTIONS:
                write_predictions(out / fname, rows, cols)
            elif rows:
                write_csv(out / fname, rows, cols)
        after = getattr(task, "after_model", None)
        if after is not None:
            after(run, name, r, job)
    ddp.barrier()
    del net
