"""The result record's headline numbers, from a training outcome made up by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from higgsbench.core.config import EpochRecord, RunConfig, TrainOutcome
from higgsbench.core.network import network_spec
from higgsbench.records.result import build_record


class _Data:
    """What build_record reads of a prepared dataset, without one on disk."""

    generated = True

    def describe(self) -> dict:
        return {"path": "nowhere", "source": "hand", "generated": True, "rows": {}}


def _outcome(epoch_seconds: list[float], rows_per_epoch: int) -> TrainOutcome:
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(200), np.zeros(200)]
    history = [EpochRecord(i + 1, 0.6, 0.6, 0.7, s, s) for i, s in enumerate(epoch_seconds)]
    return TrainOutcome(
        device="cpu",
        nodes=1,
        cores_per_node=1,
        hosts=["here"],
        startup_seconds=0.5,
        epoch_seconds=epoch_seconds,
        history=history,
        test_labels=labels,
        test_scores=np.clip(0.3 * labels + rng.uniform(0, 0.7, 400), 0, 1),
        train_rows=rows_per_epoch,
        train_rows_per_epoch=rows_per_epoch,
        peak_gflops=100.0,
    )


def test_events_per_second_comes_from_the_median_epoch():
    # a slow first epoch (warm-up) among two fast ones: the median epoch is 1 s, so
    # 12 000 events per epoch are 12 000 events/s (the mean, 4 s, would say 3 000)
    config = RunConfig(data=Path("nowhere"), out=Path("nowhere"), epochs=3)
    spec = network_spec(28)
    record = build_record(config, spec, _Data(), _outcome([10.0, 1.0, 1.0], 12_000), lr=1e-3)
    assert record["epoch_seconds_median"] == 1.0
    assert record["events_per_second"] == pytest.approx(12_000.0)
    # 6 FLOPs per multiply-add of 28 → 300 → 300 → 300 → 1, counted by hand
    flops_per_event = 6 * (28 * 300 + 300 * 300 + 300 * 300 + 300 * 1)
    assert record["gflops"] == pytest.approx(12_000 * flops_per_event / 1e9)
    assert record["fraction_of_peak"] == pytest.approx(12_000 * flops_per_event / 1e9 / 100.0)
