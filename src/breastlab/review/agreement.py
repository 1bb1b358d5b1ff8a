"""Agreement of the sorter with a truth table, as the seed paper reports it.

A confusion matrix (rows: the reviewer's label, columns: the sorter's), the overall
accuracy and each label's accuracy (the share of sets of that true label the sorter
named right), each with a Wilson 95% interval (statsmodels' ``proportion_confint``:
the interval the project's metrics use for proportions).

Example:
    >>> a = agreement([(Label.T2WI, Label.T2WI), (Label.T2WI, Label.T1), (Label.ADC, Label.ADC)])
    >>> a["overall"]["n"], a["overall"]["correct"], a["confusion"][Label.T2WI]
    (3, 2, {'T2WI': 1, 'T1': 1})
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from breastlab.core.labels import LABELS, Label


def wilson(k: int, n: int, alpha: float = 0.05) -> tuple[float | None, float | None]:
    """Wilson score interval of ``k`` successes in ``n`` (``(None, None)`` when ``n`` is 0)."""
    if n == 0:
        return None, None
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    return round(float(lo), 4), round(float(hi), 4)


def _share(k: int, n: int) -> dict[str, Any]:
    lo, hi = wilson(k, n)
    return {"n": n, "correct": k, "accuracy": round(k / n, 4) if n else None, "ci_low": lo, "ci_high": hi}


def _order(values: Iterable[str]) -> list[str]:
    known = [str(x) for x in LABELS]
    vals = set(values)
    return [x for x in known if x in vals] + sorted(vals - set(known))


def agreement(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``(truth, sorter)`` label pairs → overall and per-label accuracy with CIs and the confusion matrix.

    Returns a JSON-able dict: ``overall``, ``per_label`` (truth label → share), ``confusion``
    (truth → sorter → count, labels in output order) and ``labels`` (the row order).
    """
    pairs = [(str(t), str(p)) for t, p in pairs]
    labels = _order([t for t, _ in pairs] + [p for _, p in pairs])
    confusion: dict[str, dict[str, int]] = {}
    for t, p in pairs:
        confusion.setdefault(t, {})
        confusion[t][p] = confusion[t].get(p, 0) + 1
    confusion = {t: {p: confusion[t][p] for p in labels if p in confusion[t]} for t in labels if t in confusion}
    per_label = {t: _share(row.get(t, 0), sum(row.values())) for t, row in confusion.items()}
    return {
        "method": "Wilson 95% (statsmodels proportion_confint)",
        "overall": _share(sum(t == p for t, p in pairs), len(pairs)),
        "per_label": per_label,
        "confusion": confusion,
        "labels": labels,
    }


def _pct(share: dict[str, Any]) -> str:
    if not share["n"]:
        return "-"
    return f"{100 * share['accuracy']:.1f}% ({100 * share['ci_low']:.1f}-{100 * share['ci_high']:.1f})"


def agreement_tables(agr: dict[str, Any], *, unmatched: int = 0):
    """Two Rich tables: the confusion matrix and per-label accuracy (with the overall line)."""
    from rich.table import Table

    cols = agr["labels"]
    matrix = Table(title="truth (rows) × sorter (columns)", show_lines=False)
    matrix.add_column("truth \\ sorter", no_wrap=True)
    for c in cols:
        matrix.add_column(c, justify="right")
    for t in cols:
        row = agr["confusion"].get(t)
        if row is None:
            continue
        matrix.add_row(t, *[(f"[bold]{row.get(c, 0)}[/]" if c == t else str(row.get(c, "") or ""))
                            for c in cols])
    acc = Table(title="agreement with the truth table (Wilson 95% CI)")
    for name, kw in (("label", {}), ("n", {"justify": "right"}), ("correct", {"justify": "right"}),
                     ("accuracy (95% CI)", {"justify": "right"})):
        acc.add_column(name, **kw)
    for t, share in agr["per_label"].items():
        acc.add_row(t, str(share["n"]), str(share["correct"]), _pct(share))
    o = agr["overall"]
    acc.add_row("[bold]overall[/]", str(o["n"]), str(o["correct"]), _pct(o),
                end_section=True)
    if unmatched:
        acc.caption = f"{unmatched} truth rows matched no image set of this sort (see agreement.json)"
    return matrix, acc


__all__ = ["agreement", "agreement_tables", "wilson", "Label"]
