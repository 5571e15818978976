"""`higgsbench report RUN_DIR…`: plots and report.md from result.json files alone.

Plots, in the HEP style of mplhep: loss and validation AUC per epoch (integer epoch ticks),
the ROC beside background rejection 1/ε_B (log scale) against signal efficiency, signal and
background output as normalised step histograms with statistical error bars, FOM and
significance against the cut. With several runs, curves are overlaid and each label names
engine, optimizer, features and device and every setting that differs between the runs.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from higgsbench.common.errors import UsageError
from higgsbench.common.paths import output_set
from higgsbench.common.plotting import (
    GENERATED_STAMP,
    integer_ticks,
    new_figure,
    rejection,
    save,
    step_histogram,
)
from higgsbench.common.shapes import (
    FINITE,
    NON_NEGATIVE,
    NUMBER,
    NUMBER_OR_NULL,
    Items,
    Maybe,
    OrNull,
    Related,
    entries,
    read_record,
    same_lengths,
)
from higgsbench.data.layout import SIGNAL_FRACTION
from higgsbench.records.result import RESULT_SHAPE


def _bins_problem(h: dict, name: str) -> str | None:
    """A histogram's edges rise, and it has one value per bin between them."""
    edges = h["edges"]
    for i in range(1, len(edges)):
        if edges[i] <= edges[i - 1]:
            return f"{name}.edges[{i}] is {edges[i]!r}, not above the edge before it"
    for key in ("signal", "background"):
        if len(h[key]) != len(edges) - 1:
            return (
                f"{name}.{key} has {entries(len(h[key]))}, expected {len(edges) - 1}: "
                f"one per bin of {name}.edges ({len(edges)} edges)"
            )
    return None


# What the plots and the table read beyond the results contract.
REPORT_SHAPE = {
    **RESULT_SHAPE,
    "epoch_seconds_median": NUMBER,
    "gflops": NUMBER,
    "fraction_of_peak": Maybe(OrNull(NUMBER)),
    "machine": Maybe(dict),
    "config": Maybe(dict),
    "expected_events": Maybe({"signal": FINITE, "background": FINITE}),
    "curves": {
        "roc": Related(
            {"fpr": [NUMBER_OR_NULL], "tpr": [NUMBER_OR_NULL]}, same_lengths("fpr", "tpr")
        ),
        "histograms": Related(
            {
                "edges": Items(FINITE, least=2),
                "signal": [NUMBER_OR_NULL],
                "background": [NUMBER_OR_NULL],
                "signal_events": Maybe(NON_NEGATIVE),
                "background_events": Maybe(NON_NEGATIVE),
            },
            _bins_problem,
        ),
        "fom": Related(
            {
                "cut": [NUMBER_OR_NULL],
                "fom": [NUMBER_OR_NULL],
                "significance": [NUMBER_OR_NULL],
            },
            same_lengths("cut", "fom", "significance"),
        ),
    },
}


def load_result(run: Path) -> dict:
    path = run / "result.json" if run.is_dir() else run
    if not path.exists():
        raise UsageError(f"{path}: no result.json (run `higgsbench train --out {run}` first)")
    return read_record(path, REPORT_SHAPE, "the result.json of a `higgsbench train` run")


def label(result: dict) -> str:
    """What a run is: engine (× nodes), optimizer, features, device."""
    nodes = f" ×{result['nodes']}" if result.get("nodes", 1) > 1 else ""
    return (
        f"{result['engine']}{nodes} {result['optimizer']} {result['features']} ({result['device']})"
    )


def _setting(result: dict, key: str):
    """A run setting: the result's own record of it, else its config.json entry."""
    if key in result:
        return result[key]
    return result.get("config", {}).get(key)


# Settings beyond label()'s that a legend names when they differ between overlaid runs, in
# this order, each with how it is said. Other config.json entries that differ are named as
# key=value, except those that say where or how a run was kept rather than what it measured.
_SETTINGS = (
    ("precision", str),
    ("batch_size", lambda v: f"batch {v}"),
    ("learning_rate", lambda v: f"lr {v:g}" if isinstance(v, int | float) else f"lr {v}"),
    ("layers", lambda v: f"{v} layers"),
    ("width", lambda v: f"width {v}"),
    ("seed", lambda v: f"seed {v}"),
    ("epochs", lambda v: f"{v} epochs"),
    ("train_rows", lambda v: f"{v:,} train events" if isinstance(v, int) else f"{v} train"),
    ("cores_per_node", lambda v: f"{v} core{'s' if v != 1 else ''}/node"),
    ("threads", lambda v: f"{v} thread{'s' if v != 1 else ''}"),
)
_NOT_A_DIFFERENCE = {
    "out",
    "data",
    "progress",
    "resume",
    "worker_timeout",
    "master",
    "track",
    # said by label() or _SETTINGS under their result.json names
    "engine",
    "optimizer",
    "features",
    "device",
    "nodes",
    "lr",
    "max_train_rows",
}


def labels(results: list[dict], names: list[str] | None = None) -> list[str]:
    """One legend label per run that tells the overlaid runs apart: label() and then every
    setting that differs between them (two runs differing in precision alone read "torch adam
    all (cpu), fp32" and "…, bf16"); runs alike in all of them get their directory's name."""
    base = [label(r) for r in results]
    extras: list[list[str]] = [[] for _ in results]
    if len(results) > 1:
        said = [key for key, _ in _SETTINGS]
        config_keys = sorted(
            {k for r in results for k in r.get("config", {})} - _NOT_A_DIFFERENCE - set(said)
        )
        for key, say in [*_SETTINGS, *((k, lambda v, k=k: f"{k}={v}") for k in config_keys)]:
            values = [_setting(r, key) for r in results]
            if len({repr(v) for v in values}) > 1:
                for extra, value in zip(extras, values, strict=True):
                    if value is not None:  # a setting a run does not have goes unsaid
                        extra.append(say(value))
    out = [", ".join([b, *e]) for b, e in zip(base, extras, strict=True)]
    if names and len(set(out)) < len(out):
        out = [
            f"{text} [{name}]" if out.count(text) > 1 else text
            for text, name in zip(out, names, strict=True)
        ]
    return out


def _run_names(runs: list[Path]) -> list[str]:
    """Each run's directory name, or its path as given where two names are the same."""
    names = [(p if p.is_dir() else p.parent).name or str(p) for p in map(Path, runs)]
    return names if len(set(names)) == len(names) else [str(p) for p in runs]


def write_report(
    runs: list[Path], out: Path | None = None, force: bool = False, figures: dict | None = None
) -> Path:
    """report.md and the plots of ``figures`` (default FIGURES) in ``out``, all or none of
    them. ``out`` defaults to the first run's directory; another directory must be new,
    empty or one the kit made, unless ``force``."""
    if not runs:
        raise UsageError("name at least one run directory")
    results = [load_result(Path(r)) for r in runs]
    out = Path(out) if out else (Path(runs[0]) if Path(runs[0]).is_dir() else Path("report"))
    generated = any(r.get("generated_data") for r in results)
    names = labels(results, _run_names(runs))
    runs_dirs = [Path(r) for r in runs if Path(r).is_dir()]
    with output_set(out, "--out", "report", force, also_ours=runs_dirs) as tmp:
        plots = {}
        for name, draw in (figures or FIGURES).items():
            save(draw(results, names), tmp / f"{name}.png", generated)
            plots[name] = out / f"{name}.png"
        (tmp / "report.md").write_text(_markdown(results, names, plots, out, generated))
    return out / "report.md"


def history_figure(results: list[dict], names: list[str]):
    fig, (ax_loss, ax_auc) = new_figure(10, 4, ncols=2)
    for r, name in zip(results, names, strict=True):
        epochs = [h["epoch"] for h in r["history"]]
        (line,) = ax_loss.plot(
            epochs, [h["train_loss"] for h in r["history"]], "-o", ms=3, label=f"{name} train"
        )
        ax_loss.plot(
            epochs,
            [h["val_loss"] for h in r["history"]],
            "--",
            color=line.get_color(),
            label="validation",
        )
        ax_auc.plot(epochs, [h["val_auc"] for h in r["history"]], "-o", ms=3, label=name)
    ax_loss.set(xlabel="epoch", ylabel="binary cross-entropy", title="loss")
    ax_auc.set(xlabel="epoch", ylabel="validation AUC", title="validation AUC")
    for ax in (ax_loss, ax_auc):
        integer_ticks(ax.xaxis)
        ax.legend(fontsize=7)
    return fig


def roc_figure(results: list[dict], names: list[str]):
    """The ROC as today (signal against background efficiency) and beside it as physicists
    read it: background rejection 1/ε_B on a log scale against signal efficiency ε_S."""
    fig, (ax, ax_rej) = new_figure(11, 4.4, ncols=2)
    for r, name in zip(results, names, strict=True):
        roc = r["curves"]["roc"]
        (line,) = ax.plot(roc["fpr"], roc["tpr"], label=f"{name}: AUC {r['test_auc']:.4f}")
        eff, rej = rejection(roc["fpr"], roc["tpr"])
        ax_rej.plot(eff, rej, color=line.get_color(), label=name)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="random")
    ax.set(
        xlabel="background efficiency (false positive rate)",
        ylabel="signal efficiency (true positive rate)",
        title="ROC, test set",
    )
    ax.legend(fontsize=7, loc="lower right")
    eff = np.linspace(0.01, 1.0, 100)
    ax_rej.plot(eff, 1.0 / eff, ":", color="grey", label="random")
    ax_rej.set(
        xlabel=r"signal efficiency $\varepsilon_\mathrm{S}$",
        ylabel=r"background rejection $1/\varepsilon_\mathrm{B}$",
        yscale="log",
        xlim=(0, 1),
        title="background rejection, test set",
    )
    ax_rej.legend(fontsize=7, loc="upper right")
    return fig


def class_events(result: dict) -> tuple[float, float]:
    """Test events of signal and background behind the output histograms: as recorded
    (curves.histograms.signal_events/background_events), else the test set split as in UCI
    HIGGS and the toy generator (53 % signal): enough for error bars, which scale as √N."""
    h = result["curves"]["histograms"]
    n = result["test_rows"]
    return (
        h.get("signal_events", SIGNAL_FRACTION * n),
        h.get("background_events", (1 - SIGNAL_FRACTION) * n),
    )


def outputs_figure(results: list[dict], names: list[str]):
    """Signal and background network output, each normalised to unit area, as step
    histograms with statistical error bars; with several runs, one colour per run and
    background dashed."""
    fig, ax = new_figure()
    one = len(results) == 1
    for i, (r, name) in enumerate(zip(results, names, strict=True)):
        h = r["curves"]["histograms"]
        n_sig, n_bkg = class_events(r)
        colour = None if one else f"C{i % 10}"
        tag = "" if one else f" {name}"
        step_histogram(
            ax,
            h["background"],
            h["edges"],
            n_bkg,
            label=f"background{tag}",
            color=colour or "tab:blue",
            ls="--" if not one else "-",
        )
        step_histogram(
            ax, h["signal"], h["edges"], n_sig, label=f"signal{tag}", color=colour or "tab:red"
        )
    ax.set(xlabel="network output", ylabel="normalised events", title="output, test set")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    return fig


def fom_figure(results: list[dict], names: list[str]):
    fig, ax = new_figure()
    ax2 = ax.twinx()
    for r, name in zip(results, names, strict=True):
        f = r["curves"]["fom"]
        (line,) = ax.plot(f["cut"], f["fom"], label=f"S/√B {name}")
        ax2.plot(
            f["cut"],
            f["significance"],
            "--",
            color=line.get_color(),
            label=f"significance {name}",
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
    return fig


# report.md's figures, in its order: file name (without .png) → how it is drawn
FIGURES = {
    "history": history_figure,
    "roc": roc_figure,
    "outputs": outputs_figure,
    "fom": fom_figure,
}


def _markdown(results, names, plots, out: Path, generated: bool) -> str:
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
    for r, name in zip(results, names, strict=True):
        peak = f" ({100 * r['fraction_of_peak']:.0f} %)" if r.get("fraction_of_peak") else ""
        data = "generated" if r.get("generated_data") else "HIGGS"
        lines.append(
            f"| {name} | {data}, {r['train_rows']:,} train | {r['epochs']} "
            f"| {r['epoch_seconds_median']:.3f} | {r['events_per_second']:,.0f} "
            f"| {r['gflops']:.1f}{peak} | {r['test_auc']:.4f} | {r['test_accuracy']:.4f} "
            f"| {r['fom_max']:.2f} @ {r['fom_cut']:.3f} | {r['significance']:.2f} |"
        )
    lines += ["", "Machines:", ""]
    for r, name in zip(results, names, strict=True):
        m = r.get("machine", {})
        lines.append(
            f"- {name}: {m.get('processor', '?')}, {m.get('cpu_count', '?')} CPUs"
            f"{', ' + m['gpu'] if m.get('gpu') else ''}; hosts {', '.join(r['hosts'])}; "
            f"git {r['git_sha'][:12]}"
        )
    lines += [""]
    for name, path in plots.items():
        lines += [f"![{name}]({os.path.relpath(path, out)})", ""]
    return "\n".join(lines)
