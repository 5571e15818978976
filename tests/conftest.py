"""Shared fixtures. Genuine HIGGS rows live outside the repository, in ../shared/data; tests that
need them skip, saying why, when that folder is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HIGGSBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))
HEAD_11 = SHARED_DATA / "higgs-head-11.csv"
SAMPLE = SHARED_DATA / "higgs-sample-10984.csv.gz"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"genuine HIGGS rows not found at {path} (set HIGGSBENCH_SHARED_DATA)")
    return path


@pytest.fixture
def higgs_head() -> Path:
    return _require(HEAD_11)


@pytest.fixture
def higgs_sample() -> Path:
    return _require(SAMPLE)


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory) -> Path:
    """A small generated dataset shared by engine tests (8 000 events)."""
    out = tmp_path_factory.mktemp("toy") / "prepared"
    run_cli("data", "synth", "--events", 8000, "--out", out, "--seed", 3, check=True)
    return out
