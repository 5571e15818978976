"""The scaling model's arithmetic, against numbers worked out by hand."""

import pytest

from higgsbench.errors import HiggsbenchError
from higgsbench.scaling import ScalingModel, parse_bandwidth


def test_bandwidth_units():
    assert parse_bandwidth("10Gbit") == 10e9
    assert parse_bandwidth("1 gbit/s") == 1e9
    assert parse_bandwidth("100Mbit") == 100e6
    assert parse_bandwidth("125MB/s") == 1e9  # bytes
    with pytest.raises(HiggsbenchError, match="--bandwidth"):
        parse_bandwidth("fast")


def test_step_time_is_compute_share_plus_ring_allreduce():
    model = ScalingModel(
        seconds_per_event=1e-5,
        cores_per_node=8,
        gradient_bytes=1_000_000,
        latency_seconds=1e-4,
        rows_per_epoch=4096 * 10,
        batch_size=4096,
    )
    compute, comm = model.step_seconds(4, 8e9)  # 1 GB/s
    assert compute == pytest.approx(4096 / 4 * 1e-5)
    # 2(N-1) = 6 hops of 100 µs, and 2(N-1)/N = 1.5 MB at 1 GB/s
    assert comm == pytest.approx(6e-4 + 1.5e-3)
    assert model.epoch_seconds(4, 8e9) == pytest.approx(10 * (compute + comm))
    assert model.step_seconds(1, 8e9) == (pytest.approx(4096 * 1e-5), 0.0)
    # compute 40.96 ms / N falls, communication grows: they cross between 8 and 16 nodes
    assert model.crossover([1, 2, 4, 8, 16, 32], 8e9) == 16
    assert model.crossover([1, 2], 8e9) is None
