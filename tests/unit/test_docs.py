"""The README and docs/: the measurement tables are what scripts/docs-tables.py makes of the
bench.json files under docs/measurements/ (nobody edits a figure by hand), every bench.json is
shown somewhere, the README's first screen has what a newcomer needs, and the links between
the pages lead somewhere."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "docs-tables.py"
README = REPO / "README.md"
BENCHMARKS = REPO / "docs" / "benchmarks.md"


def _load_generator():
    spec = importlib.util.spec_from_file_location("docs_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = _load_generator()


def run_generator(*args, root: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_generated_tables_are_up_to_date():
    proc = run_generator("--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # byte for byte what the generator would write
    for file, text in generator.render(REPO).items():
        assert (REPO / file).read_text() == text, f"{file}: run `make docs`"


def _copy_docs(root: Path) -> None:
    (root / "docs").mkdir(parents=True)
    shutil.copy(README, root / "README.md")
    shutil.copy(BENCHMARKS, root / "docs" / "benchmarks.md")
    shutil.copytree(
        REPO / "docs" / "measurements",
        root / "docs" / "measurements",
        ignore=shutil.ignore_patterns("*.png", "*.log"),
    )


def test_a_changed_bench_json_or_a_hand_edited_table_fails_the_check(tmp_path):
    _copy_docs(tmp_path)
    # a hand edit of a figure is undone
    page = tmp_path / "docs" / "benchmarks.md"
    page.write_text(page.read_text().replace("| sgd | 3.810 |", "| sgd | 3.000 |", 1))
    proc = run_generator("--check", root=tmp_path)
    assert proc.returncode == 1 and "stale: docs/benchmarks.md" in proc.stdout, proc.stdout
    # a new measurement reaches the page and the README's summary
    source = tmp_path / "docs" / "measurements" / generator.TORCH_KERAS[0]
    bench = json.loads(source.read_text())
    (sgd,) = [r for r in bench["rows"] if r["engine"] == "torch" and r["optimizer"] == "sgd"]
    sgd["epoch_seconds"] = 9.25
    source.write_text(json.dumps(bench))
    proc = run_generator("--check", root=tmp_path)
    assert proc.returncode == 1, proc.stdout
    assert "stale: README.md, docs/benchmarks.md" in proc.stdout, proc.stdout
    assert run_generator(root=tmp_path).returncode == 0
    assert "| sgd | 9.250 | 4.081 | 0.44 |" in page.read_text()
    assert "torch epoch 3.88–9.25 s" in (tmp_path / "README.md").read_text()
    proc = run_generator("--check", root=tmp_path)
    assert proc.returncode == 0, proc.stdout
    # the prose around the tables is left alone
    assert (
        page.read_text().split("<!-- gpu:end -->")[1]
        == BENCHMARKS.read_text().split("<!-- gpu:end -->")[1]
    )


def test_every_bench_json_is_in_a_table():
    """Each bench.json under docs/measurements/ is shown by the generated tables, except the
    RPC-encryption runs, which scripts/bench-rpc-encryption.sh summarises itself."""
    measurements = REPO / "docs" / "measurements"
    found = {
        str(p.relative_to(measurements))
        for p in measurements.rglob("*bench.json")
        if not (p.parent.parent / "summary.md").exists()
    }
    assert found == generator.sources()


def test_the_readme_leads_with_what_a_newcomer_needs():
    first_screen = "\n".join(README.read_text().splitlines()[:60])
    expected = [
        "# higgsbench",
        "## Quick start",
        "make demo",
        "make test",
        "## Layout",
        "app/higgsbench/",
        "## Data flow",
        "prepared/",
        "result.json",
        "report",
        "## Targets",
    ]
    at = 0
    for s in expected:  # each after the one before
        at = first_screen.find(s, at)
        assert at >= 0, f"{s!r} is not in the README's first 60 lines after what precedes it"
    text = README.read_text()
    assert "<!-- bench-summary:begin -->" in text and "(docs/benchmarks.md)" in text


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_links_between_the_pages_resolve():
    for page in (README, BENCHMARKS):
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: {target} does not exist"
            if anchor and linked.suffix == ".md":
                headings = re.findall(r"(?m)^#+ (.+)$", linked.read_text())
                assert anchor in map(_anchor, headings), f"{page.name}: no #{anchor} in {path}"


def test_the_readme_names_every_folder_and_module_of_the_package():
    """The README's map of the package follows the tree: each subpackage (with its modules)
    and each top-level module is named in it, and it names none that is gone."""
    text = README.read_text()
    start = text.index("app/higgsbench/        the package")
    block = text[start : text.index("```", start)]
    package = REPO / "app" / "higgsbench"
    named = set(re.findall(r"\b([a-z_]+)(?:/|\.py\b)", block))
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[-1] in ("__init__", "__main__"):
            parts = parts[:-1]
        if not parts:
            continue
        leaf = parts[-1]
        assert leaf in named or leaf in block, f"{'/'.join(parts)} is not in the README's map"
    for folder in re.findall(r"^  ([a-z_]+)/", block, flags=re.M):
        assert (package / folder).is_dir(), f"the README's map names {folder}/, which is gone"
