"""The plots as physicists draw them (mplhep): the ROC beside background rejection on a log
scale, normalised step histograms with statistical error bars, integer epoch ticks, legends
that say what differs between overlaid runs, error bars on every bench plot, and the stamp on
every figure of generated data. The figures are inspected as objects, not as pixels."""

import json

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.patches import StepPatch
from matplotlib.ticker import MaxNLocator

from higgsbench import report
from higgsbench.common import plotting
from higgsbench.sweep import plots as bench_plots
from tests.helpers import fake_run_record, write_fake_bench

EDGES = [i / 10 for i in range(11)]
SIGNAL = [0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.2, 1.5, 1.8, 2.2]
BACKGROUND = SIGNAL[::-1]


def _result(**fields):
    """A result.json of a run that never happened, with everything `report` draws."""
    fpr = [0.0, 0.001, 0.01, 0.1, 0.3, 0.6, 1.0]
    tpr = [0.0, 0.05, 0.2, 0.5, 0.8, 0.95, 1.0]
    record = fake_run_record(
        engine="torch",
        test_rows=10_000,
        epochs=3,
        epoch_seconds=[1.0, 1.1, 1.2],
        gflops=1.0,
        history=[
            {
                "epoch": e,
                "train_loss": 0.7 - 0.05 * e,
                "val_loss": 0.7 - 0.04 * e,
                "val_auc": 0.7 + 0.03 * e,
            }
            for e in (1, 2, 3)
        ],
        curves={
            "roc": {"fpr": fpr, "tpr": tpr},
            "histograms": {"edges": EDGES, "signal": SIGNAL, "background": BACKGROUND},
            "fom": {"cut": [0.1, 0.5, 0.9], "fom": [1.0, 2.0, 1.5], "significance": [1, 2, 1]},
        },
        generated_data=True,
        precision="fp32",
        config={
            "engine": "torch",
            "optimizer": "adam",
            "precision": "fp32",
            "seed": 42,
            "out": "somewhere",
            "recipe": "thesis",
        },
    )
    record.update(fields)
    return record


def _errorbars(fig):
    return [c for ax in fig.axes for c in ax.containers if isinstance(c, ErrorbarContainer)]


@pytest.fixture
def saved(monkeypatch):
    """Every figure `report` and `bench` save, kept for inspection after it was written."""
    figures = {}

    def keep(fig, path, generated):
        figures[path.name] = fig
        return plotting.save(fig, path, generated)

    monkeypatch.setattr(report, "save", keep)
    monkeypatch.setattr(bench_plots, "save", keep)
    return figures


def test_the_roc_is_drawn_beside_background_rejection_on_a_log_scale():
    fig = report.roc_figure([_result()], ["run"])
    roc, rej = fig.axes
    assert "background efficiency" in roc.get_xlabel() and roc.get_yscale() == "linear"
    assert "background rejection" in rej.get_ylabel() and "1/" in rej.get_ylabel()
    assert "signal efficiency" in rej.get_xlabel()
    assert rej.get_yscale() == "log"
    x, y = rej.lines[0].get_data()
    # 1/ε_B against ε_S; the point where no background passes (ε_B = 0) is left out
    assert list(x) == [0.05, 0.2, 0.5, 0.8, 0.95, 1.0]
    assert list(y) == pytest.approx([1000, 100, 10, 1 / 0.3, 1 / 0.6, 1.0])


def test_the_roc_line_is_the_true_positive_rate_against_the_false_positive_rate():
    """From scores through the recorded curve to the drawn line: the line's x are sklearn's
    false positive rates (background efficiency, as the axis says), its y the true positive
    rates. The scores make the curve lopsided, so swapped axes cannot pass for it."""
    from sklearn.metrics import roc_curve

    from higgsbench.core.metrics import physics_metrics

    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(60), np.zeros(60)]
    scores = np.r_[rng.uniform(0.3, 1.0, 60), rng.uniform(0.0, 0.8, 60) ** 2]
    fpr, tpr, _ = roc_curve(labels, scores)
    assert len(fpr) <= 200  # short enough for the record to keep every point
    metrics = physics_metrics(labels, scores)
    fig = report.roc_figure(
        [_result(curves=metrics["curves"], test_auc=metrics["test_auc"])], ["run"]
    )
    roc_axes = fig.axes[0]
    assert "false positive" in roc_axes.get_xlabel() and "true positive" in roc_axes.get_ylabel()
    x, y = roc_axes.lines[0].get_data()
    np.testing.assert_allclose(x, fpr, atol=1e-6)
    np.testing.assert_allclose(y, tpr, atol=1e-6)


def test_output_histograms_are_normalised_steps_with_statistical_error_bars():
    fig = report.outputs_figure([_result()], ["run"])
    (ax,) = fig.axes
    steps = [p for p in ax.patches if isinstance(p, StepPatch)]
    assert len(steps) == 2  # signal and background, no filled bars
    heights = sorted(tuple(np.round(s.get_data().values, 6)) for s in steps)
    assert heights == sorted([tuple(SIGNAL), tuple(BACKGROUND)])
    bars = _errorbars(fig)
    assert bars
    # error of a unit-area histogram: √(density / (N × bin width)), N of 10 000 test events
    # split 53 % signal, 47 % background (the recorded split is used where there is one)
    drawn = [
        [s[1][1] - s[0][1] for s in c.lines[2][0].get_segments()]
        for c in bars
        if len(c.lines[2][0].get_segments()) == len(SIGNAL)
    ]
    for values, events in ((SIGNAL, 5300), (BACKGROUND, 4700)):
        expected = [2 * np.sqrt(v / (events * 0.1)) for v in values]
        assert any(np.allclose(d, expected) for d in drawn), (values, drawn)


def test_recorded_class_counts_give_the_error_bars():
    r = _result()
    r["curves"]["histograms"].update(signal_events=100, background_events=400)
    assert report.class_events(r) == (100, 400)
    errors = plotting.density_errors([1.0], [0.0, 0.1], 100)
    assert errors == pytest.approx([np.sqrt(1.0 / (100 * 0.1))])


def test_epoch_axes_have_integer_ticks():
    fig = report.history_figure([_result()], ["run"])
    fig.canvas.draw()
    for ax in fig.axes:
        locator = ax.xaxis.get_major_locator()
        assert isinstance(locator, MaxNLocator) and locator._integer
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)


def test_labels_of_runs_that_differ_only_in_precision_say_so():
    fp32 = _result()
    bf16 = _result(precision="bf16", config={**fp32["config"], "precision": "bf16"})
    a, b = report.labels([fp32, bf16], ["a", "b"])
    assert a != b
    assert a == "torch adam all (cpu), fp32" and b == "torch adam all (cpu), bf16"


def test_labels_name_each_setting_that_differs_and_only_those():
    one = _result()
    other = _result(
        optimizer="sgd",
        batch_size=512,
        seed=7,
        learning_rate=0.01,
        config={**one["config"], "seed": 7, "recipe": "fast", "out": "elsewhere"},
    )
    one["learning_rate"] = 0.001
    a, b = report.labels([one, other], ["a", "b"])
    assert a == "torch adam all (cpu), batch 4096, lr 0.001, seed 42, recipe=thesis"
    assert b == "torch sgd all (cpu), batch 512, lr 0.01, seed 7, recipe=fast"
    # a run alone keeps its plain label
    assert report.labels([other], ["b"]) == ["torch sgd all (cpu)"]


def test_labels_of_identical_runs_fall_back_to_their_directories():
    assert report.labels([_result(), _result()], ["run-1", "run-2"]) == [
        "torch adam all (cpu) [run-1]",
        "torch adam all (cpu) [run-2]",
    ]


def test_report_overlays_runs_differing_in_precision_with_labels_that_say_so(tmp_path, saved):
    runs = []
    for precision in ("fp32", "bf16"):
        run = tmp_path / precision
        run.mkdir()
        record = _result(precision=precision)
        record["config"]["precision"] = precision
        (run / "result.json").write_text(json.dumps(record))
        runs.append(run)
    report.write_report(runs, tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| torch adam all (cpu), fp32 |" in md and "| torch adam all (cpu), bf16 |" in md
    legend = [t.get_text() for t in saved["history.png"].axes[1].get_legend().get_texts()]
    assert legend == ["torch adam all (cpu), fp32", "torch adam all (cpu), bf16"]
    # every figure of generated data keeps its stamp
    assert sorted(saved) == ["fom.png", "history.png", "outputs.png", "roc.png"]
    for name, fig in saved.items():
        assert any(plotting.GENERATED_STAMP in t.get_text() for t in fig.texts), name


def test_real_data_plots_carry_no_stamp(tmp_path, saved):
    run = tmp_path / "run"
    run.mkdir()
    (run / "result.json").write_text(json.dumps(_result(generated_data=False)))
    report.write_report([run], tmp_path / "rep")
    for fig in saved.values():
        assert not any(plotting.GENERATED_STAMP in t.get_text() for t in fig.texts)
        assert fig._suptitle is None


def _sweep(folder):
    """A 1-, 2- and 4-node spark sweep with torch beside it; each run's epochs spread ±10 %."""

    def run(**kw):
        s = kw["epoch_seconds_median"]
        return fake_run_record(epoch_seconds=[0.9 * s, s, 1.1 * s], test_rows=10_000, **kw)

    records = [
        run(engine="torch", cores_per_node=4, epoch_seconds_median=3.0),
        run(nodes=1, epoch_seconds_median=4.0),
        run(nodes=2, epoch_seconds_median=2.5),
        run(nodes=4, epoch_seconds_median=1.5),
    ]
    path = write_fake_bench(folder, records)
    bench = json.loads(path.read_text())
    one = 4.0
    for row in bench["rows"]:
        if row["engine"] == "spark":
            row["speedup"] = one / row["epoch_seconds"]
            row["efficiency"] = row["speedup"] / row["nodes"]
    bench["prediction"] = {
        "engine": "spark",
        "optimizer": "adam",
        "bandwidth": "10Gbit",
        "measured_network_bits_per_second": 1e10,
        "model": {"cores_per_node": 4},
        "points": [
            {"nodes": n, "epoch_seconds": 4.0 / n, "epoch_seconds_at_measured_network": 4.0 / n}
            for n in (1, 2, 4, 8)
        ],
        "measured": [
            {"nodes": r["nodes"], "epoch_seconds": r["epoch_seconds"]}
            for r in bench["rows"]
            if r["engine"] == "spark"
        ],
        "communication_dominates_from": None,
    }
    return bench


def test_every_bench_plot_has_error_bars_from_the_runs_epochs(tmp_path, saved):
    bench = _sweep(tmp_path / "sweep")
    written = bench_plots.write_plots(bench, tmp_path / "plots", runs_dir=tmp_path / "sweep")
    names = sorted(p.name for p in written)
    assert names == [
        "efficiency.png",
        "engines.png",
        "epoch_time_vs_nodes.png",
        "prediction.png",
        "speedup.png",
    ]
    for name in names:
        fig = saved[name]
        assert _errorbars(fig), f"{name}: no error bars"
        assert any(plotting.GENERATED_STAMP in t.get_text() for t in fig.texts), name
    # epoch time: from the fastest to the slowest epoch of each run, around its median
    (scaling,) = [c for c in _errorbars(saved["epoch_time_vs_nodes.png"]) if c.has_yerr]
    spans = [v for s in scaling.lines[2][0].get_segments() for v in (s[0][1], s[1][1])]
    assert spans == pytest.approx([3.6, 4.4, 2.25, 2.75, 1.35, 1.65])
    # speed-up of 4 nodes: 4.0/1.5 within [3.6/1.65, 4.4/1.35]; one node against itself: none
    (speedup,) = _errorbars(saved["speedup.png"])
    spans = [(s[0][1], s[1][1]) for s in speedup.lines[2][0].get_segments()]
    assert spans[0] == pytest.approx((1.0, 1.0))
    assert spans[2] == pytest.approx((3.6 / 1.65, 4.4 / 1.35))
    # the nodes axis counts whole nodes
    assert isinstance(saved["speedup.png"].axes[0].xaxis.get_major_locator(), MaxNLocator)
    # the AUC's bar is its statistical error on 10 000 test events (about ±0.004 at 0.8)
    auc_bars = _errorbars(saved["engines.png"])[2].lines[2][0].get_segments()
    half = (auc_bars[0][1][1] - auc_bars[0][0][1]) / 2
    assert half == pytest.approx(bench_plots.auc_error(0.8, 10_000)) and 0.003 < half < 0.006


def test_a_bench_without_its_runs_still_draws_its_error_bars_at_zero_length(tmp_path, saved):
    bench = _sweep(tmp_path / "sweep")
    bench_plots.write_plots(bench, tmp_path / "elsewhere")  # the runs are not beside it
    segments = _errorbars(saved["epoch_time_vs_nodes.png"])[0].lines[2][0].get_segments()
    assert all(s[0][1] == pytest.approx(s[1][1]) for s in segments)
