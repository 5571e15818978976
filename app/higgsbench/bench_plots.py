"""Plots of a benchmark sweep (bench.json): what physicists want to see at a glance.

- epoch time against the number of nodes, one line per optimizer (the thesis' Figure 4.1),
  with single-process torch on the same machine as a dashed reference;
- time relative to one node and parallel efficiency (its Figure 4.2);
- engines and devices side by side: epoch time, events/s and test AUC per optimizer.
"""

from __future__ import annotations

from pathlib import Path

from higgsbench.bench import CLUSTER_ENGINES
from higgsbench.plotting import new_figure, save


def write_plots(bench: dict, out: Path) -> list[Path]:
    rows, generated = bench["rows"], bench["generated_data"]
    written = []
    cluster = [r for r in rows if r["engine"] in CLUSTER_ENGINES]
    if cluster:
        written += [
            _scaling(rows, out / "epoch_time_vs_nodes.png", generated),
            _relative(cluster, "speedup", out / "speedup.png", generated),
            _relative(cluster, "efficiency", out / "efficiency.png", generated),
        ]
    if rows:
        written.append(_comparison(rows, out / "engines.png", generated))
    if bench.get("prediction"):
        written.append(_prediction(bench["prediction"], out / "prediction.png", generated))
    return written


def _prediction(p, path, generated):
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
    ax.plot(
        [m["nodes"] for m in p["measured"]],
        [m["epoch_seconds"] for m in p["measured"]],
        "ks",
        label="measured",
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
    return save(fig, path, generated)


def _series(rows, engine):
    by_opt: dict[str, list[dict]] = {}
    for r in rows:
        if r["engine"] == engine:
            by_opt.setdefault(r["optimizer"], []).append(r)
    return {k: sorted(v, key=lambda r: r["nodes"]) for k, v in by_opt.items()}


def _scaling(rows, path, generated):
    fig, ax = new_figure()
    for engine in CLUSTER_ENGINES:
        for opt, series in _series(rows, engine).items():
            (line,) = ax.plot(
                [r["nodes"] for r in series],
                [r["epoch_seconds"] for r in series],
                "-o",
                label=f"{engine} {opt}",
            )
            base = [r for r in rows if r["engine"] == "torch" and r["optimizer"] == opt]
            if base:
                ax.axhline(
                    base[0]["epoch_seconds"],
                    ls="--",
                    color=line.get_color(),
                    lw=1,
                    label=f"torch 1 process {opt} ({base[0]['cores_per_node']} threads)",
                )
    ax.set(xlabel="worker nodes", ylabel="seconds per epoch", title="epoch time against nodes")
    ax.set_ylim(bottom=0)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7)
    return save(fig, path, generated)


def _relative(rows, key, path, generated):
    fig, ax = new_figure()
    nodes = sorted({r["nodes"] for r in rows})
    for engine in CLUSTER_ENGINES:
        for opt, series in _series(rows, engine).items():
            pts = [r for r in series if key in r]
            ax.plot([r["nodes"] for r in pts], [r[key] for r in pts], "-o", label=f"{engine} {opt}")
    ideal = nodes if key == "speedup" else [1.0] * len(nodes)
    ax.plot(nodes, ideal, ":", color="grey", label="ideal")
    title = (
        "speed-up: one node's epoch time / N nodes' epoch time"
        if key == "speedup"
        else "parallel efficiency: speed-up / N"
    )
    ax.set(xlabel="worker nodes", ylabel=key, title=title)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    return save(fig, path, generated)


def _comparison(rows, path, generated):
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
        ax.bar(range(len(rows)), [r[key] for r in rows], color="tab:blue")
        ax.set_xticks(range(len(rows)), labels, fontsize=6)
        ax.set_title(title)
        if key == "test_auc":
            lo = min(r[key] for r in rows)
            ax.set_ylim(max(0.0, lo - 0.05), 1.0)
    return save(fig, path, generated)
