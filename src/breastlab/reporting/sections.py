"""The sections of the report, in order, as one list (``SECTIONS``): each names its anchors
(the table of contents) and renders its part of the body from a ``ReportContext``, so the
contents and the body cannot drift apart.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from breastlab.core.artefacts import read_predictions
from breastlab.core.rundir import RunDir
from breastlab.evaluation.metrics import format_figure, format_mean_sd, proportion_ci
from breastlab.reporting.markup import BINARY_COLUMNS, esc, img_tag, is_phantom, scrub, table
from . import figures


# --------------------------------------------------------------------------- sections
def _merge_repeats(warnings: Sequence[str]) -> list[str]:
    """Say each caveat once: ``repeat0: only 30 test cases ...`` and the same for repeat1
    become ``repeat0, repeat1: only 30 test cases ...``."""
    import re

    groups: dict[str, list[str]] = {}
    order: list[str] = []
    for w in warnings:
        m = re.match(r"^(\S+ )?(repeat\d+):? (.*)$", w)
        key = f"{m.group(1) or ''}{m.group(3)}" if m else w
        if key not in groups:
            groups[key] = []
            order.append(key)
        if m:
            groups[key].append(m.group(2))
    out = []
    for key in order:
        reps = groups[key]
        out.append(f"{', '.join(reps)}: {key}" if reps else key)
    return out


def _notes(metrics: Mapping[str, Any], prov: Mapping[str, Any], missing: Sequence[str]) -> str:
    parts = [f'<div class="warn"><b>Missing or stale.</b> {esc(m)}</div>' for m in missing]
    if is_phantom(prov):
        parts.append('<div class="warn"><b>Phantom / demo data.</b> These cases are '
                     "synthetic. The figures below show that the pipeline runs end to end; "
                     "they are <b>not</b> evidence of diagnostic accuracy and must never be "
                     "quoted as such.</div>")
    split = metrics.get("split") or {}
    split_warnings = list(split.get("warnings") or [])
    if split.get("unit") == "image" or split_warnings:
        parts.append('<div class="warn"><b>Image-level split.</b> '
                     + " ".join(esc(w) for w in split_warnings)
                     + " The split is by image, not by patient.</div>")
    items = [esc(w) for w in _merge_repeats([w for w in metrics.get("warnings", [])
                                             if w not in split_warnings])]
    items += [
        "95% CIs describe sampling uncertainty of the test cases of one repeat only; "
        "they do not cover variation from training randomness or case selection, which the "
        "spread across repeats (mean ± sd) partly shows.",
        "The operating threshold was chosen on validation cases only; test cases never "
        "influenced it.",
        "Paired tests are run per repeat only: repeats share test cases, so no test pools "
        "them. Pooled figures (all repeats' test predictions together) are descriptive; "
        "when repeats share cases they carry no CI.",
        "Paired tests are not corrected for multiple comparisons.",
    ]
    lis = "".join(f"<li>{i}</li>" for i in items)
    return "<h2 id='notes'>Notes and caveats</h2>" + "".join(parts) + \
        f'<div class="note"><ul>{lis}</ul></div>'


LEVEL_NAMES = {"breast": "breast", "exam": "exam", "exam_from_breasts": "exam (from breast models)",
               "patient": "patient"}


def _levels_section(metrics: Mapping[str, Any]) -> str:
    """Breast-, exam- and patient-level results side by side (binary runs)."""
    if metrics["task"] != "binary":
        return ""
    rows, detail, by_rows = [], [], []
    for model, m in metrics["models"].items():
        for level, lv in (m.get("levels") or {}).items():
            s = lv.get("summary", {})
            rows.append([model, LEVEL_NAMES.get(level, level), lv.get("unit", ""),
                         format_mean_sd(s.get("auc")), format_mean_sd(s.get("sensitivity")),
                         format_mean_sd(s.get("specificity")), lv.get("note", "")])
            for rep, e in lv.get("repeats", {}).items():
                t = e["test"]
                thr = e.get("threshold")
                detail.append([model, LEVEL_NAMES.get(level, level), rep, t["n"],
                               f"{t['n_pos']}/{t['n_neg']}",
                               "n/a" if thr is None else f"{thr:.3f}",
                               format_figure(t.get("auc")), format_figure(t.get("auc_bootstrap")),
                               format_figure(t.get("sensitivity")),
                               format_figure(t.get("specificity"))])
                for field, groups in (e.get("by") or {}).items():
                    for value, g in groups.items():
                        by_rows.append([model, LEVEL_NAMES.get(level, level), rep,
                                        f"{field} = {value}", g.get("n"),
                                        f"{g.get('n_pos')}/{g.get('n_neg')}",
                                        format_figure(g.get("auc")) if "auc" in g else g.get("note", ""),
                                        format_figure(g.get("sensitivity")) if "sensitivity" in g else "",
                                        format_figure(g.get("specificity")) if "specificity" in g else ""])
    if not rows:
        return ""
    out = ("<h2 id='levels'>Breast, exam and patient level</h2>"
           "<p class='small'>Each level has its own threshold, chosen on its validation rows "
           "with the run's rule. AUC 95% CIs: DeLong and a stratified percentile bootstrap "
           "(2,000 replicates, seeded); sensitivity and specificity: Wilson. An exam is as "
           "suspicious as its worse breast, a patient as her most suspicious exam (max).</p>")
    out += "<h3>Mean ± sd across repeats</h3>" + table(
        ["model", "level", "unit", "AUC", "Sensitivity", "Specificity", "how"], rows, left=3)
    out += "<h3>Each repeat, value (95% CI)</h3>" + table(
        ["model", "level", "repeat", "n", "pos/neg", "threshold", "AUC (DeLong)",
         "AUC (bootstrap)", "Sensitivity", "Specificity"], detail, left=3)
    if by_rows:
        out += "<h3>By manufacturer and by breast</h3>" + table(
            ["model", "level", "repeat", "group", "n", "pos/neg", "AUC (DeLong)", "Sensitivity",
             "Specificity"], by_rows, left=4)
    return out


def _data_section(metrics: Mapping[str, Any], prov: Mapping[str, Any]) -> str:
    names = metrics["class_names"]
    rows = []
    for rep, splits in metrics.get("data", {}).items():
        for split, counts in splits.items():
            rows.append([rep, split, *[counts.get(n, 0) for n in names],
                         sum(counts.values())])
    fp = prov.get("data_fingerprint") or (prov.get("config") or {}).get("data_fingerprint")
    out = "<h2 id='data'>Data</h2>"
    out += table(["repeat", "split", *names, "total"], rows, left=2)
    out += (f"<p class='small'>Data fingerprint (SHA-256 over the view files): "
            f"<code>{esc(fp or 'not recorded')}</code></p>")
    return out


def _summary_table_binary(models: Mapping[str, Any]) -> str:
    rows = []
    for model, m in models.items():
        s = m["summary"]
        n_rep = max((v.get("n_repeats", 0) for v in s.values()), default=0)
        rows.append([model, n_rep, *[format_mean_sd(s.get(k)) for k, _ in BINARY_COLUMNS]])
    return table(["model", "repeats", *[h for _, h in BINARY_COLUMNS]], rows)


def _per_repeat_binary(models: Mapping[str, Any]) -> str:
    rows = []
    for model, m in models.items():
        for rep, e in m["repeats"].items():
            t = e.get("test")
            if not t:
                continue
            thr = e["threshold"].get("threshold")
            rows.append([model, rep, t["n"], f"{t['n_pos']}/{t['n_neg']}",
                         "n/a" if thr is None else f"{thr:.3f}",
                         *[format_figure(t.get(k)) for k, _ in BINARY_COLUMNS]])
        if "pooled" in m:
            p = m["pooled"]
            rows.append([model, "pooled", p["n"], f"{p['n_pos']}/{p['n_neg']}", "per repeat",
                         *[format_figure(p.get(k)) for k, _ in BINARY_COLUMNS]])
    return table(["model", "repeat", "n", "pos/neg", "threshold",
                  *[h for _, h in BINARY_COLUMNS]], rows, left=2)


def _summary_table_multi(models: Mapping[str, Any], names: Sequence[str]) -> str:
    rows = []
    for model, m in models.items():
        s = m["summary"]
        rows.append([model, format_mean_sd(s.get("accuracy")),
                     *[format_mean_sd(s.get(f"per_class.{n}.accuracy")) for n in names],
                     format_mean_sd(s.get("macro_auc"))])
    return table(["model", "overall accuracy", *[f"accuracy {n}" for n in names],
                  "macro AUC (OvR)"], rows)


def _per_repeat_multi(models: Mapping[str, Any], names: Sequence[str]) -> str:
    rows = []
    for model, m in models.items():
        items = [(rep, e.get("test")) for rep, e in m["repeats"].items()]
        if "pooled" in m:
            items.append(("pooled", m["pooled"]))
        for rep, t in items:
            if not t:
                continue
            rows.append([model, rep, t["n"], format_figure(t["accuracy"]),
                         *[format_figure(t["per_class"][n]["accuracy"]) for n in names],
                         format_figure(t.get("macro_auc"))])
    return table(["model", "repeat", "n", "overall accuracy",
                  *[f"accuracy {n}" for n in names], "macro AUC (OvR)"], rows, left=2)


def _metrics_section(metrics: Mapping[str, Any]) -> str:
    st = metrics["settings"]
    models = metrics["models"]
    names = metrics["class_names"]
    out = "<h2 id='metrics'>Metrics (test set)</h2>"
    ci_name = {"wilson": "Wilson score", "exact": "Clopper-Pearson exact"}.get(
        st["proportion_ci"], st["proportion_ci"])
    auc_name = {"delong": "DeLong", "bootstrap": "stratified bootstrap"}.get(
        st["auc_ci"], st["auc_ci"])
    out += (f"<p class='small'>Proportions: {esc(ci_name)} 95% CI; AUC: "
            f"{esc(auc_name)} 95% CI. Mean ± sd: {esc(st['sd'])}. "
            + ("Positive class: " + esc(metrics.get('positive_class')) + "."
               if metrics["task"] == "binary" else
               "Accuracy of a class = the fraction of its cases predicted as that class "
               "(recall).") + "</p>")
    if metrics["task"] == "binary":
        out += "<h3>Mean ± sd across repeats</h3>" + _summary_table_binary(models)
        out += "<h3>Each repeat, value (95% CI)</h3>" + _per_repeat_binary(models)
    else:
        out += "<h3>Mean ± sd across repeats</h3>" + _summary_table_multi(models, names)
        out += "<h3>Each repeat, value (95% CI)</h3>" + _per_repeat_multi(models, names)
    return out


def _threshold_section(metrics: Mapping[str, Any]) -> str:
    if metrics["task"] != "binary":
        return ("<h2 id='threshold'>Decision rule</h2><p>Predicted class = the class with "
                "the highest probability (no threshold).</p>")
    rows = []
    for model, m in metrics["models"].items():
        for rep, e in m["repeats"].items():
            t = e["threshold"]
            f = (lambda v: "n/a" if v is None else f"{v:.3f}")
            rows.append([model, rep, f(t.get("threshold")), t.get("rule", ""),
                         f"{t.get('n_val', 0)} ({t.get('n_val_pos', 0)}/{t.get('n_val_neg', 0)})",
                         f(t.get("val_sensitivity")), f(t.get("val_specificity")),
                         t.get("rationale", "")])
    return ("<h2 id='threshold'>Operating thresholds (chosen on validation)</h2>"
            "<p class='small'>A case is called positive when P(positive) ≥ threshold.</p>"
            + table(["model", "repeat", "threshold", "rule", "val n (pos/neg)",
                     "val sensitivity", "val specificity", "rationale"], rows, left=2))


def _p(v: Any) -> str:
    if v is None:
        return "n/a"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def _paired_section(metrics: Mapping[str, Any]) -> str:
    pairs = metrics.get("paired") or []
    out = "<h2 id='paired'>Paired comparisons (same test cases)</h2>"
    if not pairs:
        return out + "<p>Only one model: no paired comparisons.</p>"
    binary = metrics["task"] == "binary"
    alpha = metrics["settings"]["alpha"]
    rows = []
    for pr in pairs:
        items = list(pr["repeats"].items())
        for rep, v in items:
            mc = v["mcnemar"]
            row = [f"{pr['model_a']} vs {pr['model_b']}", rep, v["n"],
                   f"{mc['accuracy']['a_only']}/{mc['accuracy']['b_only']}",
                   _p(mc["accuracy"]["p_value"])]
            if binary:
                d = v["delong"]
                row += [_p(mc["sensitivity"]["p_value"]), _p(mc["specificity"]["p_value"]),
                        "n/a" if d["difference"] is None else
                        f"{d['difference']:+.3f} ({d['ci_low']:+.3f} to {d['ci_high']:+.3f})",
                        _p(d["p_value"])]
            rows.append(row)
        acr = pr.get("across_repeats", {})
        row = [f"{pr['model_a']} vs {pr['model_b']}", f"repeats with p<{alpha:g}", "", "",
               _count(acr.get("mcnemar_accuracy"))]
        if binary:
            row += [_count(acr.get("mcnemar_sensitivity")), _count(acr.get("mcnemar_specificity")),
                    "", _count(acr.get("delong_auc"))]
        rows.append(row)
        av = pr.get("averaged")
        if av and binary:
            d = av["delong"]
            rows.append([f"{pr['model_a']} vs {pr['model_b']}",
                         f"averaged over {av['n_repeats']} repeats", av["n_cases"], "", "", "", "",
                         "n/a" if d["difference"] is None else
                         f"{d['difference']:+.3f} ({d['ci_low']:+.3f} to {d['ci_high']:+.3f})",
                         _p(d["p_value"])])
    header = ["models (A vs B)", "repeat", "n", "discordant A-only/B-only", "McNemar p (accuracy)"]
    if binary:
        header += ["McNemar p (sensitivity)", "McNemar p (specificity)",
                   "AUC difference A−B (95% CI)", "DeLong p"]
    out += ("<p class='small'>Exact McNemar test on paired correctness (the exact form of "
            "the paired χ² test"
            + ("; sensitivity on positives, specificity on negatives) and DeLong's test for "
               "correlated AUCs." if binary else ").")
            + " Tests are per repeat; no test pools repeats, which share test cases and would "
            "count each case once per repeat. 'averaged' (when every repeat has the same test "
            "cases): one DeLong test on each case's probability averaged over repeats, each "
            "case counted once.</p>")
    return out + table(header, rows, left=2)


def _count(s: Mapping[str, Any] | None) -> str:
    if not s:
        return ""
    med = s.get("median_p")
    return f"{s['n_below_alpha']}/{s['n_repeats']} (median p {_p(med)})"


def _figures_section(run: RunDir, metrics: Mapping[str, Any]) -> str:
    names = metrics["class_names"]
    curves: dict[str, list] = {}
    for model, reps in run.discover().items():
        for path in reps.values():
            t = read_predictions(path, names).subset("test")
            if len(t.label):
                curves.setdefault(model, []).append((t.label, t.prob))
    out = "<h2 id='roc'>ROC curves</h2>"
    if curves:
        legends = {m: figures.auc_legend(metrics["models"][m]["summary"].get("auc"),
                                         metrics["models"][m].get("pooled", {}).get("auc"))
                   for m in curves if m in metrics["models"]}
        png = figures.roc_figure(curves, legends, names)
        out += f"<figure>{img_tag(png, 'ROC curves')}<figcaption>ROC curves of every model on " \
               "the test cases.</figcaption></figure>"
        if metrics["task"] == "binary":
            png, brier = figures.calibration_figure(curves)
            out += ("<h2 id='calibration'>Calibration</h2><figure>" + img_tag(png, "calibration")
                    + "<figcaption>Reliability diagram: does a predicted probability of 0.7 mean "
                    "malignant 7 times in 10? Brier score (mean squared error of the probability; "
                    "lower is better): "
                    + ", ".join(f"{esc(m)} {b:.3f}" for m, b in brier.items())
                    + ". The operating threshold is chosen on validation data; the probabilities "
                    "themselves are not recalibrated.</figcaption></figure>")
    keys = ([k for k, _ in BINARY_COLUMNS] if metrics["task"] == "binary"
            else ["accuracy", *[f"per_class.{n}.accuracy" for n in names]])
    vals = {k: {m: mm["summary"].get(k, {}).get("values", [])
                for m, mm in metrics["models"].items()} for k in keys}
    if any(len(v) > 1 for d in vals.values() for v in d.values()):
        out += ("<h3>Spread across repeats</h3><figure>"
                + img_tag(figures.repeat_metrics_figure(vals), "metrics per repeat")
                + "<figcaption>Each dot one repeat; bar = mean.</figcaption></figure>")
    out += "<h2 id='confusion'>Confusion matrices</h2><div class='grid'>"
    for model, m in metrics["models"].items():
        cm = m.get("pooled", {}).get("confusion_matrix")
        if cm is None:
            continue
        n_rep = sum(1 for e in m["repeats"].values() if "test" in e)
        png = figures.confusion_figure(cm, names, f"{model} (sum over {n_rep} repeat(s))")
        out += f"<figure>{img_tag(png, f'confusion matrix {model}')}</figure>"
    out += "</div>"
    ci = metrics["settings"].get("proportion_ci", "wilson")
    for model, m in metrics["models"].items():
        cm = m.get("pooled", {}).get("confusion_matrix")
        if cm is None:
            continue
        rows = []
        for i, n in enumerate(names):
            acc = proportion_ci(cm[i][i], sum(cm[i]), ci)
            rows.append([n, *cm[i], sum(cm[i]), format_figure(acc)])
        total = sum(map(sum, cm))
        overall = proportion_ci(sum(cm[i][i] for i in range(len(cm))), total, ci)
        rows.append(["overall", *[""] * len(names), total, format_figure(overall)])
        out += (f"<h3>{esc(model)}: all repeats' test cases</h3>"
                + table(["true \\ predicted", *names, "n", "accuracy of class (95% CI)"],
                        rows))
    rows = []
    for model, m in metrics["models"].items():
        for rep, e in m["repeats"].items():
            if "test" in e:
                rows.append([model, rep, json.dumps(e["test"]["confusion_matrix"])])
    out += ("<p class='small'>Rows: true class; columns: predicted class (order: "
            + esc(", ".join(names)) + ").</p>" + table(["model", "repeat", "matrix"], rows, 2))
    return out


def _gallery_section(run: RunDir) -> str:
    from breastlab.explain.gallery import gallery_entries

    entries = gallery_entries(run.root)
    note = (f"<p>No heat maps: {esc(run.explain)} holds no Grad-CAM gallery "
            "(`breastlab report --gallery` builds it when the run has model files and case "
            "images).</p>")
    out = "<h2 id='gradcam'>Grad-CAM gallery</h2>"
    if not entries:
        return out + note
    out += ("<p class='small'>Each view: the image as stored (its own aspect ratio) and the "
            "Grad-CAM map mapped back onto it (right views are flipped for the network and "
            "shown here as stored). Grad-CAM on the last convolutional block (layer4). The stacked "
            "model has one spatial map shared by its views; the percentage under each view "
            "is that view's share of the input attribution (gradient × input summed per "
            "view; the view-wise model uses its per-view logits); ★ marks the view that "
            "drove the decision.</p>")
    for e in entries:
        png = (run.explain / e["file"]).read_bytes()
        cap = ""
        if "case_id" in e:
            shares = ", ".join(f"{v} {100 * s:.0f}%" for v, s in zip(e["views"], e["shares"]))
            files = "; ".join(f"{v}: {f}" for v, f in (e.get("files") or {}).items() if f)
            flipped = e.get("flipped") or []
            cap = (f"case {e['case_id']} — {e['model']} repeat {e['repeat']}: truth "
                   f"{e['label']}, predicted {e['predicted']} "
                   f"({'correct' if e['correct'] else 'wrong'}); view shares: {shares}"
                   + (f"; files (relative to the input root): {files}" if files else "")
                   + (f"; flipped for the network, shown as stored: {', '.join(flipped)}"
                      if flipped else ""))
        out += f"<figure>{img_tag(png, e['file'])}<figcaption>{esc(cap)}</figcaption></figure>"
    return out


def _learning_section(run: RunDir) -> str:
    """Learning curves from every ``history.csv`` (exam-level models)."""
    import csv

    histories: dict[str, list[list[dict[str, str]]]] = {}
    for model, paths in run.histories().items():
        for hist in sorted(paths, key=lambda p: p.parent.name):
            with open(hist, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
            if rows:
                histories.setdefault(model, []).append(rows)
    out = "<h2 id='learning'>Learning curves</h2>"
    if not histories:
        return out + "<p>No history.csv in this run.</p>"
    png = figures.learning_curves_figure(histories)
    return out + (f"<figure>{img_tag(png, 'learning curves')}<figcaption>Per epoch, from "
                  "models/*/repeat*/history.csv: training and validation loss, validation AUC; "
                  "repeat 0 dark, other repeats light.</figcaption></figure>")


#: (paths into the provenance ``config``, first found wins; label). Four-view runs record
#: their settings under ``settings`` (``training.config.FourViewConfig.to_dict``); MRI series
#: runs and older runs flat.
KEY_SETTINGS = (("models", "models"), ("views", "views (channel order)"),
                ("repeats", "repeats"), ("settings.split.method|split", "split"),
                ("split_unit", "split unit"),
                ("settings.preprocessing.image_size|image_size", "image size"),
                ("settings.pretrained|pretrained", "ImageNet initialisation"),
                ("settings.train.epochs|train.epochs|epochs", "epochs"),
                ("settings.train.batch_size|train.batch_size|batch_size", "batch size"),
                ("settings.train.optimizer|train.optimizer|optimizer", "optimizer"),
                ("settings.train.lr|train.lr|lr", "learning rate"),
                ("settings.train.momentum|train.momentum", "momentum"),
                ("settings.train.weight_decay|train.weight_decay", "weight decay"),
                ("settings.train.select_metric|train.select_metric", "model selection"),
                ("levels", "levels trained"),
                ("n_cases", "cases"), ("n_breasts", "labelled breasts"),
                ("settings.seed|seed", "seed"),
                ("settings.run.config_file|config_file", "configuration file"))


def _setting(cfg: Mapping[str, Any], paths: str) -> Any:
    """The first of the ``|``-separated dotted ``paths`` present in ``cfg``."""
    for path in paths.split("|"):
        value: Any = cfg
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value not in (None, "", [], {}):
            return value
    return None


def _provenance_section(prov: Mapping[str, Any]) -> str:
    if not prov:
        return "<h2 id='provenance'>Configuration and versions</h2><p>No provenance.json.</p>"
    cfg = scrub(prov.get("config") or {})
    versions = prov.get("versions") or {}
    out = "<h2 id='provenance'>Configuration and versions</h2>"
    command = prov.get("command") or ""
    if isinstance(command, (list, tuple)):
        command = " ".join(str(c) for c in command)
    out += table(["item", "value"], [["command", f"<code>{esc(command)}</code>" if command else ""],
                                     ["created (UTC)", esc(prov.get("created_utc", ""))],
                                     ["data fingerprint", esc(prov.get("data_fingerprint", ""))]],
                 raw=True)
    rows = []
    for key, label in KEY_SETTINGS:
        value = _setting(cfg, key)
        if value is not None:
            rows.append([label, ", ".join(map(str, value)) if isinstance(value, list) else value])
    if rows:
        out += "<h3>Configuration</h3>" + table(["setting", "value"], rows)
    out += ("<details><summary>Full configuration (JSON)</summary><pre>"
            + esc(json.dumps(cfg, indent=2, default=str)) + "</pre></details>")
    out += "<h3>Versions</h3>" + table(["library", "version"], sorted(versions.items()))
    return out


# --------------------------------------------------------------------------- the list
@dataclass(frozen=True)
class ReportContext:
    """What every section renders from: the run, its metrics and provenance, and what is
    missing or stale."""

    run: RunDir
    metrics: Mapping[str, Any]
    prov: Mapping[str, Any]
    missing: Sequence[str]


@dataclass(frozen=True)
class Section:
    """One part of the report: its anchors and titles (the contents) and its body."""

    links: tuple[tuple[str, str], ...]
    render: Callable[[ReportContext], str]


#: The report, in order: the table of contents and the body both come from this list.
SECTIONS: tuple[Section, ...] = (
    Section((("notes", "notes"),), lambda c: _notes(c.metrics, c.prov, c.missing)),
    Section((("data", "data"),), lambda c: _data_section(c.metrics, c.prov)),
    Section((("metrics", "metrics"),), lambda c: _metrics_section(c.metrics)),
    Section((("levels", "breast/exam/patient"),), lambda c: _levels_section(c.metrics)),
    Section((("threshold", "thresholds"),), lambda c: _threshold_section(c.metrics)),
    Section((("paired", "paired tests"),), lambda c: _paired_section(c.metrics)),
    Section((("roc", "ROC"), ("calibration", "calibration"), ("confusion", "confusion matrices")),
            lambda c: _figures_section(c.run, c.metrics)),
    Section((("learning", "learning curves"),), lambda c: _learning_section(c.run)),
    Section((("gradcam", "Grad-CAM"),), lambda c: _gallery_section(c.run)),
    Section((("provenance", "configuration"),), lambda c: _provenance_section(c.prov)),
)


def contents() -> str:
    """The table of contents: a link per anchor of ``SECTIONS``."""
    return " · ".join(f"<a href='#{a}'>{t}</a>" for s in SECTIONS for a, t in s.links)
