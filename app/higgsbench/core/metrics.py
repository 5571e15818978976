"""Physics metrics, computed in one place from test-set scores, for every engine.

As in the thesis: ROC curve and AUC; binary accuracy at a cut of 0.5; the figure of merit
FOM = S/√B maximised over the cut on the network output; the discovery significance after
reweighting the test set to 100 signal and 1000 background events; signal and background
histograms of the network output.

S and B are the expected signal and background counts passing a cut, S = 100·ε_S and
B = 1000·ε_B, with ε the fraction of test events of each class above the cut. Cuts leaving
fewer than ``MIN_EVENTS`` test events of either class are not considered: their efficiencies
are statistical noise, and S/√B would run away as B → 0.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

EXPECTED_SIGNAL = 100.0
EXPECTED_BACKGROUND = 1000.0
MIN_EVENTS = 20
HISTOGRAM_BINS = 50
CURVE_POINTS = 200


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        return float("nan")
    return float(roc_auc_score(labels, scores))


def binary_cross_entropy(labels: np.ndarray, scores: np.ndarray, eps: float = 1e-7) -> float:
    """Mean BCE of probabilities ``scores`` (clipped to [eps, 1 − eps]) against 0/1 labels."""
    p = np.clip(np.asarray(scores, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def accuracy(labels: np.ndarray, scores: np.ndarray, cut: float = 0.5) -> float:
    return float(np.mean((np.asarray(scores) > cut) == (np.asarray(labels) > 0.5)))


def asimov_significance(s: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Median discovery significance for s signal on b background events (Cowan et al. 2011):
    Z = √(2((s + b) ln(1 + s/b) − s))."""
    s, b = np.asarray(s, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.sqrt(2.0 * ((s + b) * np.log1p(s / b) - s))
    return np.nan_to_num(z)


def cut_scan(labels: np.ndarray, scores: np.ndarray, steps: int = 1001) -> dict:
    """Expected S, B, FOM and significance for cuts on the output from 0 to 1."""
    labels = np.asarray(labels) > 0.5
    scores = np.asarray(scores, dtype=float)
    cuts = np.linspace(0.0, 1.0, steps)
    sig_sorted = np.sort(scores[labels])
    bkg_sorted = np.sort(scores[~labels])
    n_sig_pass = len(sig_sorted) - np.searchsorted(sig_sorted, cuts, side="right")
    n_bkg_pass = len(bkg_sorted) - np.searchsorted(bkg_sorted, cuts, side="right")
    s = EXPECTED_SIGNAL * n_sig_pass / max(len(sig_sorted), 1)
    b = EXPECTED_BACKGROUND * n_bkg_pass / max(len(bkg_sorted), 1)
    valid = (n_sig_pass >= MIN_EVENTS) & (n_bkg_pass >= MIN_EVENTS)
    with np.errstate(divide="ignore", invalid="ignore"):
        fom = np.where(valid, s / np.sqrt(b), 0.0)
    z = np.where(valid, asimov_significance(s, b), 0.0)
    return {"cut": cuts, "s": s, "b": b, "fom": fom, "significance": z, "valid": valid}


def physics_metrics(labels: np.ndarray, scores: np.ndarray) -> dict:
    """Every test metric of the result contract, plus curves and histograms for the report."""
    labels = np.asarray(labels, dtype=float)
    scores = np.asarray(scores, dtype=float)
    scan = cut_scan(labels, scores)
    if scan["valid"].any():
        best = int(np.argmax(scan["fom"]))
        fom_max, fom_cut = float(scan["fom"][best]), float(scan["cut"][best])
        z_best = int(np.argmax(scan["significance"]))
        significance = float(scan["significance"][z_best])
        significance_cut = float(scan["cut"][z_best])
    else:
        fom_max = fom_cut = significance = significance_cut = float("nan")
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    hist_sig = _density(scores[labels > 0.5], edges)
    hist_bkg = _density(scores[labels <= 0.5], edges)
    # a test set of one class has no ROC curve (nor AUC, FOM or significance: NaN above)
    both = 0 < int((labels > 0.5).sum()) < len(labels)
    fpr, tpr = roc_curve(labels, scores)[:2] if both else (np.array([]), np.array([]))
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(CURVE_POINTS, len(fpr))).astype(int))
    thin = max(1, len(scan["cut"]) // CURVE_POINTS)
    return {
        "test_auc": auc(labels, scores),
        "test_accuracy": accuracy(labels, scores),
        "fom_max": fom_max,
        "fom_cut": fom_cut,
        "significance": significance,
        "significance_cut": significance_cut,
        "expected_events": {"signal": EXPECTED_SIGNAL, "background": EXPECTED_BACKGROUND},
        "curves": {
            "roc": {"fpr": _rounded(fpr[keep]), "tpr": _rounded(tpr[keep])},
            "fom": {
                "cut": _rounded(scan["cut"][::thin]),
                "fom": _rounded(scan["fom"][::thin]),
                "significance": _rounded(scan["significance"][::thin]),
            },
            "histograms": {
                "edges": _rounded(edges),
                "signal": _rounded(hist_sig),
                "background": _rounded(hist_bkg),
                # the counts behind the normalised histograms: their statistical errors
                "signal_events": int((labels > 0.5).sum()),
                "background_events": int((labels <= 0.5).sum()),
            },
        },
    }


def _density(scores: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Histogram of ``scores`` normalised to unit area; all zeros when there are none."""
    if len(scores) == 0:
        return np.zeros(len(edges) - 1)
    return np.histogram(scores, bins=edges, density=True)[0]


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) if math.isfinite(v) else None for v in values]
