"""Metrics against values worked out by hand."""

import math

import numpy as np
import pytest

from higgsbench.core import metrics


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


# A constructed test set whose metrics follow from counting, scores placed between the scan's
# 0.001 grid points so no cut lands on a score:
#   signal (100):     80 at 0.8055, 20 at 0.9555
#   background (100): 60 at 0.2055, 20 at 0.6055, 20 at 0.9055
# Cut c (an event passes when its score > c), S = 100 ε_s, B = 1000 ε_b:
#   c < 0.2055            S = 100, B = 1000   FOM = 100/√1000 = 3.162
#   0.2055 ≤ c < 0.6055   S = 100, B = 400    FOM = 100/√400  = 5
#   0.6055 ≤ c < 0.8055   S = 100, B = 200    FOM = 100/√200  = 7.071   ← the maximum
#   0.8055 ≤ c < 0.9055   S = 20,  B = 200    FOM = 20/√200   = 1.414
#   0.9055 ≤ c < 0.9555   S = 20,  B = 0      no background event left: not a valid cut
#                                             (S/√B would be infinite)
# Accuracy at 0.5: all 100 signal and the 60 background events at 0.2055 are right: 160/200.
# AUC = P(signal score > background score): 80 signal events beat 80 background events, the 20
# at 0.9555 beat all 100: (80·80 + 20·100) / (100·100) = 0.84.
CONSTRUCTED_SIGNAL = [0.8055] * 80 + [0.9555] * 20
CONSTRUCTED_BACKGROUND = [0.2055] * 60 + [0.6055] * 20 + [0.9055] * 20


def _constructed():
    labels = np.r_[np.ones(100), np.zeros(100)]
    return labels, np.array(CONSTRUCTED_SIGNAL + CONSTRUCTED_BACKGROUND)


def test_constructed_example_has_the_fom_cut_and_value_worked_out_by_hand():
    labels, scores = _constructed()
    m = metrics.physics_metrics(labels, scores)
    assert m["fom_max"] == pytest.approx(7.0710678, rel=1e-6)  # 100 / √200
    # every cut on the plateau [0.6055, 0.8055) reaches it; nothing outside does
    assert 0.6055 <= m["fom_cut"] < 0.8055
    # the significance peaks on the same plateau: s = 100, b = 200 in
    # Z = √(2((s + b) ln(1 + s/b) − s)) = √(2(300 ln 1.5 − 100)) = 6.5787
    assert m["significance"] == pytest.approx(math.sqrt(2 * (300 * math.log(1.5) - 100)))
    assert m["significance"] == pytest.approx(6.57868, abs=1e-5)
    assert 0.6055 <= m["significance_cut"] < 0.8055
    assert m["test_accuracy"] == 0.8
    assert m["test_auc"] == pytest.approx(0.84)


def test_constructed_example_scan_plateaus_and_the_empty_background_cut():
    labels, scores = _constructed()
    scan = metrics.cut_scan(labels, scores)
    at = {c: i for i, c in enumerate(np.round(scan["cut"], 3))}
    expected = {0.1: 100 / math.sqrt(1000), 0.4: 5.0, 0.7: 100 / math.sqrt(200)}
    expected[0.85] = 20 / math.sqrt(200)
    for cut, fom in expected.items():
        assert scan["fom"][at[cut]] == pytest.approx(fom), cut
    # above every background event S/√B is infinite: such cuts must not count
    assert not scan["valid"][at[0.93]] and scan["fom"][at[0.93]] == 0


@pytest.mark.filterwarnings("error")  # nothing to warn about either: the case is handled
@pytest.mark.parametrize("label", [0, 1])
def test_a_one_class_test_set_gives_undefined_metrics_as_nan_not_an_error(label):
    """Decided behaviour: a test set of one class (a tiny or broken split) still yields a
    record. What needs both classes (AUC, FOM, significance and their cuts, the ROC curve) is
    NaN or empty, never a number that looks measured; accuracy, which needs one class only,
    is the fraction right; the missing class's histogram is empty (zeros), so plots of it can
    be drawn. A run is not thrown away at its very end for a metric that cannot be defined
    (test_report checks that such a run can be reported)."""
    scores = np.array([0.1, 0.3, 0.6, 0.7, 0.9] * 20)
    labels = np.full(100, label)
    m = metrics.physics_metrics(labels, scores)
    for key in ("test_auc", "fom_max", "fom_cut", "significance", "significance_cut"):
        assert math.isnan(m[key]), key
    # 3 in 5 scores are above 0.5: right for signal, wrong for background
    assert m["test_accuracy"] == pytest.approx(0.6 if label == 1 else 0.4)
    assert m["curves"]["roc"] == {"fpr": [], "tpr": []}
    hist = m["curves"]["histograms"]
    present, missing = ("signal", "background") if label == 1 else ("background", "signal")
    assert hist[missing] == [0.0] * 50
    # the present class: density over 50 bins of width 0.02, 20 events in each of 5 bins
    assert hist[present][5] == pytest.approx(0.2 / 0.02)  # 0.1 falls in [0.10, 0.12)
    assert sum(hist[present]) * 0.02 == pytest.approx(1.0)


# A test set on which S/√B and the significance peak at different cuts (the significance
# grows more slowly than S/√B once S is not small beside B). Scores between the scan's grid:
#   signal (100):       70 at 0.5055, 30 at 0.9555
#   background (2000):  1700 at 0.2055, 280 at 0.5055, 20 at 0.9555
#   0.2055 ≤ c < 0.5055   S = 100, B = 1000·300/2000 = 150   FOM 8.165  Z 7.443  ← Z's maximum
#   0.5055 ≤ c < 0.9555   S = 30,  B = 1000·20/2000 = 10     FOM 9.487  Z 7.134  ← FOM's maximum
SPLIT_SIGNAL = [0.5055] * 70 + [0.9555] * 30
SPLIT_BACKGROUND = [0.2055] * 1700 + [0.5055] * 280 + [0.9555] * 20


def _asimov_by_hand(s: float, b: float) -> float:
    return math.sqrt(2 * ((s + b) * math.log(1 + s / b) - s))


def _scan_by_hand(signal: np.ndarray, background: np.ndarray) -> tuple:
    """The cut scan of the module's docstring, with NumPy: cuts 0, 0.001, …, 1, each cut
    keeping ≥ 20 events of either class."""
    cuts = np.linspace(0, 1, 1001)
    n_s = (signal[None, :] > cuts[:, None]).sum(1)
    n_b = (background[None, :] > cuts[:, None]).sum(1)
    s, b = 100 * n_s / len(signal), 1000 * n_b / len(background)
    ok = (n_s >= 20) & (n_b >= 20)
    with np.errstate(divide="ignore", invalid="ignore"):
        fom = np.where(ok, s / np.sqrt(b), 0)
        z = np.where(ok, np.sqrt(2 * ((s + b) * np.log1p(s / b) - s)), 0)
    return cuts, fom, z


def test_the_significance_is_read_at_its_own_maximum_not_at_the_foms():
    signal, background = np.array(SPLIT_SIGNAL), np.array(SPLIT_BACKGROUND)
    labels = np.r_[np.ones(len(signal)), np.zeros(len(background))]
    m = metrics.physics_metrics(labels, np.r_[signal, background])
    cuts, fom, z = _scan_by_hand(signal, background)
    assert m["fom_max"] == pytest.approx(fom.max())
    assert m["fom_max"] == pytest.approx(30 / math.sqrt(10))
    assert m["fom_cut"] == pytest.approx(cuts[np.argmax(fom)])
    assert 0.5055 <= m["fom_cut"] < 0.9555
    assert m["significance"] == pytest.approx(z.max())
    assert m["significance"] == pytest.approx(_asimov_by_hand(100, 150))
    assert m["significance_cut"] == pytest.approx(cuts[np.argmax(z)])
    assert 0.2055 <= m["significance_cut"] < 0.5055
    # the significance at the FOM's cut is lower: reading it there would be wrong
    at_fom_cut = z[np.argmax(fom)]
    assert at_fom_cut == pytest.approx(_asimov_by_hand(30, 10))
    assert at_fom_cut < m["significance"] - 0.3


def test_the_reports_curves_are_the_scan_at_every_fifth_cut_and_the_class_counts():
    rng = np.random.default_rng(7)
    labels = np.r_[np.ones(300), np.zeros(700)]
    scores = np.r_[rng.beta(5, 2, 300), rng.beta(2, 5, 700)]
    m = metrics.physics_metrics(labels, scores)
    scan = metrics.cut_scan(labels, scores)
    assert set(m) == {
        "test_auc", "test_accuracy", "fom_max", "fom_cut", "significance",
        "significance_cut", "expected_events", "curves",
    }  # fmt: skip
    assert m["expected_events"] == {"signal": 100.0, "background": 1000.0}
    assert set(m["curves"]) == {"roc", "fom", "histograms"}
    fom = m["curves"]["fom"]
    assert set(fom) == {"cut", "fom", "significance"}
    # the scan's 1001 cuts thinned to CURVE_POINTS + 1: every fifth, 0 to 1 by 0.005
    assert fom["cut"] == [round(i / 200, 6) for i in range(201)]
    assert fom["fom"] == pytest.approx(scan["fom"][::5], abs=1e-6)
    assert fom["significance"] == pytest.approx(scan["significance"][::5], abs=1e-6)
    histograms = m["curves"]["histograms"]
    assert set(histograms) == {"edges", "signal", "background", "signal_events",
                               "background_events"}  # fmt: skip
    assert (histograms["signal_events"], histograms["background_events"]) == (300, 700)


def test_one_signal_event_among_background_still_has_a_roc_curve():
    labels = np.r_[1.0, np.zeros(50)]
    scores = np.r_[0.9, np.linspace(0.0, 0.8, 50)]  # the signal event above every other
    m = metrics.physics_metrics(labels, scores)
    roc = m["curves"]["roc"]
    assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0 and roc["fpr"][-1] == 1.0
    assert m["test_auc"] == 1.0
    assert m["curves"]["histograms"]["signal_events"] == 1


def test_an_event_on_the_cut_does_not_pass_it_and_one_event_is_the_whole_class():
    # 30 signal events at 0.6, 30 background events exactly on the cut 0.5, one more at 0.9
    labels = np.r_[np.ones(30), np.zeros(31)]
    scores = np.r_[np.full(30, 0.6), np.full(30, 0.5), 0.9]
    scan = metrics.cut_scan(labels, scores)
    assert set(scan) == {"cut", "s", "b", "fom", "significance", "valid"}
    at = int(np.flatnonzero(scan["cut"] == 0.5)[0])
    assert (scan["s"][at], scan["b"][at]) == (100.0, 1000.0 / 31)  # only the one at 0.9 passes
    assert not scan["valid"][at] and scan["significance"][at] == 0.0  # 1 < MIN_EVENTS
    assert (scan["significance"][~scan["valid"]] == 0.0).all()
    lone = metrics.cut_scan(np.r_[1.0, np.zeros(5)], np.r_[0.7, np.full(5, 0.2)])
    assert lone["s"][0] == 100.0 and lone["s"][-1] == 0.0  # the one signal event is all of it
    lone_bkg = metrics.cut_scan(np.r_[np.ones(5), 0.0], np.r_[np.full(5, 0.7), 0.2])
    assert lone_bkg["b"][0] == 1000.0
    assert metrics.accuracy(np.array([0, 1]), np.array([0.5, 0.51])) == 1.0  # 0.5 is background


def test_curve_values_are_rounded_to_six_places_and_non_finite_ones_are_none():
    assert metrics._rounded(np.array([np.nan, 1.23456789, np.inf])) == [None, 1.234568, None]
