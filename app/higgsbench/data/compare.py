"""`data compare A B`: how alike two HIGGS datasets are, feature by feature and as a problem.

A and B are each a prepared dataset (a directory with stats.json, train/val/test Parquet) or a
UCI-format CSV (plain, gzip, or a zip holding one). Raw feature values are compared, never the
standardised ones, so a generated file written in the UCI file's units can be checked against
the real rows directly.

Three things are written to OUT:

- ``compare.png``: per-feature histograms, signal and background of A (solid) and B (dashed),
  normalised to unit area, on shared bins; stamped when either side is generated data;
- ``compare.json`` and ``compare.md``: the two-sample Kolmogorov–Smirnov statistic per feature
  over all events and within each class, and the boosted-trees AUC (scikit-learn's
  HistGradientBoostingClassifier, fixed seed) on the low-level, high-level and all features of
  each dataset, trained on the same number of rows and tested on the rest.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from higgsbench.common.atomic import write_text_atomic
from higgsbench.common.errors import UsageError
from higgsbench.common.paths import output_set
from higgsbench.data.layout import ALL_FEATURES, FEATURE_SETS, LABEL

SEED = 0
TRAIN_ROWS = 8_000  # as in the shared sample's README: 8,000 rows to train, the rest to test
MAX_ROWS = 200_000


@dataclass
class Events:
    """Raw (unstandardised) features and 0/1 labels of one side of the comparison."""

    name: str
    labels: np.ndarray
    features: np.ndarray
    generated: bool

    def __len__(self) -> int:
        return len(self.labels)


def load_events(path: str | os.PathLike, max_rows: int | None = MAX_ROWS) -> Events:
    """The first ``max_rows`` events of a prepared dataset (train, then val, then test) or a
    UCI-format CSV."""
    path = Path(path)
    if path.is_dir():
        return _load_prepared(path, max_rows)
    from higgsbench.data.csv_source import read_higgs_csv

    chunks = list(read_higgs_csv(path, max_rows=max_rows))
    return Events(
        str(path),
        np.concatenate([c.labels for c in chunks]),
        np.concatenate([c.features for c in chunks]),
        generated=False,
    )


def _load_prepared(path: Path, max_rows: int | None) -> Events:
    import pyarrow.parquet as pq

    from higgsbench.data.layout import SPLITS
    from higgsbench.data.prepared import PreparedDataset

    ds = PreparedDataset(path)  # names what is missing when it is not a prepared dataset
    labels, features, have = [], [], 0
    for split in SPLITS:
        if max_rows is not None and have >= max_rows:
            break
        table = pq.read_table(ds.path(split), columns=[LABEL, *ALL_FEATURES])
        if max_rows is not None:
            table = table.slice(0, max_rows - have)
        labels.append(table.column(LABEL).to_numpy().astype(np.float32))
        features.append(
            np.stack([table.column(c).to_numpy() for c in ALL_FEATURES], axis=1).astype(np.float32)
        )
        have += table.num_rows
    return Events(str(path), np.concatenate(labels), np.concatenate(features), ds.generated)


def ks_table(a: Events, b: Events) -> dict[str, dict[str, float]]:
    """Two-sample KS statistic per feature: over all events, signal only, background only."""
    from scipy.stats import ks_2samp

    table = {}
    for i, name in enumerate(ALL_FEATURES):
        row = {}
        for part, sel_a, sel_b in (
            ("all", slice(None), slice(None)),
            ("signal", a.labels == 1, b.labels == 1),
            ("background", a.labels == 0, b.labels == 0),
        ):
            xa, xb = a.features[sel_a, i], b.features[sel_b, i]
            row[part] = float(ks_2samp(xa, xb).statistic) if len(xa) and len(xb) else math.nan
        table[name] = row
    return table


def auc_table(events: Events, train_rows: int = TRAIN_ROWS, seed: int = SEED) -> dict:
    """Boosted-trees test AUC on low, high and all features: ``train_rows`` random rows to
    train (at most 80 % of the events), the rest to test; the same seed and split for every
    feature set."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    n = len(events)
    n_train = min(train_rows, int(0.8 * n))
    if n_train < 2 or n - n_train < 2:
        raise UsageError(f"{events.name}: {n} events are too few to train and test on")
    order = np.random.default_rng(seed).permutation(n)
    train, test = order[:n_train], order[n_train:]
    y = events.labels
    if len(np.unique(y[train])) < 2 or len(np.unique(y[test])) < 2:
        raise UsageError(f"{events.name}: needs both signal and background events")
    aucs = {}
    for feature_set, columns in FEATURE_SETS.items():
        index = [ALL_FEATURES.index(c) for c in columns]
        x = events.features[:, index]
        model = HistGradientBoostingClassifier(random_state=seed).fit(x[train], y[train])
        aucs[feature_set] = float(roc_auc_score(y[test], model.predict_proba(x[test])[:, 1]))
    return {"train_rows": int(n_train), "test_rows": int(n - n_train), "auc": aucs}


def compare(
    path_a: str | os.PathLike,
    path_b: str | os.PathLike,
    out: str | os.PathLike,
    max_rows: int | None = MAX_ROWS,
    train_rows: int = TRAIN_ROWS,
    plot: bool = True,
    force: bool = False,
) -> dict:
    """Compare A with B, write compare.json, compare.md and compare.png to ``out`` (all of
    them or none; ``out`` new, empty or the kit's, unless ``force``); return what
    compare.json holds."""
    with output_set(out, "--out", "compare", force) as tmp:
        result = _comparison(path_a, path_b, tmp, max_rows, train_rows, plot)
    return result


def _comparison(path_a, path_b, out: Path, max_rows, train_rows, plot: bool) -> dict:
    a, b = load_events(path_a, max_rows), load_events(path_b, max_rows)
    ks = ks_table(a, b)
    result = {
        "a": _describe(a),
        "b": _describe(b),
        "ks": ks,
        "ks_summary": {
            part: {
                "median": float(np.median([row[part] for row in ks.values()])),
                "max": float(max(row[part] for row in ks.values())),
                "worst": max(ks, key=lambda f: ks[f][part]),
            }
            for part in ("all", "signal", "background")
        },
        "boosted_trees": {
            "model": f"sklearn HistGradientBoostingClassifier (defaults, random_state={SEED})",
            "a": auc_table(a, train_rows),
            "b": auc_table(b, train_rows),
        },
    }
    write_text_atomic(out / "compare.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(out / "compare.md", markdown(result))
    if plot:
        plot_histograms(a, b, out / "compare.png")
    return result


def _describe(events: Events) -> dict:
    return {
        "path": events.name,
        "rows": len(events),
        "signal": int((events.labels == 1).sum()),
        "generated": events.generated,
    }


def _label(side: dict) -> str:
    return f"{side['path']}" + (" (GENERATED)" if side["generated"] else "")


def markdown(result: dict) -> str:
    a, b = result["a"], result["b"]
    lines = [
        "# Dataset comparison",
        "",
        f"- A: {_label(a)}, {a['rows']:,} events ({a['signal']:,} signal)",
        f"- B: {_label(b)}, {b['rows']:,} events ({b['signal']:,} signal)",
        "",
        "## Two-sample Kolmogorov–Smirnov statistic, A vs B",
        "",
        "| feature | all | signal | background |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, row in result["ks"].items():
        cells = " | ".join(f"{row[part]:.3f}" for part in ("all", "signal", "background"))
        lines.append(f"| {name} | {cells} |")
    s = result["ks_summary"]
    lines.append(
        f"| **median** | {s['all']['median']:.3f} | {s['signal']['median']:.3f} "
        f"| {s['background']['median']:.3f} |"
    )
    lines.append(
        f"| **max** | {s['all']['max']:.3f} ({s['all']['worst']}) "
        f"| {s['signal']['max']:.3f} ({s['signal']['worst']}) "
        f"| {s['background']['max']:.3f} ({s['background']['worst']}) |"
    )
    bt = result["boosted_trees"]
    lines += [
        "",
        f"## Boosted-trees test AUC ({bt['model']})",
        "",
        "| dataset | train / test rows | low | high | all |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for key in ("a", "b"):
        t = bt[key]
        lines.append(
            f"| {key.upper()} | {t['train_rows']:,} / {t['test_rows']:,} "
            f"| {t['auc']['low']:.3f} | {t['auc']['high']:.3f} | {t['auc']['all']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def plot_histograms(a: Events, b: Events, path: Path) -> Path:
    """One panel per feature: signal and background of A and B, normalised, shared bins over
    the central 99.8 % of both (a bin round each level for a feature of few values)."""
    from higgsbench.common import plotting

    ncols = 4
    nrows = math.ceil(len(ALL_FEATURES) / ncols)
    fig, axes = plotting.plt.subplots(
        nrows, ncols, figsize=(4.0 * ncols, 2.8 * nrows), constrained_layout=True
    )
    styles = (
        (a, 1.0, "tab:red", "-", "A signal"),
        (a, 0.0, "tab:blue", "-", "A background"),
        (b, 1.0, "tab:red", "--", "B signal"),
        (b, 0.0, "tab:blue", "--", "B background"),
    )
    for i, (name, ax) in enumerate(zip(ALL_FEATURES, axes.flat, strict=False)):
        both = np.concatenate([a.features[:, i], b.features[:, i]])
        levels = np.unique(both)
        if len(levels) <= 8:  # b-tags: a bin round each level
            mids = (levels[1:] + levels[:-1]) / 2
            edges = np.concatenate([[levels[0] - 0.5], mids, [levels[-1] + 0.5]])
        else:
            lo, hi = np.percentile(both, [0.1, 99.9])  # the far tails left out
            edges = np.linspace(lo, hi if hi > lo else lo + 1, 41)
        for events, label, colour, line, text in styles:
            values = events.features[events.labels == label, i]
            if len(values):
                ax.hist(
                    values,
                    bins=edges,
                    density=True,
                    histtype="step",
                    color=colour,
                    linestyle=line,
                    label=text,
                )
        ax.set_xlabel(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(ALL_FEATURES) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"A: {a.name}   B: {b.name}", fontsize=9)
    return plotting.save(fig, path, generated=a.generated or b.generated)
