"""`report --out`, `bench --from … --out` and `data compare --out` write into a directory that
is new, empty, or one higgsbench made (it carries the marker); a user's non-empty directory is
refused, naming the option, and left untouched, unless --force."""

import json

import pytest

from higgsbench.paths import OUTPUT_MARKER
from tests.helpers import fake_report_record, fake_run_record, refused, run_cli, write_fake_bench
from tests.test_bad_input import _tree


def _report(tmp_path, toy_dataset=None):
    run = tmp_path / "run"
    run.mkdir()
    (run / "result.json").write_text(json.dumps(fake_report_record()))
    return ["report", run], "report.md"


def _bench(tmp_path, toy_dataset=None):
    bench_json = write_fake_bench(
        tmp_path / "sweep", [fake_run_record(nodes=n, epoch_seconds_median=2 / n) for n in (1, 2)]
    )
    return ["bench", "--from", bench_json], "bench.md"


def _compare(tmp_path, toy_dataset):
    return [
        "data", "compare", toy_dataset, toy_dataset, "--max-rows", 2000, "--train-rows", 500
    ], "compare.md"  # fmt: skip


# each command's arguments but --out, and the file it writes there
COMMANDS = {"report": _report, "bench": _bench, "compare": _compare}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_users_directory_is_refused_unless_force_and_ours_is_written_again(
    toy_dataset, tmp_path, command
):
    args, written = COMMANDS[command](tmp_path, toy_dataset)
    # a new directory is made and marked; written into again without --force
    ours = tmp_path / "ours"
    run_cli(*args, "--out", ours, check=True)
    assert (ours / OUTPUT_MARKER).is_file() and (ours / written).is_file()
    (ours / written).unlink()
    run_cli(*args, "--out", ours, check=True)
    assert (ours / written).is_file()
    # a user's directory is refused and left as it was
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("months of work")
    before = _tree(tmp_path)
    message = refused(run_cli(*args, "--out", thesis), "--out", thesis, "--force")
    assert "not made by higgsbench" in message
    assert _tree(tmp_path) == before
    # --force writes beside what is there
    run_cli(*args, "--out", thesis, "--force", check=True)
    assert (thesis / written).is_file()
    assert (thesis / "thesis.tex").read_text() == "months of work"
    if command != "compare":  # the default --out, the input's own directory, is the command's
        run_cli(*args, check=True)
        inputs = tmp_path / ("run" if command == "report" else "sweep")
        assert (inputs / written).is_file() and not (inputs / OUTPUT_MARKER).exists()


def test_bench_force_is_only_for_from(toy_dataset, tmp_path):
    proc = run_cli("bench", "--data", toy_dataset, "--out", tmp_path / "sweep", "--force")
    refused(proc, "--force", "a sweep's must be new or empty")
    assert list(tmp_path.iterdir()) == []
