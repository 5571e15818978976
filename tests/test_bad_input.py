"""Every kind of bad input exits non-zero, names the file and line, and leaves nothing behind."""

import gzip
import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.helpers import refused, run_cli


def _rows(sample, n):
    with gzip.open(sample, "rt") as f:
        return [next(f).rstrip("\n") for _ in range(n)]


def _with_line(rows, lineno, line):
    rows = list(rows)
    rows[lineno - 1] = line
    return "\n".join(rows) + "\n"


def _replace_field(row, index, value):
    fields = row.split(",")
    fields[index] = value
    return ",".join(fields)


CASES = {
    # name: (builder(rows) -> bytes written to the file, suffix, expected message parts)
    "wrong column count": (
        lambda r: _with_line(r, 1500, ",".join(r[1499].split(",")[:28])).encode(),
        ".csv",
        ["line 1500", "expected 29 comma-separated values", "found 28"],
    ),
    "non-numeric value": (
        lambda r: _with_line(r, 2222, _replace_field(r[2221], 4, "abc")).encode(),
        ".csv",
        ["line 2222", "'missing_energy_magnitude'", "'abc'", "not a number"],
    ),
    "NaN": (
        lambda r: _with_line(r, 777, _replace_field(r[776], 9, "nan")).encode(),
        ".csv",
        ["line 777", "'jet1_btag'", "finite"],
    ),
    "infinity": (
        lambda r: _with_line(r, 3000, _replace_field(r[2999], 28, "inf")).encode(),
        ".csv",
        ["line 3000", "'m_wwbb'", "finite"],
    ),
    "missing value": (
        lambda r: _with_line(r, 10, _replace_field(r[9], 2, "")).encode(),
        ".csv",
        ["line 10", "'lepton_eta'", "missing"],
    ),
    "label other than 0/1": (
        lambda r: _with_line(r, 4000, _replace_field(r[3999], 0, "2.0")).encode(),
        ".csv",
        ["line 4000", "label is 2", "expected 0"],
    ),
    "wrong columns in gzip": (
        lambda r: gzip.compress(_with_line(r, 4001, r[4000] + ",1.0").encode()),
        ".csv.gz",
        ["line 4001", "found 30"],
    ),
    "empty file": (lambda r: b"", ".csv", ["the file is empty"]),
    "empty gzip": (lambda r: gzip.compress(b""), ".csv.gz", ["no rows found"]),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_named_and_nothing_is_written(higgs_sample, tmp_path, case):
    build, suffix, expected = CASES[case]
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(build(_rows(higgs_sample, 5000)))
    out_parent = tmp_path / "out"
    out_parent.mkdir()
    proc = run_cli("data", "prepare", bad, "--out", out_parent / "prepared")
    assert proc.returncode != 0, proc.stdout
    message = proc.stderr.strip().splitlines()[-1]
    assert str(bad) in message
    for part in expected:
        assert part in message, message
    assert list(out_parent.iterdir()) == [], "partial output left behind"


def test_truncated_gzip_is_reported_and_nothing_is_written(higgs_sample, tmp_path):
    bad = tmp_path / "cut.csv.gz"
    data = higgs_sample.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    proc = run_cli("data", "prepare", bad, "--out", tmp_path / "out" / "prepared")
    assert proc.returncode != 0
    message = proc.stderr.strip().splitlines()[-1]
    assert str(bad) in message and "truncated" in message and "line" in message
    assert "higgsbench data fetch" in message
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_missing_file(tmp_path):
    proc = run_cli("data", "prepare", tmp_path / "nope.csv.gz", "--out", tmp_path / "p")
    assert proc.returncode != 0
    assert f"{tmp_path / 'nope.csv.gz'}: no such file" in proc.stderr
    assert not (tmp_path / "p").exists()


def test_failed_prepare_keeps_an_existing_dataset(higgs_sample, tmp_path):
    out = tmp_path / "prepared"
    run_cli("data", "prepare", higgs_sample, "--out", out, check=True)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad.csv"
    shutil.copy(higgs_sample, tmp_path / "s.csv.gz")
    bad.write_text("1,2,3\n")
    proc = run_cli("data", "prepare", bad, "--out", out, "--force")
    assert proc.returncode != 0 and "line 1" in proc.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "prepared", "s.csv.gz"]


# ------------------------------------------------------------- safe by default
# Every refusal below: exit status 2, exactly one line on stderr that starts
# "higgsbench: error:" and names the option or file, no traceback, nothing left behind.


def _tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize(
    "args, option",
    [
        (["--val-rows", "0"], "--val-rows"),
        (["--test-rows", "-1"], "--test-rows"),
        (["--rows", "-5"], "--rows"),
        (["--rows", "0"], "--rows"),
    ],
)
def test_prepare_refuses_impossible_row_counts(higgs_sample, tmp_path, args, option):
    refused(run_cli("data", "prepare", higgs_sample, "--out", tmp_path / "p", *args), option)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize("out", ["data", ".", "data/HIGGS.csv.gz"])
def test_prepare_never_writes_over_its_input(higgs_sample, tmp_path, out, force):
    data = tmp_path / "data"
    data.mkdir()
    src = data / "HIGGS.csv.gz"
    shutil.copy(higgs_sample, src)
    (data / "notes.txt").write_text("beside the input")
    before = _tree(tmp_path)
    refused(run_cli("data", "prepare", src, "--out", tmp_path / out, *force), "input", src)
    assert _tree(tmp_path) == before
    assert src.read_bytes() == higgs_sample.read_bytes()


def test_force_replaces_only_a_prepared_dataset(higgs_head, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("months of work")
    refused(
        run_cli("data", "prepare", higgs_head, "--out", out, "--force"),
        out,
        "not a prepared dataset",
    )
    assert (out / "thesis.tex").read_text() == "months of work"
    assert _tree(tmp_path) == ["mine", "mine/thesis.tex"]
    # a prepared dataset is replaced, and nothing is left beside it
    prepared = tmp_path / "prepared"
    run_cli("data", "prepare", higgs_head, "--out", prepared, check=True)
    run_cli("data", "prepare", higgs_head, "--out", prepared, "--force", check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "prepared"]


@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize("command", ["prepare", "synth"])
def test_an_out_that_is_a_file_is_refused(higgs_head, tmp_path, command, force):
    out = tmp_path / "prepared"
    out.write_text("a file")
    args = [higgs_head] if command == "prepare" else ["--events", "100"]
    refused(run_cli("data", command, *args, "--out", out, *force), out, "not a directory")
    assert out.read_text() == "a file" and _tree(tmp_path) == ["prepared"]


def _unwritable_dir():
    """A directory where even root may not make anything: sysfs refuses new entries."""
    candidate = Path("/sys/kernel/higgsbench-test")
    try:
        candidate.mkdir()
    except OSError:
        return candidate
    candidate.rmdir()
    pytest.skip("no directory here refuses to be written")


def test_an_out_that_cannot_be_made_is_one_line_naming_it(higgs_head, tmp_path):
    blocked = _unwritable_dir()
    refused(run_cli("data", "prepare", higgs_head, "--out", blocked / "prepared"), blocked)
    assert not blocked.exists()


def test_an_out_below_a_file_is_one_line_naming_the_file(higgs_head, tmp_path):
    (tmp_path / "file").write_text("")
    proc = run_cli("data", "prepare", higgs_head, "--out", tmp_path / "file" / "p")
    refused(proc, tmp_path / "file", "is a file")
    assert _tree(tmp_path) == ["file"]


@pytest.mark.parametrize(
    "args, option",
    [
        (["fetch", "--rows", "0"], "--rows"),
        (["fetch", "--rows", "-3"], "--rows"),
        (["fetch", "--retries", "-1"], "--retries"),
        (["synth", "--events", "5"], "--events"),
        (["synth", "--jobs", "0"], "--jobs"),
        (["synth", "--val-rows", "0"], "--val-rows"),
    ],
)
def test_fetch_and_synth_refuse_impossible_numbers(tmp_path, args, option):
    out = tmp_path / "sub" / ("HIGGS.csv.gz" if args[0] == "fetch" else "prepared")
    # an unreachable URL: the check must come before any download is tried
    extra = ["--url", "http://127.0.0.1:9/HIGGS.csv.gz"] if args[0] == "fetch" else []
    refused(run_cli("data", *args, "--out", out, *extra), option)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, option",
    [
        (["--lr", "-1"], "--lr"),
        (["--lr", "0"], "--lr"),
        (["--max-train-rows", "0"], "--max-train-rows"),
        (["--max-train-rows", "100"], "--max-train-rows 100"),
        (["--nodes", "0"], "--nodes"),
        (["--nodes", "2"], "--nodes 2"),
        (["--engine", "keras", "--nodes", "3"], "--nodes 3"),
        (["--threads", "0"], "--threads"),
        (["--cores-per-node", "0"], "--cores-per-node"),
        (["--worker-timeout", "0"], "--worker-timeout"),
        (["--worker-timeout", "-5"], "--worker-timeout"),
        (["--epochs", "0"], "--epochs"),
        # refused by the engine itself, after the run directory was made: removed again
        (["--precision", "fp8"], "--precision"),
    ],
)
def test_train_refuses_bad_settings_and_leaves_no_run_dir(toy_dataset, tmp_path, args, option):
    out = tmp_path / "runs" / "r"
    refused(run_cli("train", "--data", toy_dataset, "--out", out, *args), option)
    assert list(tmp_path.iterdir()) == [], "run directory left behind"


@pytest.mark.parametrize(
    "content, expected",
    [
        ("[]", "the file is a list, expected an object"),
        ('{"engine": "torch"}', "lacks 'device'"),
        ("not json", "not valid JSON"),
    ],
)
def test_report_on_a_file_of_the_wrong_shape(tmp_path, content, expected):
    run = tmp_path / "run"
    run.mkdir()
    (run / "result.json").write_text(content)
    refused(run_cli("report", run, "--out", tmp_path / "rep"), run / "result.json", expected)
    assert _tree(tmp_path) == ["run", "run/result.json"]


def test_report_names_a_wrongly_typed_key(tmp_path):
    curve = [0.0, 0.5, 1.0]
    record = {
        **dict.fromkeys(["engine", "device", "optimizer", "features", "git_sha"], "x"),
        **dict.fromkeys(["nodes", "cores_per_node", "batch_size", "epochs", "layers"], 1),
        **dict.fromkeys(["width", "train_rows", "test_rows", "startup_seconds"], 1),
        **dict.fromkeys(["events_per_second", "test_auc", "test_accuracy", "fom_max"], 0.5),
        **dict.fromkeys(["fom_cut", "significance", "epoch_seconds_median", "gflops"], 0.5),
        "epoch_seconds": [1.0],
        "history": [{"epoch": 1, "train_loss": 0.6, "val_loss": 0.6, "val_auc": "high"}],
        "versions": {},
        "hosts": ["here"],
        "curves": {
            "roc": {"fpr": curve, "tpr": curve},
            "histograms": {"edges": curve, "signal": curve[:2], "background": curve[:2]},
            "fom": {"cut": curve, "fom": curve, "significance": curve},
        },
    }
    run = tmp_path / "run"
    run.mkdir()
    (run / "result.json").write_text(json.dumps(record))
    proc = run_cli("report", run, "--out", tmp_path / "rep")
    refused(proc, run / "result.json", "history[0].val_auc is a string, expected a number")
    assert not (tmp_path / "rep").exists()


@pytest.mark.parametrize("option", ["--from", "--against"])
@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "no such file"),
        ("{not json", "not valid JSON"),
        ('{"rows": []}', "lacks 'generated_data'"),
        ('{"generated_data": false, "machine": {}, "failures": [], "rows": [{}]}', "rows[0]"),
    ],
)
def test_bench_files_missing_broken_or_of_the_wrong_shape(
    toy_dataset, tmp_path, option, content, expected
):
    bench_json = tmp_path / "bench.json"
    if content is not None:
        bench_json.write_text(content)
    before = _tree(tmp_path)
    args = ["--data", toy_dataset, "--out", tmp_path / "sweep"] if option == "--against" else []
    refused(run_cli("bench", option, bench_json, *args), bench_json, option, expected)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(
    "args, option",
    [
        (["--nodes", "0"], "--nodes"),
        (["--nodes", "1,-2"], "--nodes"),
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "-1"], "--batch-size"),
        (["--engines", "torch,jax"], "--engines"),
        (["--optimizers", "rmsprop"], "--optimizers"),
        (["--predict-cores", "0"], "--predict-cores"),
    ],
)
def test_bench_refuses_bad_settings_before_any_run(toy_dataset, tmp_path, args, option):
    proc = run_cli("bench", "--data", toy_dataset, "--out", tmp_path / "sweep", *args)
    refused(proc, option)
    assert list(tmp_path.iterdir()) == []


def test_bench_refuses_a_dataset_that_is_not_prepared(tmp_path):
    proc = run_cli("bench", "--data", tmp_path / "nothing", "--out", tmp_path / "sweep")
    refused(proc, tmp_path / "nothing", "not a prepared dataset")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("tail", [b"\n\n", b"\r\n\r\n", b"\n", b"\r\n\r\n\r\n\r\n"])
@pytest.mark.parametrize("compress", [False, True])
def test_blank_lines_at_the_end_are_accepted(higgs_sample, tmp_path, tail, compress):
    text = gzip.decompress(higgs_sample.read_bytes()) + tail
    src = tmp_path / ("tail.csv.gz" if compress else "tail.csv")
    src.write_bytes(gzip.compress(text) if compress else text)
    proc = run_cli("data", "prepare", src, "--out", tmp_path / "p")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "p" / "stats.json").read_text())
    assert sum(stats["rows"].values()) == 10984


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_a_blank_line_before_the_end_is_named(higgs_sample, tmp_path, ending):
    rows = gzip.decompress(higgs_sample.read_bytes()).split(b"\r\n")[:3000]
    src = tmp_path / "gap.csv"
    src.write_bytes(ending.join([*rows[:1233], b"", *rows[1233:]]) + ending + ending)
    message = refused(run_cli("data", "prepare", src, "--out", tmp_path / "p"), src)
    assert "line 1234" in message and "empty" in message
    assert _tree(tmp_path) == ["gap.csv"]


def test_an_unexpected_failure_is_one_line_and_exit_1(monkeypatch, capsys):
    """The safety net for bugs of ours: no traceback unless HIGGSBENCH_DEBUG asks for it."""
    from higgsbench import cli, report

    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(report, "write_report", broken)
    monkeypatch.setattr(sys, "argv", ["higgsbench", "report", "some-run"])
    monkeypatch.delenv("HIGGSBENCH_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "higgsbench: internal error: RuntimeError: boom second line; please report it "
        "(set HIGGSBENCH_DEBUG=1 for the traceback)"
    ]
    monkeypatch.setenv("HIGGSBENCH_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        cli.main()


def test_a_run_refused_by_its_engine_leaves_an_existing_out_as_it_was(toy_dataset, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    proc = run_cli("train", "--data", toy_dataset, "--out", out, "--precision", "fp8")
    refused(proc, "--precision")
    assert list(out.iterdir()) == []
