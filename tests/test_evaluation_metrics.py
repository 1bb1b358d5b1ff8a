"""Metrics and their CIs against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from breastlab.evaluation.metrics import (
    auc_ci, binary_metrics, fast_delong, multiclass_metrics, proportion_ci, summarise_repeats,
)
from breastlab.evaluation.paired import delong_paired, mcnemar_exact
from breastlab.evaluation.threshold import choose_threshold

Z = 1.959963984540054  # Φ⁻¹(0.975)


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    # Wilson score interval:
    #   centre = (p + z²/(2n)) / (1 + z²/n)
    #   half   = z · sqrt(p(1-p)/n + z²/(4n²)) / (1 + z²/n)
    p = k / n
    denom = 1 + Z**2 / n
    centre = (p + Z**2 / (2 * n)) / denom
    half = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2)) / denom
    return centre - half, centre + half


def test_wilson_8_of_10_matches_hand_value():
    fig = proportion_ci(8, 10, "wilson")
    assert fig["value"] == pytest.approx(0.8)
    assert (fig["ci_low"], fig["ci_high"]) == pytest.approx((0.4902, 0.9433), abs=5e-5)
    assert (fig["ci_low"], fig["ci_high"]) == pytest.approx(wilson_by_hand(8, 10), abs=1e-12)
    assert fig["method"] == "Wilson" and fig["n"] == 10 and fig["k"] == 8


@pytest.mark.parametrize("k,n", [(0, 7), (3, 17), (45, 45)])
def test_wilson_formula_other_counts(k, n):
    fig = proportion_ci(k, n)
    assert (fig["ci_low"], fig["ci_high"]) == pytest.approx(wilson_by_hand(k, n), abs=1e-12)


def test_clopper_pearson_exact_by_beta_quantiles():
    # Exact interval: lower = Beta(α/2; k, n-k+1), upper = Beta(1-α/2; k+1, n-k).
    # 8/10 → (0.4439, 0.9748).
    fig = proportion_ci(8, 10, "exact")
    assert fig["ci_low"] == pytest.approx(stats.beta.ppf(0.025, 8, 3), abs=1e-10)
    assert fig["ci_high"] == pytest.approx(stats.beta.ppf(0.975, 9, 2), abs=1e-10)
    assert (fig["ci_low"], fig["ci_high"]) == pytest.approx((0.4439, 0.9748), abs=5e-5)
    # k = 0: lower bound 0, upper 1 - (α/2)^(1/n)
    zero = proportion_ci(0, 10, "exact")
    assert zero["ci_low"] == 0 and zero["ci_high"] == pytest.approx(1 - 0.025 ** 0.1)


def test_empty_proportion_is_undefined():
    assert proportion_ci(0, 0)["value"] is None


def delong_by_hand(pos, neg):
    """Structural components (DeLong 1988): V10_i = mean_j ψ(x_i, y_j), V01_j = mean_i ψ."""
    def psi(a, b):
        return 1.0 if a > b else 0.5 if a == b else 0.0
    v10 = [np.mean([psi(x, y) for y in neg]) for x in pos]
    v01 = [np.mean([psi(x, y) for x in pos]) for y in neg]
    auc = np.mean(v10)
    s10 = np.var(v10, ddof=1)
    s01 = np.var(v01, ddof=1)
    return auc, s10 / len(pos) + s01 / len(neg)


def test_delong_variance_small_hand_example():
    # positives 0.9, 0.8, 0.4; negatives 0.7, 0.4, 0.2 (one tie at 0.4)
    # V10 = [1, 1, 1/2] → AUC = 5/6, S10 = 1/12
    # V01 = [2/3, 5/6, 1] → S01 = 1/36;  Var = (1/12)/3 + (1/36)/3 = 1/27
    pos, neg = [0.9, 0.8, 0.4], [0.7, 0.4, 0.2]
    y = np.r_[np.ones(3), np.zeros(3)].astype(int)
    s = np.r_[pos, neg]
    aucs, cov = fast_delong(y, s)
    assert aucs[0] == pytest.approx(5 / 6)
    assert cov[0, 0] == pytest.approx(1 / 27)
    assert (aucs[0], cov[0, 0]) == pytest.approx(delong_by_hand(pos, neg))
    fig = auc_ci(y, s)
    se = math.sqrt(1 / 27)
    assert fig["ci_low"] == pytest.approx(max(0, 5 / 6 - Z * se))
    assert fig["ci_high"] == pytest.approx(min(1, 5 / 6 + Z * se))


def test_delong_matches_definition_and_sklearn_random():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    s = np.round(y + rng.normal(size=60), 1)  # rounding creates ties
    aucs, cov = fast_delong(y, s)
    auc_h, var_h = delong_by_hand(s[y == 1], s[y == 0])
    assert aucs[0] == pytest.approx(roc_auc_score(y, s))
    assert aucs[0] == pytest.approx(auc_h) and cov[0, 0] == pytest.approx(var_h)


def test_bootstrap_auc_ci_brackets_point_estimate():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 80)
    s = y + rng.normal(size=80)
    fig = auc_ci(y, s, "bootstrap", n_boot=300)
    assert fig["ci_low"] < fig["value"] < fig["ci_high"]
    assert fig["value"] == pytest.approx(roc_auc_score(y, s))
    assert auc_ci(np.ones(5, int), np.arange(5.0))["value"] is None


def test_binary_metrics_counts_and_cis():
    # TP=4, FN=1, TN=3, FP=2 at threshold 0.5
    y = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    p = [0.9, 0.8, 0.7, 0.6, 0.2, 0.1, 0.3, 0.4, 0.55, 0.65]
    m = binary_metrics(y, p, 0.5)
    assert m["confusion_matrix"] == [[3, 2], [1, 4]]
    assert m["sensitivity"]["value"] == pytest.approx(4 / 5)
    assert m["specificity"]["value"] == pytest.approx(3 / 5)
    assert m["accuracy"]["value"] == pytest.approx(7 / 10)
    assert m["ppv"]["value"] == pytest.approx(4 / 6)
    assert m["npv"]["value"] == pytest.approx(3 / 4)
    assert (m["sensitivity"]["ci_low"], m["sensitivity"]["ci_high"]) == pytest.approx(
        wilson_by_hand(4, 5))
    assert m["auc"]["value"] == pytest.approx(roc_auc_score(y, p))
    # prob exactly at the threshold counts as positive
    assert binary_metrics([1], [0.5], 0.5)["sensitivity"]["value"] == 1.0


def test_mcnemar_exact_equals_binomial_on_discordant_pairs():
    rng = np.random.default_rng(0)
    a = rng.random(50) < 0.8
    b = rng.random(50) < 0.6
    res = mcnemar_exact(a, b)
    n01, n10 = int((a & ~b).sum()), int((~a & b).sum())
    assert (res["a_only"], res["b_only"]) == (n01, n10)
    assert res["n_discordant"] == n01 + n10
    expected = stats.binomtest(n01, n01 + n10, 0.5).pvalue
    assert res["p_value"] == pytest.approx(expected)
    # hand value: 7 vs 1 discordant → p = 2·P(X ≤ 1 | n=8) = 2·9/256
    a = [True] * 7 + [False] * 1 + [True] * 5
    b = [False] * 7 + [True] * 1 + [True] * 5
    assert mcnemar_exact(a, b)["p_value"] == pytest.approx(18 / 256)
    assert mcnemar_exact([True, False], [True, False])["p_value"] == 1.0


def test_delong_paired_identical_and_different():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 100)
    s1 = y * 2 + rng.normal(size=100)
    s2 = rng.normal(size=100)
    same = delong_paired(y, s1, s1)
    assert same["difference"] == 0 and same["p_value"] == 1.0
    res = delong_paired(y, s1, s2)
    assert res["auc_a"] == pytest.approx(roc_auc_score(y, s1))
    assert res["auc_b"] == pytest.approx(roc_auc_score(y, s2))
    _, cov = fast_delong(y, np.vstack([s1, s2]))
    se = math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert res["z"] == pytest.approx((res["auc_a"] - res["auc_b"]) / se)
    assert res["p_value"] == pytest.approx(2 * stats.norm.sf(abs(res["z"])))
    assert res["p_value"] < 0.001


def test_threshold_selection_constructed_example():
    y = [0, 0, 0, 1, 1, 1]
    p = [0.1, 0.3, 0.6, 0.4, 0.7, 0.9]
    # cut 0.65: sens 2/3 spec 1; cut 0.35: sens 1 spec 2/3 (both J = 2/3) → tie goes to
    # the higher sensitivity: half-way between 0.4 and 0.3.
    t = choose_threshold(y, p)
    assert t["threshold"] == pytest.approx(0.35)
    assert t["val_sensitivity"] == 1 and t["val_specificity"] == pytest.approx(2 / 3)
    assert "Youden" in t["rationale"]
    assert choose_threshold(y, p, "sensitivity>=0.6")["threshold"] == pytest.approx(0.65)
    assert choose_threshold(y, p, "sensitivity>=1")["threshold"] == pytest.approx(0.35)
    assert choose_threshold(y, p, "fixed")["threshold"] == 0.5
    assert choose_threshold(y, p, "0.3")["threshold"] == 0.3
    assert choose_threshold([1, 1], [0.2, 0.9])["threshold"] == 0.5   # one class: fallback
    with pytest.raises(ValueError):
        choose_threshold(y, p, "median")


def test_multiclass_confusion_and_per_class_accuracy():
    names = ["T2WI", "T2WI_FS", "ADC"]
    y = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    pred = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    m = multiclass_metrics(y, pred, names)
    assert m["confusion_matrix"] == [[3, 1, 0], [0, 2, 1], [0, 0, 3]]
    assert m["accuracy"]["value"] == pytest.approx(0.8)
    assert (m["accuracy"]["ci_low"], m["accuracy"]["ci_high"]) == pytest.approx(
        wilson_by_hand(8, 10))
    assert m["per_class"]["T2WI"]["accuracy"]["value"] == pytest.approx(3 / 4)
    assert m["per_class"]["T2WI_FS"]["accuracy"]["value"] == pytest.approx(2 / 3)
    assert m["per_class"]["ADC"]["accuracy"]["value"] == 1.0
    assert m["per_class"]["ADC"]["precision"]["value"] == pytest.approx(3 / 4)
    assert "macro_auc" not in m
    prob = np.eye(3)[pred] * 0.7 + 0.1
    mp = multiclass_metrics(y, prob, names)
    assert mp["confusion_matrix"] == m["confusion_matrix"]
    expect = np.mean([roc_auc_score(np.array(y) == i, prob[:, i]) for i in range(3)])
    assert mp["macro_auc"]["value"] == pytest.approx(expect)


def test_summarise_repeats_mean_sd():
    reps = [binary_metrics([1, 1, 0, 0], p, 0.5) for p in
            ([0.9, 0.8, 0.1, 0.2], [0.9, 0.4, 0.1, 0.2], [0.9, 0.4, 0.6, 0.2])]
    s = summarise_repeats(reps)
    assert s["sensitivity"]["values"] == [1.0, 0.5, 0.5]
    assert s["sensitivity"]["mean"] == pytest.approx(2 / 3)
    assert s["sensitivity"]["sd"] == pytest.approx(np.std([1, 0.5, 0.5], ddof=1))
    assert s["specificity"]["mean"] == pytest.approx(5 / 6)
    mc = summarise_repeats([multiclass_metrics([0, 1, 2], [0, 1, 1], ["a", "b", "c"])] * 2)
    assert mc["per_class.c.accuracy"]["mean"] == 0 and mc["per_class.c.accuracy"]["sd"] == 0


def test_zero_width_auc_warning_says_the_true_reason() -> None:
    """AUC 0.833 with a zero-width CI is not 'perfect separation' (issue 15)."""
    from breastlab.evaluation.run import _zero_width_auc

    assert "perfect separation" in _zero_width_auc("m repeat0", 1.0)
    assert "inverted" in _zero_width_auc("m repeat0", 0.0)
    partial = _zero_width_auc("m repeat1", 0.8333)
    assert "perfect" not in partial and "too few test cases" in partial
