"""Metrics against values worked out by hand."""

import math

import numpy as np
import pytest

from higgsbench import metrics


def test_auc_and_accuracy():
    y = np.array([0, 0, 1, 1])
    assert metrics.auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert metrics.auc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert metrics.auc(y, np.array([0.1, 0.6, 0.4, 0.9])) == 0.75
    assert metrics.accuracy(y, np.array([0.1, 0.6, 0.4, 0.9])) == 0.5


def test_asimov_significance_matches_the_formula_and_its_limit():
    s, b = 10.0, 100.0
    expected = math.sqrt(2 * ((s + b) * math.log(1 + s / b) - s))
    assert metrics.asimov_significance(s, b) == pytest.approx(expected)
    # for s << b it tends to s/√b
    assert metrics.asimov_significance(0.1, 1e4) == pytest.approx(0.1 / 100, rel=1e-3)


def test_fom_is_maximised_over_the_cut_with_reweighting():
    # 1000 signal and 1000 background events; signal scores uniform in [0.5, 1),
    # background uniform in [0, 1).
    rng = np.random.default_rng(0)
    sig = np.sort(rng.uniform(0.5, 1.0, 1000))
    bkg = np.sort(rng.uniform(0.0, 1.0, 1000))
    y = np.r_[np.ones(1000), np.zeros(1000)]
    m = metrics.physics_metrics(y, np.r_[sig, bkg])
    # By hand on the same scan: S = 100 ε_s, B = 1000 ε_b, ≥ 20 events of each class.
    cuts = np.linspace(0, 1, 1001)
    eps_s = np.array([(sig > c).mean() for c in cuts])
    eps_b = np.array([(bkg > c).mean() for c in cuts])
    ok = ((sig[None, :] > cuts[:, None]).sum(1) >= 20) & (
        (bkg[None, :] > cuts[:, None]).sum(1) >= 20
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        fom = np.where(ok, 100 * eps_s / np.sqrt(1000 * eps_b), 0)
    assert m["fom_max"] == pytest.approx(fom.max())
    assert m["fom_cut"] == pytest.approx(cuts[np.argmax(fom)])
    # the signal-only region starts at 0.5: the best cut sits there or above
    assert m["fom_cut"] >= 0.49
    z = metrics.asimov_significance(100 * eps_s, 1000 * eps_b)
    assert m["significance"] == pytest.approx(np.where(ok, z, 0).max())
    h = m["curves"]["histograms"]
    assert len(h["edges"]) == 51 and sum(h["signal"][:24]) == 0


def test_cuts_with_too_few_events_are_ignored():
    y = np.r_[np.ones(100), np.zeros(100)]
    scores = np.r_[np.full(100, 0.99), np.linspace(0, 0.98, 100)]
    scores[100] = 0.995  # one background event above all the signal
    m = metrics.physics_metrics(y, scores)
    assert m["fom_cut"] < 0.99  # the cut keeping 1 background event is not "optimal"


def test_binary_cross_entropy():
    y = np.array([1.0, 0.0])
    assert metrics.binary_cross_entropy(y, np.array([0.9, 0.2])) == pytest.approx(
        -(math.log(0.9) + math.log(0.8)) / 2
    )
    # a certain, wrong answer is finite: probabilities are clipped
    assert math.isfinite(metrics.binary_cross_entropy(y, np.array([0.0, 1.0])))
