"""Hand-edited or corrupt kit files (a dataset's stats.json, a bench.json, a run's result.json)
are the user's to fix, not internal errors: exit 2, one line naming the file and the field,
nothing written. And what `report`, `bench` and `data compare` write lands as a set: a failure
leaves none of the new files."""

import json
import math
import shutil
import time

import pytest

from higgsbench import report
from higgsbench.bench import MAX_BENCH_ROWS, read_bench
from higgsbench.paths import OUTPUT_MARKER
from tests.helpers import fake_report_record, fake_run_record, refused, run_cli, write_fake_bench
from tests.test_bad_input import _tree

_DELETE = object()


def _edit(*path, value=_DELETE):
    """A change to a JSON record: the value at ``path`` (keys and indices) replaced, or
    deleted when no value is given."""

    def apply(record):
        target = record
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return record

    return apply


# ------------------------------------------------------------------------------ stats.json
# Before stats.json was checked, the first eleven ended "internal error … please report it"
# (ValueError, IndexError, KeyError, TypeError, and a NaN mean as FloatingPointError "training
# diverged … lower the learning rate"); the last four trained as if nothing were wrong.
STATS_CASES = {
    "mean a string": (_edit("mean", value="high"), "mean is a string, expected a list"),
    "mean of 5 features": (_edit("mean", value=[0.5] * 5), "mean has 5 entries, expected 28"),
    "a NaN mean": (_edit("mean", 3, value=math.nan), "mean[3] is NaN, expected a finite number"),
    "a null mean": (_edit("mean", 7, value=None), "mean[7] is null"),
    "no std": (_edit("std"), "lacks 'std'"),
    "rows without train": (_edit("rows", "train"), "rows lacks 'train'"),
    "rows a list": (_edit("rows", value=[6400, 800, 800]), "rows is a list, expected an object"),
    "rows.train a word": (_edit("rows", "train", value="many"), "rows.train is a string"),
    "features a string": (_edit("features", value="all"), "features is a string"),
    "a feature renamed": (_edit("features", 4, value="met_phi"), "lacks 'missing_energy_phi'"),
    "the file a list": (lambda s: [s], "the file is a list, expected an object"),
    "rows without val": (_edit("rows", "val"), "rows lacks 'val'"),
    "an infinite std": (_edit("std", 3, value=math.inf), "std[3] is Infinity"),
    "a negative std": (
        _edit("std", 3, value=-1.0),
        "std[3] is -1.0, expected a finite number >= 0",
    ),
    "a foreign format": (_edit("format", value="other/1"), "format is 'other/1'"),
}


@pytest.mark.parametrize("case", STATS_CASES)
def test_a_corrupt_stats_json_is_named_and_no_run_is_started(toy_dataset, tmp_path, case):
    edit, expected = STATS_CASES[case]
    data = tmp_path / "data"
    shutil.copytree(toy_dataset, data)
    stats = json.loads((data / "stats.json").read_text())
    (data / "stats.json").write_text(json.dumps(edit(stats)))
    before = _tree(tmp_path)
    proc = run_cli(
        "train", "--data", data, "--out", tmp_path / "run", "--epochs", 1, "--batch-size", 512
    )
    refused(proc, data / "stats.json", expected)
    assert _tree(tmp_path) == before, "a run directory was made"


# ------------------------------------------------------------------------------ bench.json


def _sweep(folder):
    """torch on one process, spark on 1 and 2 nodes (rows 0, 1, 2 of bench.json)."""
    return write_fake_bench(
        folder,
        [
            fake_run_record(engine="torch", cores_per_node=2, epoch_seconds_median=3.0),
            fake_run_record(nodes=1, epoch_seconds_median=2.0),
            fake_run_record(nodes=2, epoch_seconds_median=1.2),
        ],
    )


# Before the rows were checked, `bench --from` drew these (a time of 0, NaN or -1.5 s per
# epoch, 1.5 nodes), or failed after its first plots with an internal error (a speed-up
# that is a word, a prediction without its points), leaving those plots.
BENCH_CASES = {
    "epoch_seconds 0": (_edit("rows", 1, "epoch_seconds", value=0), "rows[1].epoch_seconds is 0"),
    "epoch_seconds NaN": (
        _edit("rows", 2, "epoch_seconds", value=math.nan),
        "rows[2].epoch_seconds is NaN, expected a finite number > 0",
    ),
    "epoch_seconds negative": (
        _edit("rows", 2, "epoch_seconds", value=-1.5),
        "rows[2].epoch_seconds is -1.5",
    ),
    "epoch_seconds infinite": (
        _edit("rows", 0, "epoch_seconds", value=math.inf),
        "rows[0].epoch_seconds is Infinity",
    ),
    "events_per_second NaN": (
        _edit("rows", 0, "events_per_second", value=math.nan),
        "rows[0].events_per_second is NaN",
    ),
    "nodes 0": (_edit("rows", 1, "nodes", value=0), "rows[1].nodes is 0, expected a whole number"),
    "nodes 1.5": (_edit("rows", 2, "nodes", value=1.5), "rows[2].nodes is 1.5"),
    "speedup a word": (_edit("rows", 2, "speedup", value="fast"), "rows[2].speedup is a string"),
    "a repeat of 0 s": (
        _edit(
            "rows",
            2,
            "repeats",
            value=[{"run_dir": "spark-n2-adam", "epoch_seconds": [0], "epoch_seconds_median": 0}],
        ),
        "rows[2].repeats[0].epoch_seconds_median is 0",
    ),
    "a prediction without its points": (
        _edit("prediction", value={"engine": "spark"}),
        "prediction lacks 'optimizer'",
    ),
}


@pytest.mark.parametrize("case", BENCH_CASES)
def test_a_corrupt_bench_json_is_named_and_nothing_is_drawn(tmp_path, case):
    edit, expected = BENCH_CASES[case]
    bench_json = _sweep(tmp_path / "sweep")
    bench_json.write_text(json.dumps(edit(json.loads(bench_json.read_text()))))
    before = _tree(tmp_path)
    refused(run_cli("bench", "--from", bench_json), bench_json, "--from", expected)
    assert _tree(tmp_path) == before


def test_a_bench_json_of_60_000_rows_is_refused_at_once(tmp_path):
    """A bench.json of 60 000 rows kept `bench --from` drawing for minutes (one bar each):
    more rows than any sweep has are refused, naming the count, in seconds."""
    bench_json = _sweep(tmp_path / "sweep")
    bench = json.loads(bench_json.read_text())
    row = bench["rows"][1]
    bench["rows"] = [{**row, "nodes": 1 + i % 64, "run_dir": f"r{i}"} for i in range(60_000)]
    bench_json.write_text(json.dumps(bench))
    before = _tree(tmp_path)
    started = time.monotonic()
    proc = run_cli("bench", "--from", bench_json, timeout=120)
    refused(proc, bench_json, "rows has 60,000 entries", f"the {MAX_BENCH_ROWS:,} allowed")
    assert time.monotonic() - started < 30
    assert _tree(tmp_path) == before
    # as many rows as allowed are read
    bench["rows"] = bench["rows"][:MAX_BENCH_ROWS]
    bench_json.write_text(json.dumps(bench))
    assert len(read_bench(bench_json, "--from")["rows"]) == MAX_BENCH_ROWS


NETWORK = {"bytes": 754_804, "latency_seconds": 50e-6, "bytes_per_second": 1.25e8}

# A run's result.json as the scaling model reads it: each was a ZeroDivisionError, KeyError,
# TypeError or AttributeError ("internal error") before it was checked.
SCALING_CASES = {
    "train_rows_per_epoch 0": (1, {"train_rows_per_epoch": 0}, "train_rows_per_epoch is 0"),
    "batch_size 0": (1, {"batch_size": 0}, "batch_size is 0"),
    "an all-reduce at 0 bytes/s": (
        2,
        {"allreduce": {**NETWORK, "bytes_per_second": 0}},
        "allreduce.bytes_per_second is 0",
    ),
    "an all-reduce without its bytes": (2, {"allreduce": {"seconds": 0.1}}, "lacks 'bytes'"),
    "an all-reduce a list": (2, {"allreduce": [1]}, "allreduce is a list"),
}


@pytest.mark.parametrize("case", SCALING_CASES)
def test_a_corrupt_run_of_a_sweep_is_named_by_predict(tmp_path, case):
    nodes, fields, expected = SCALING_CASES[case]
    records = [
        fake_run_record(nodes=n, epoch_seconds_median=s, allreduce=NETWORK if n > 1 else None)
        for n, s in ((1, 0.8), (2, 1.0))
    ]
    records[nodes - 1].update(fields)
    bench_json = write_fake_bench(tmp_path / "sweep", records)
    before = _tree(tmp_path)
    proc = run_cli("bench", "--from", bench_json, "--predict", "1,2,4")
    refused(proc, tmp_path / "sweep" / f"spark-n{nodes}-adam" / "result.json", expected)
    assert _tree(tmp_path) == before


# ----------------------------------------------------------------------------- result.json

# Each failed as an internal error after the first figures were saved, and left them.
REPORT_CASES = {
    "a signal histogram a bin short": (
        _edit("curves", "histograms", "signal", -1),
        "curves.histograms.signal has 9 entries, expected 10: one per bin",
    ),
    "a background histogram a bin long": (
        _edit("curves", "histograms", "background", value=[0.1] * 11),
        "curves.histograms.background has 11 entries, expected 10",
    ),
    "a single edge": (
        _edit("curves", "histograms", "edges", value=[0.0]),
        "curves.histograms.edges has 1 entry, expected at least 2",
    ),
    "edges that fall": (
        _edit("curves", "histograms", "edges", value=[1 - i / 10 for i in range(11)]),
        "curves.histograms.edges[1] is 0.9, not above the edge before it",
    ),
    "a ROC of unequal halves": (
        _edit("curves", "roc", "tpr", value=[0.0, 1.0]),
        "curves.roc.tpr has 2 entries but curves.roc.fpr has 5",
    ),
    "a FOM curve of unequal lengths": (
        _edit("curves", "fom", "fom", value=[1.0]),
        "curves.fom.fom has 1 entry but curves.fom.cut has 3",
    ),
    "expected events a list": (_edit("expected_events", value=[]), "expected_events is a list"),
    "machine a list": (_edit("machine", value=["x"]), "machine is a list, expected an object"),
    "fraction_of_peak a word": (_edit("fraction_of_peak", value="high"), "fraction_of_peak"),
}


@pytest.mark.parametrize("case", REPORT_CASES)
def test_a_corrupt_result_json_is_named_and_no_plot_is_left(tmp_path, case):
    edit, expected = REPORT_CASES[case]
    run = tmp_path / "run"
    run.mkdir()
    (run / "result.json").write_text(json.dumps(edit(fake_report_record())))
    proc = run_cli("report", run, "--out", tmp_path / "rep")
    refused(proc, run / "result.json", expected)
    assert _tree(tmp_path) == ["run", "run/result.json"]


# ------------------------------------------------------------------------ outputs as a set


def _files(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("stop", [RuntimeError, KeyboardInterrupt])
def test_a_figure_that_fails_leaves_none_of_the_report(tmp_path, stop):
    """The seam: a report whose last figure fails while drawing (a bug, or Ctrl-C)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "result.json").write_text(json.dumps(fake_report_record()))
    out = tmp_path / "rep"
    report.write_report([run], out)
    before = _files(out)

    def broken(results, names):
        raise stop("the last figure fails")

    figures = {**report.FIGURES, "zz": broken}
    with pytest.raises(stop):
        report.write_report([run], tmp_path / "new", figures=figures)
    assert not (tmp_path / "new").exists()
    (run / "result.json").write_text(json.dumps(fake_report_record(test_auc=0.9)))
    with pytest.raises(stop):
        report.write_report([run], out, figures=figures)
    assert _files(out) == before and sorted(p.name for p in out.iterdir()) == sorted(before)


def test_a_report_that_cannot_be_put_in_place_leaves_the_old_one(tmp_path):
    """Its report.md is a directory now: the new plots, drawn and moved into place before it,
    are taken back and the old ones put back."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "result.json").write_text(json.dumps(fake_report_record()))
    out = tmp_path / "rep"
    run_cli("report", run, "--out", out, check=True)
    (out / "report.md").unlink()
    (out / "report.md").mkdir()
    (run / "result.json").write_text(json.dumps(fake_report_record(test_auc=0.9)))
    before, names = _files(out), sorted(p.name for p in out.iterdir())
    proc = run_cli("report", run, "--out", out)
    assert _files(out) == before and sorted(p.name for p in out.iterdir()) == names
    refused(proc, out / "report.md", "is a directory")


def test_bench_plots_that_cannot_all_be_written_leave_none(tmp_path):
    bench_json = _sweep(tmp_path / "sweep")
    (tmp_path / "sweep" / "bench.md").mkdir()
    before = _tree(tmp_path)
    proc = run_cli("bench", "--from", bench_json)
    assert _tree(tmp_path) == before, "plots were left"
    refused(proc, tmp_path / "sweep" / "bench.md", "is a directory")


def test_a_comparison_that_cannot_all_be_written_leaves_none(toy_dataset, tmp_path):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / OUTPUT_MARKER).write_text("compare\n")  # an earlier comparison's directory
    (out / "compare.png").mkdir()
    before = _tree(tmp_path)
    proc = run_cli(
        "data", "compare", toy_dataset, toy_dataset, "--out", out,
        "--max-rows", 2000, "--train-rows", 500,
    )  # fmt: skip
    assert _tree(tmp_path) == before, "compare.json or compare.md was left"
    refused(proc, out / "compare.png", "is a directory")
