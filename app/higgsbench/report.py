"""`higgsbench report RUN_DIR…`: plots and report.md from result.json files alone.

Plots: loss and validation AUC per epoch, ROC curves, signal and background output
histograms, FOM and significance against the cut. With several runs, curves are overlaid
and labelled by engine, optimizer and device.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from higgsbench.atomic import write_text_atomic
from higgsbench.errors import HiggsbenchError
from higgsbench.plotting import GENERATED_STAMP, new_figure, save
from higgsbench.results import NUMBER, NUMBER_OR_NULL, RESULT_SHAPE, read_record

# What the plots and the table read beyond the results contract.
REPORT_SHAPE = {
    **RESULT_SHAPE,
    "epoch_seconds_median": NUMBER,
    "gflops": NUMBER,
    "curves": {
        "roc": {"fpr": [NUMBER_OR_NULL], "tpr": [NUMBER_OR_NULL]},
        "histograms": {
            "edges": [NUMBER_OR_NULL],
            "signal": [NUMBER_OR_NULL],
            "background": [NUMBER_OR_NULL],
        },
        "fom": {
            "cut": [NUMBER_OR_NULL],
            "fom": [NUMBER_OR_NULL],
            "significance": [NUMBER_OR_NULL],
        },
    },
}


def load_result(run: Path) -> dict:
    path = run / "result.json" if run.is_dir() else run
    if not path.exists():
        raise HiggsbenchError(f"{path}: no result.json (run `higgsbench train --out {run}` first)")
    return read_record(path, REPORT_SHAPE, "the result.json of a `higgsbench train` run")


def label(result: dict) -> str:
    nodes = f" ×{result['nodes']}" if result.get("nodes", 1) > 1 else ""
    return (
        f"{result['engine']}{nodes} {result['optimizer']} {result['features']} ({result['device']})"
    )


def write_report(runs: list[Path], out: Path | None = None) -> Path:
    if not runs:
        raise HiggsbenchError("name at least one run directory")
    results = [load_result(Path(r)) for r in runs]
    out = Path(out) if out else (Path(runs[0]) if Path(runs[0]).is_dir() else Path("report"))
    generated = any(r.get("generated_data") for r in results)
    plots = {
        "history": _plot_history(results, out / "history.png", generated),
        "roc": _plot_roc(results, out / "roc.png", generated),
        "outputs": _plot_outputs(results, out / "outputs.png", generated),
        "fom": _plot_fom(results, out / "fom.png", generated),
    }
    text = _markdown(results, plots, out, generated)
    path = out / "report.md"
    return write_text_atomic(path, text)


def _plot_history(results, path, generated):
    fig, (ax_loss, ax_auc) = new_figure(10, 4, ncols=2)
    for r in results:
        epochs = [h["epoch"] for h in r["history"]]
        (line,) = ax_loss.plot(
            epochs, [h["train_loss"] for h in r["history"]], "-o", ms=3, label=f"{label(r)} train"
        )
        ax_loss.plot(
            epochs,
            [h["val_loss"] for h in r["history"]],
            "--",
            color=line.get_color(),
            label="validation",
        )
        ax_auc.plot(epochs, [h["val_auc"] for h in r["history"]], "-o", ms=3, label=label(r))
    ax_loss.set(xlabel="epoch", ylabel="binary cross-entropy", title="loss")
    ax_auc.set(xlabel="epoch", ylabel="validation AUC", title="validation AUC")
    ax_loss.legend(fontsize=7)
    ax_auc.legend(fontsize=7)
    return save(fig, path, generated)


def _plot_roc(results, path, generated):
    fig, ax = new_figure()
    for r in results:
        roc = r["curves"]["roc"]
        ax.plot(roc["fpr"], roc["tpr"], label=f"{label(r)}: AUC {r['test_auc']:.4f}")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="random")
    ax.set(
        xlabel="background efficiency (false positive rate)",
        ylabel="signal efficiency (true positive rate)",
        title="ROC, test set",
    )
    ax.legend(fontsize=7, loc="lower right")
    return save(fig, path, generated)


def _plot_outputs(results, path, generated):
    fig, ax = new_figure()
    for r in results:
        h = r["curves"]["histograms"]
        centres = [(a + b) / 2 for a, b in zip(h["edges"][:-1], h["edges"][1:], strict=True)]
        width = h["edges"][1] - h["edges"][0]
        tag = f" {label(r)}" if len(results) > 1 else ""
        ax.bar(centres, h["background"], width=width, alpha=0.45, label=f"background{tag}")
        ax.bar(centres, h["signal"], width=width, alpha=0.45, label=f"signal{tag}")
    ax.set(xlabel="network output", ylabel="normalised events", title="output, test set")
    ax.legend(fontsize=7)
    return save(fig, path, generated)


def _plot_fom(results, path, generated):
    fig, ax = new_figure()
    ax2 = ax.twinx()
    for r in results:
        f = r["curves"]["fom"]
        (line,) = ax.plot(f["cut"], f["fom"], label=f"S/√B {label(r)}")
        ax2.plot(
            f["cut"],
            f["significance"],
            "--",
            color=line.get_color(),
            label=f"significance {label(r)}",
        )
        if not math.isnan(r["fom_cut"]):
            ax.axvline(r["fom_cut"], color=line.get_color(), ls=":", lw=1)
    exp = results[0].get("expected_events", {"signal": 100, "background": 1000})
    ax.set(
        xlabel="cut on network output",
        ylabel="FOM = S/√B",
        title=f"test set reweighted to {exp['signal']:g} S + {exp['background']:g} B",
    )
    ax2.set_ylabel("discovery significance Z (dashed)")
    ax.legend(fontsize=7, loc="upper left")
    return save(fig, path, generated)


def _markdown(results, plots, out: Path, generated: bool) -> str:
    lines = ["# higgsbench report", ""]
    if generated:
        lines += [
            f"**{GENERATED_STAMP}.** Figures below describe the toy generator, "
            "not the physics of the real data set.",
            "",
        ]
    lines += [
        "| run | data | epochs | epoch s (median) | events/s | GFLOP/s (% of GEMM peak) "
        "| test AUC | accuracy | FOM max @ cut | significance |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        peak = f" ({100 * r['fraction_of_peak']:.0f} %)" if r.get("fraction_of_peak") else ""
        data = "generated" if r.get("generated_data") else "HIGGS"
        lines.append(
            f"| {label(r)} | {data}, {r['train_rows']:,} train | {r['epochs']} "
            f"| {r['epoch_seconds_median']:.3f} | {r['events_per_second']:,.0f} "
            f"| {r['gflops']:.1f}{peak} | {r['test_auc']:.4f} | {r['test_accuracy']:.4f} "
            f"| {r['fom_max']:.2f} @ {r['fom_cut']:.3f} | {r['significance']:.2f} |"
        )
    lines += ["", "Machines:", ""]
    for r in results:
        m = r.get("machine", {})
        lines.append(
            f"- {label(r)}: {m.get('processor', '?')}, {m.get('cpu_count', '?')} CPUs"
            f"{', ' + m['gpu'] if m.get('gpu') else ''}; hosts {', '.join(r['hosts'])}; "
            f"git {r['git_sha'][:12]}"
        )
    lines += [""]
    for name, path in plots.items():
        lines += [f"![{name}]({os.path.relpath(path, out)})", ""]
    return "\n".join(lines)
