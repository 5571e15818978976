"""What the benchmark measures about the machine, against a clock the test controls: the GEMM
peak (GFLOP/s of a square matrix product) and the all-reduce of the gradient behind the
scaling model. Each fake operation advances the fake clock by a cost chosen here, so the
numbers the code must report follow by hand."""

from __future__ import annotations

import pytest
import torch

from higgsbench.core import hardware
from higgsbench.core.network import network_spec
from higgsbench.engines.spark import rank
from tests.helpers import FakeClock, product_taking


def test_gemm_peak_is_two_n_cubed_flops_per_product_time(monkeypatch):
    clock, operands = FakeClock(), []
    clock.install(monkeypatch, hardware)
    # the product's value is never used, only its time: skip the arithmetic
    product = product_taking(clock, 0.01, lambda x, y: x, operands)
    gflops = hardware.measure_gemm_gflops(torch.device("cpu"), "fp32", seconds=0.1, product=product)
    n = operands[0][0][0]
    assert operands == [((n, n), (n, n), torch.float32, torch.float32)] * len(operands)
    # an n × n product is n³ multiply-adds, 2 FLOPs each, in 10 ms
    assert gflops == pytest.approx(2 * n**3 / 0.01 / 1e9)


def test_the_gradient_of_the_3x300_network_is_its_parameters_in_float32():
    # 28 → 300 → 300 → 300 → 1, weights and biases, counted by hand
    parameters = (28 * 300 + 300) + 2 * (300 * 300 + 300) + (300 * 1 + 1)
    assert parameters == 189_601
    spec = network_spec(28)
    assert (spec.layers, spec.width) == (3, 300)
    measured = rank.measure_allreduce(_FakeGroup(world=4), spec.parameters())
    assert measured["bytes"] == parameters * 4 == 758_404


def test_allreduce_latency_and_bandwidth_are_recovered_from_a_ring(monkeypatch):
    # a ring all-reduce of n float32 values over N processes: 2(N − 1) hops of latency L
    # and 2(N − 1)/N · 4n bytes at bandwidth W; the measurement must give L and W back
    latency, bandwidth, world = 50e-6, 1.25e8, 4
    clock = FakeClock()
    clock.install(monkeypatch, rank)

    def ring(numel: int) -> float:
        return 2 * (world - 1) * latency + 2 * (world - 1) / world * 4 * numel / bandwidth

    group = _FakeGroup(
        world, on_all_reduce=lambda t: setattr(clock, "now", clock.now + ring(t.numel()))
    )
    measured = rank.measure_allreduce(group, 189_601)
    # the one-value all-reduce that measures the latency carries 4 bytes, 2(N − 1)/N · 4 / W
    # seconds spread over its 2(N − 1) hops; the difference of the two all-reduces carries
    # 189 600 of the 189 601 values
    assert measured["latency_seconds"] == pytest.approx(latency + 4 / (world * bandwidth))
    assert measured["bytes_per_second"] == pytest.approx(bandwidth * 189_601 / 189_600)


class _FakeGroup:
    """torch.distributed as measure_allreduce uses it, for a group of ``world`` processes."""

    def __init__(self, world: int, on_all_reduce=lambda tensor: None):
        self.world, self.on_all_reduce = world, on_all_reduce

    def get_world_size(self) -> int:
        return self.world

    def barrier(self) -> None:
        pass

    def all_reduce(self, tensor) -> None:
        self.on_all_reduce(tensor)
