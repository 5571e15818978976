"""`higgsbench report` turns result.json files into plots and report.md."""

from tests.helpers import run_cli


def test_report_writes_plots_and_markdown(toy_dataset, tmp_path):
    for opt in ("adam", "sgd"):
        run_cli(
            "train",
            "--data",
            toy_dataset,
            "--out",
            tmp_path / opt,
            "--epochs",
            2,
            "--optimizer",
            opt,
            "--batch-size",
            512,
            check=True,
        )
    run_cli("report", tmp_path / "adam", tmp_path / "sgd", "--out", tmp_path / "rep", check=True)
    names = sorted(p.name for p in (tmp_path / "rep").iterdir())
    assert names == ["fom.png", "history.png", "outputs.png", "report.md", "roc.png"]
    for png in (tmp_path / "rep").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "GENERATED DATA" in md
    assert "torch adam all (cpu)" in md and "torch sgd all (cpu)" in md
    assert "![roc](roc.png)" in md


def test_report_on_a_missing_run_is_a_clear_error(tmp_path):
    proc = run_cli("report", tmp_path / "nothing")
    assert proc.returncode != 0 and "no result.json" in proc.stderr
