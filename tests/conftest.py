"""Shared fixtures. Genuine HIGGS rows live outside the repository, in ../shared/data; tests that
need them skip, saying why, when that folder is absent — unless HIGGSBENCH_REQUIRE_DATA=1 (CI),
which makes that a failure.

With HIGGSBENCH_STRICT_SKIPS=1 (CI) every skip, wherever it was raised, must match a reason in
tests/skips-allowed.txt; any other skip fails the session, and the count is printed at the end:
in CI a missing prerequisite is a failure, never a quiet skip."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import pytest

from tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HIGGSBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))
HEAD_11 = SHARED_DATA / "higgs-head-11.csv"
SAMPLE = SHARED_DATA / "higgs-sample-10984.csv.gz"


ALLOWED_SKIPS = Path(__file__).with_name("skips-allowed.txt")


def require_data(path: Path) -> Path:
    """``path`` (genuine HIGGS rows) or a skip saying where they were looked for; a failure
    when HIGGSBENCH_REQUIRE_DATA=1."""
    if not path.exists():
        reason = f"genuine HIGGS rows not found at {path} (set HIGGSBENCH_SHARED_DATA)"
        if os.environ.get("HIGGSBENCH_REQUIRE_DATA") == "1":
            pytest.fail(f"HIGGSBENCH_REQUIRE_DATA=1 but {reason}")
        pytest.skip(reason)
    return path


_require = require_data


def allowed_skip_patterns() -> list[re.Pattern]:
    """Reasons a skip may have in CI: one regular expression a line, `#` starts the why."""
    lines = ALLOWED_SKIPS.read_text().splitlines() if ALLOWED_SKIPS.exists() else []
    patterns = [line.split("#", 1)[0].strip() for line in lines]
    return [re.compile(pattern) for pattern in patterns if pattern]


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("HIGGSBENCH_STRICT_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    patterns = allowed_skip_patterns()
    unexpected = []
    for report in skipped:
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report)
        if not any(p.search(reason) for p in patterns):
            unexpected.append(f"{report.nodeid}: {reason}")
    if reporter:
        reporter.write_line(
            f"\nskips: {len(skipped)}, not allowed by {ALLOWED_SKIPS.name}: {len(unexpected)}"
        )
        for line in unexpected:
            reporter.write_line(f"  NOT ALLOWED: {line}")
    if unexpected and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def higgs_head() -> Path:
    return _require(HEAD_11)


@pytest.fixture
def higgs_sample() -> Path:
    return _require(SAMPLE)


@pytest.fixture(scope="session")
def sample_gz() -> bytes:
    """The genuine sample's bytes, as UCI's gzip."""
    return require_data(SAMPLE).read_bytes()


@pytest.fixture(scope="session")
def sample_text(sample_gz) -> bytes:
    """The genuine sample as plain CSV."""
    return gzip.decompress(sample_gz)


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory) -> Path:
    """A small generated dataset shared by engine tests (8 000 events)."""
    out = tmp_path_factory.mktemp("toy") / "prepared"
    run_cli("data", "synth", "--events", 8000, "--out", out, "--seed", 3, check=True)
    return out
