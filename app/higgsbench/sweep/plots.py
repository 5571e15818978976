"""Plots of a benchmark sweep (bench.json): what physicists want to see at a glance.

- epoch time against the number of nodes, one line per optimizer (the thesis' Figure 4.1),
  with single-process torch on the same machine as a dashed reference;
- time relative to one node and parallel efficiency (its Figure 4.2);
- engines and devices side by side: epoch time, events/s and test AUC per optimizer;
- the scaling model's prediction beside the measured points (--predict).

Error bars: a configuration run several times (``bench --repeat R``, R > 1) is drawn at the
median over its repeats, its bar the fastest to the slowest repeat (each repeat's median
epoch); one run once is drawn at its median epoch, its bar the spread of that run's own epochs
(the fastest to the slowest). Either is carried through to events/s, speed-up and efficiency;
the test AUC's bar is its statistical error (Hanley & McNeil 1982) from the size of the test
set. A single run whose result.json cannot be read gets a bar of zero length.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from matplotlib.ticker import NullLocator

from higgsbench.common.plotting import integer_ticks, new_figure, save
from higgsbench.data.layout import SIGNAL_FRACTION
from higgsbench.engines import CLUSTER_ENGINES
from higgsbench.records.bench import repeat_dirs


def write_plots(bench: dict, out: Path, runs_dir: Path | None = None) -> list[Path]:
    """The sweep's plots in ``out``; the runs' own result.json (for the error bars) are read
    from ``runs_dir`` (default ``out``)."""
    rows, generated = bench["rows"], bench["generated_data"]
    spread = {r["run_dir"]: _run_spread(r, runs_dir or out) for r in rows}
    what = _bar_meaning(rows)
    written = []
    cluster = [r for r in rows if r["engine"] in CLUSTER_ENGINES]
    if cluster:
        written += [
            save(_scaling(rows, spread, what), out / "epoch_time_vs_nodes.png", generated),
            save(_relative(cluster, "speedup", spread), out / "speedup.png", generated),
            save(_relative(cluster, "efficiency", spread), out / "efficiency.png", generated),
        ]
    if rows:
        written.append(save(_comparison(rows, spread, what), out / "engines.png", generated))
    if bench.get("prediction"):
        figure = _prediction(bench["prediction"], rows, spread, what)
        written.append(save(figure, out / "prediction.png", generated))
    return written


def _bar_meaning(rows: list[dict]) -> str:
    """What the bars of the time plots span: repeats where any row has several."""
    if any(len(repeat_dirs(r)) > 1 for r in rows):
        return "fastest to slowest repeat"
    return "fastest to slowest epoch"


def _run_spread(row: dict, runs_dir: Path) -> dict:
    """The span of a row's epoch time around its median (row["epoch_seconds"]): over its
    repeats' median epochs where it has several, else the fastest and slowest epoch of its one
    run; and the test-set size, from the (first) run's result.json. No spread, and no test
    size, where that cannot be read."""
    median = row["epoch_seconds"]
    try:
        record = json.loads((runs_dir / row["run_dir"] / "result.json").read_text())
        epochs = [float(s) for s in record["epoch_seconds"] if s is not None]
        test_rows = int(record["test_rows"])
    except (OSError, ValueError, KeyError, TypeError):
        epochs, test_rows = [], 0
    repeats = row.get("repeats") or []
    if len(repeats) > 1:
        epochs = [float(r["epoch_seconds_median"]) for r in repeats]
    lo, hi = (min(epochs), max(epochs)) if epochs else (median, median)
    return {"lo": min(lo, median), "hi": max(hi, median), "test_rows": test_rows}


def _bar(value: float, lo: float, hi: float) -> list[float]:
    """An asymmetric error bar [below, above] of ``value``, never negative."""
    return [max(value - lo, 0.0), max(hi - value, 0.0)]


def _errors(bars: list[list[float]]) -> list[list[float]]:
    """Matplotlib's yerr layout (2 × N) from one [below, above] per point."""
    return [[b[0] for b in bars], [b[1] for b in bars]]


def auc_error(auc: float, test_rows: int) -> float:
    """Statistical error of an AUC measured on ``test_rows`` events (53 % signal), by
    Hanley and McNeil (Radiology 143, 1982); 0 where it is undefined."""
    n_sig = round(SIGNAL_FRACTION * test_rows)
    n_bkg = test_rows - n_sig
    if not (n_sig and n_bkg and 0 < auc < 1) or not math.isfinite(auc):
        return 0.0
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_sig - 1) * (q1 - auc * auc) + (n_bkg - 1) * (q2 - auc * auc)) / (
        n_sig * n_bkg
    )
    return math.sqrt(max(var, 0.0))


def _prediction(p, rows, spread, what):
    fig, ax = new_figure()
    nodes = [q["nodes"] for q in p["points"]]
    ax.plot(
        nodes,
        [q["epoch_seconds"] for q in p["points"]],
        "-o",
        ms=3,
        label=f"model, {p['bandwidth']} network",
    )
    measured_gbit = p["measured_network_bits_per_second"] / 1e9
    ax.plot(
        nodes,
        [q["epoch_seconds_at_measured_network"] for q in p["points"]],
        "--",
        label=f"model, the measured network ({measured_gbit:.1f} Gbit/s)",
    )
    bars = []
    for m in p["measured"]:
        run = next(
            (
                r
                for r in rows
                if (r["engine"], r["optimizer"], r["nodes"])
                == (p["engine"], p["optimizer"], m["nodes"])
            ),
            None,
        )
        s = spread[run["run_dir"]] if run else {"lo": m["epoch_seconds"], "hi": m["epoch_seconds"]}
        bars.append(_bar(m["epoch_seconds"], s["lo"], s["hi"]))
    ax.errorbar(
        [m["nodes"] for m in p["measured"]],
        [m["epoch_seconds"] for m in p["measured"]],
        yerr=_errors(bars),
        fmt="ks",
        capsize=3,
        label=f"measured (bars: {what})",
    )
    if p["communication_dominates_from"]:
        ax.axvline(
            p["communication_dominates_from"],
            color="tab:red",
            ls=":",
            label=f"communication > compute from {p['communication_dominates_from']} nodes",
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="nodes",
        ylabel="seconds per epoch",
        title=f"predicted epoch time, {p['engine']} {p['optimizer']}, "
        f"{p['model']['cores_per_node']} cores/node",
    )
    ax.legend(fontsize=7)
    return fig


def _series(rows, engine):
    by_opt: dict[str, list[dict]] = {}
    for r in rows:
        if r["engine"] == engine:
            by_opt.setdefault(r["optimizer"], []).append(r)
    return {k: sorted(v, key=lambda r: r["nodes"]) for k, v in by_opt.items()}


def _scaling(rows, spread, what):
    fig, ax = new_figure()
    for engine in CLUSTER_ENGINES:
        for opt, series in _series(rows, engine).items():
            seconds = [r["epoch_seconds"] for r in series]
            bars = [
                _bar(r["epoch_seconds"], spread[r["run_dir"]]["lo"], spread[r["run_dir"]]["hi"])
                for r in series
            ]
            container = ax.errorbar(
                [r["nodes"] for r in series],
                seconds,
                yerr=_errors(bars),
                fmt="-o",
                capsize=3,
                label=f"{engine} {opt}",
            )
            colour = container.lines[0].get_color()
            base = [r for r in rows if r["engine"] == "torch" and r["optimizer"] == opt]
            if base:
                ax.axhline(
                    base[0]["epoch_seconds"],
                    ls="--",
                    color=colour,
                    lw=1,
                    label=f"torch 1 process {opt} ({base[0]['cores_per_node']} threads)",
                )
                s = spread[base[0]["run_dir"]]
                ax.axhspan(s["lo"], s["hi"], color=colour, alpha=0.12, lw=0)
    ax.set(
        xlabel="worker nodes",
        ylabel="seconds per epoch",
        title=f"epoch time against nodes (bars: {what})",
    )
    ax.set_ylim(bottom=0)
    integer_ticks(ax.xaxis)
    ax.legend(fontsize=7)
    return fig


def _relative_bar(row, one, key, spread):
    """The [below, above] bar of a speed-up (one node's time / N nodes') or an efficiency
    (speed-up / N) from the epoch spreads of both runs."""
    if row["run_dir"] == one["run_dir"]:  # one node against itself: 1 by definition
        return [0.0, 0.0]
    s1, sn = spread[one["run_dir"]], spread[row["run_dir"]]
    lo, hi = s1["lo"] / sn["hi"], s1["hi"] / sn["lo"]
    if key == "efficiency":
        lo, hi = lo / row["nodes"], hi / row["nodes"]
    return _bar(row[key], lo, hi)


def _relative(rows, key, spread):
    fig, ax = new_figure()
    nodes = sorted({r["nodes"] for r in rows})
    for engine in CLUSTER_ENGINES:
        for opt, series in _series(rows, engine).items():
            pts = [r for r in series if key in r]
            one = next((r for r in series if r["nodes"] == 1), None)
            bars = [_relative_bar(r, one, key, spread) if one else [0.0, 0.0] for r in pts]
            ax.errorbar(
                [r["nodes"] for r in pts],
                [r[key] for r in pts],
                yerr=_errors(bars) if pts else None,
                fmt="-o",
                capsize=3,
                label=f"{engine} {opt}",
            )
    ideal = nodes if key == "speedup" else [1.0] * len(nodes)
    ax.plot(nodes, ideal, ":", color="grey", label="ideal")
    title = (
        "speed-up: one node's epoch time / N nodes' epoch time"
        if key == "speedup"
        else "parallel efficiency: speed-up / N"
    )
    ax.set(xlabel="worker nodes", ylabel=key, title=title)
    ax.set_ylim(bottom=0)
    integer_ticks(ax.xaxis)
    ax.legend(fontsize=7)
    return fig


def _comparison(rows, spread, what):
    fig, axes = new_figure(12, 4, ncols=3)
    labels = [
        f"{r['engine']}×{r['nodes']}\n{r['optimizer']}\n{r['device'].split(' (')[0]}" for r in rows
    ]
    for ax, key, title in zip(
        axes,
        ("epoch_seconds", "events_per_second", "test_auc"),
        ("seconds per epoch", "training events / s", "test AUC"),
        strict=True,
    ):
        bars = [_comparison_bar(r, key, spread[r["run_dir"]]) for r in rows]
        ax.bar(range(len(rows)), [r[key] for r in rows], color="tab:blue")
        ax.errorbar(
            range(len(rows)),
            [r[key] for r in rows],
            yerr=_errors(bars),
            fmt="none",
            ecolor="black",
            capsize=3,
        )
        ax.set_xticks(range(len(rows)), labels, fontsize=6)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_title(title)
        if key == "test_auc":
            lo = min(r[key] for r in rows)
            ax.set_ylim(max(0.0, lo - 0.05), 1.0)
    fig.supxlabel(
        f"bars: {what} of each configuration; AUC: statistical error of the test set",
        fontsize=7,
    )
    return fig


def _comparison_bar(row, key, s):
    """[below, above] of one bar of the engine comparison."""
    if key == "epoch_seconds":
        return _bar(row[key], s["lo"], s["hi"])
    if key == "events_per_second" and "events_per_second_min" in row:  # over the repeats
        return _bar(row[key], row["events_per_second_min"], row["events_per_second_max"])
    if key == "events_per_second":  # events per epoch / epoch time: the slowest epoch is lowest
        eps, median = row[key], row["epoch_seconds"]
        return _bar(eps, eps * median / s["hi"], eps * median / s["lo"]) if s["lo"] else [0, 0]
    err = auc_error(row[key], s["test_rows"])
    return [err, err]
