"""The tolerance the distributed engines' AUC is held to (tests/seed_spread.json, written by
scripts/seed-spread.py): derived from its own measurements, and tight enough that an engine
that does not train fails it."""

import json
import math
import statistics

import pytest

from tests.helpers import SEED_SPREAD, auc_tolerance

UNTRAINED_AUC_AT_MOST = 0.58  # an untrained network on the genuine sample's test rows


@pytest.mark.parametrize("setting", ["batch-512-adam", "batch-256-adam"])
def test_the_tolerance_is_four_deviations_of_a_difference_and_excludes_no_training(setting):
    measured = json.loads(SEED_SPREAD.read_text())["settings"][setting]
    aucs = measured["test_auc"]
    assert len(aucs) == len(measured["seeds"]) >= 10 and len(set(aucs)) > 1
    assert measured["stdev"] == pytest.approx(statistics.stdev(aucs))
    assert auc_tolerance(setting) == pytest.approx(4 * math.sqrt(2) * statistics.stdev(aucs))
    assert min(aucs) - auc_tolerance(setting) > UNTRAINED_AUC_AT_MOST
