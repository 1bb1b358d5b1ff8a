"""Tables the commands print: the test metrics of a four-view run (``train``, ``evaluate``)."""
from __future__ import annotations

from typing import Any


def print_fourview_metrics(metrics: dict[str, Any]) -> None:
    """Mean ± sd of the test metrics per model, paired tests, levels and notes (stdout)."""
    from rich.console import Console
    from rich.table import Table

    from breastlab.evaluation.metrics import format_mean_sd

    console = Console()
    names = metrics["class_names"]
    if metrics["task"] == "binary":
        keys = [("accuracy", "Accuracy"), ("sensitivity", "Sensitivity"),
                ("specificity", "Specificity"), ("auc", "AUC")]
    else:
        keys = [("accuracy", "Overall accuracy"),
                *[(f"per_class.{n}.accuracy", f"Acc. {n}") for n in names],
                ("macro_auc", "Macro AUC")]
    table = Table(title="Test metrics: mean ± sd across repeats "
                        "(per-repeat 95% CIs in metrics.json)")
    table.add_column("model", style="bold")
    table.add_column("repeats", justify="right")
    for _, h in keys:
        table.add_column(h, justify="right")
    for model, m in metrics["models"].items():
        s = m["summary"]
        n = max((v.get("n_repeats", 0) for v in s.values()), default=0)
        table.add_row(model, str(n), *[format_mean_sd(s.get(k)) for k, _ in keys])
    console.print(table)
    pairs = metrics.get("paired") or []
    if pairs:
        pt = Table(title="Paired tests per repeat (repeats share test cases: no pooled test)")
        for col in ("A vs B", "McNemar p (acc.) per repeat", "DeLong p (AUC) per repeat",
                    "DeLong p, repeat-averaged"):
            pt.add_column(col)
        fmt = (lambda v: "n/a" if v is None else f"{v:.3g}")
        for pr in pairs:
            acr = pr.get("across_repeats", {})
            mc = ", ".join(fmt(v) for v in acr.get("mcnemar_accuracy", {}).get("p_values", []))
            dl = ", ".join(fmt(v) for v in acr.get("delong_auc", {}).get("p_values", []))
            av = (pr.get("averaged") or {}).get("delong", {})
            pt.add_row(f"{pr['model_a']} vs {pr['model_b']}", mc, dl or "n/a",
                       fmt(av.get("p_value")) if av else "n/a")
        console.print(pt)
    levels_rows = [(model, level, lv) for model, m in metrics["models"].items()
                   for level, lv in (m.get("levels") or {}).items()]
    if levels_rows:
        lt = Table(title="Breast / exam / patient level: mean ± sd across repeats")
        for col in ("model", "level", "unit", "AUC", "Sensitivity", "Specificity"):
            lt.add_column(col)
        for model, level, lv in levels_rows:
            s = lv.get("summary", {})
            lt.add_row(model, level, lv.get("unit", ""), format_mean_sd(s.get("auc")),
                       format_mean_sd(s.get("sensitivity")), format_mean_sd(s.get("specificity")))
        console.print(lt)
    for w in metrics.get("warnings", []):
        console.print(f"[yellow]note:[/yellow] {w}")

