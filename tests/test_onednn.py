"""The oneDNN path of CPU float32 training (engines/onednn.py): its tanh within two float32
ulps of the exact one, its gradients those of torch's own layers, the same state_dict, and a
trained network that scores as one trained through torch's kernels."""

import json

import pytest
import torch
from torch import nn

from higgsbench.core.network import NetworkSpec, build_torch
from higgsbench.engines import onednn
from tests.helpers import FakeClock, product_taking, run_cli

# Whether this torch build has the operator, asked of torch itself: onednn.available() also
# reads HIGGSBENCH_CPU_KERNELS, and a user's `=torch` must not skip the whole file.
pytestmark = pytest.mark.skipif(
    not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")),
    reason="this torch has no oneDNN fused linear operator",
)


@pytest.fixture(autouse=True)
def _kernels_not_chosen_by_the_environment(monkeypatch):
    """Every test starts from the default kernels (oneDNN), whatever the shell exported; the
    tests that want another choice set it themselves."""
    monkeypatch.delenv(onednn.KERNELS_ENV, raising=False)


def test_the_fused_tanh_is_within_two_ulps_of_the_exact_one():
    x = torch.linspace(-12, 12, 300 * 4096).reshape(4096, 300)
    y = onednn.linear(x, torch.eye(300), torch.zeros(300), "tanh")
    exact = torch.tanh(x.double())
    error = (y.double() - exact).abs()
    # measured: 7.2e-8 absolute, 7.3e-8 relative (torch.tanh: 3.1e-8); float32's ulp at 1 is
    # 1.2e-7, and 2⁻²³ relative is one ulp anywhere
    assert error.max() < 1.5e-7
    assert (error / exact.abs().clamp_min(1e-30)).max() < 2 * 2**-23
    tiny = torch.tensor([[1e-3, 1e-6, 1e-9, 0.0, -1e-6]])
    assert torch.equal(onednn.linear(tiny, torch.eye(5), torch.zeros(5), "tanh"), tiny.tanh())


def _pair(seed=3):
    plain = build_torch(NetworkSpec(inputs=28), generator=torch.Generator().manual_seed(seed))
    fused, kernels = onednn.fuse(
        build_torch(NetworkSpec(inputs=28), generator=torch.Generator().manual_seed(seed))
    )
    assert kernels == "onednn" and isinstance(fused, onednn.FusedSequential)
    return plain, fused


def test_forward_and_gradients_are_those_of_torchs_own_layers():
    plain, fused = _pair()
    x = torch.randn(512, 28, generator=torch.Generator().manual_seed(0))
    y = (torch.rand(512, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    outputs = []
    for model in (plain, fused):
        xi = x.clone().requires_grad_(True)  # the input's gradient too (a rank's first layer
        logits = model(xi).squeeze(-1)  # needs none, every other layer's input does)
        nn.functional.binary_cross_entropy_with_logits(logits, y).backward()
        outputs.append((logits.detach(), xi.grad, [p.grad for p in model.parameters()]))
    (lp, gxp, gp), (lf, gxf, gf) = outputs
    assert torch.allclose(lf, lp, rtol=1e-5, atol=1e-6)
    assert torch.allclose(gxf, gxp, rtol=1e-4, atol=1e-8)
    assert len(gf) == len(gp) == 8
    for got, want in zip(gf, gp, strict=True):
        assert got.shape == want.shape
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-7), (got - want).abs().max()


def test_the_state_dict_is_the_networks_own():
    plain, fused = _pair()
    assert list(fused.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(64, 28)
    assert torch.allclose(plain(x), fused(x), rtol=1e-5, atol=1e-6)


def test_bf16_autocast_and_other_devices_keep_torchs_path():
    _, fused = _pair()
    x = torch.randn(64, 28)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not onednn.usable(x)
        assert fused(x).dtype == torch.bfloat16  # autocast's own products ran
    assert not onednn.usable(x.double())


def test_the_switch_turns_it_off_and_refuses_other_values(monkeypatch):
    monkeypatch.setenv(onednn.KERNELS_ENV, "torch")
    model = build_torch(NetworkSpec(inputs=28))
    assert onednn.fuse(model) == (model, "torch")
    monkeypatch.setenv(onednn.KERNELS_ENV, "mkl")
    with pytest.raises(ValueError, match="choose onednn or torch"):
        onednn.available()


def test_a_network_trained_through_onednn_scores_as_one_trained_through_torch(
    toy_dataset, tmp_path
):
    """The issue's bound: the same epochs, seed and batches give a test AUC within 0.002."""
    results = {}
    for kernels in ("torch", "onednn"):
        out = tmp_path / kernels
        run_cli(
            "train", "--data", toy_dataset, "--out", out, "--epochs", 4, "--batch-size", 256,
            "--threads", 1, env={onednn.KERNELS_ENV: kernels}, check=True, timeout=300,
        )  # fmt: skip
        results[kernels] = json.loads((out / "result.json").read_text())
    assert results["torch"]["kernels"] == "torch" and results["onednn"]["kernels"] == "onednn"
    torch_auc, onednn_auc = results["torch"]["test_auc"], results["onednn"]["test_auc"]
    print(f"test AUC after 4 epochs: torch kernels {torch_auc:.5f}, oneDNN {onednn_auc:.5f}")
    assert abs(torch_auc - onednn_auc) < 0.002
    # not the same computation twice: the float32 sums differ in order, so the trained weights
    # differ, a little (the losses, float32 sums over the validation set, may not show it)
    weights = [torch.load(tmp_path / k / "model.pt") for k in ("torch", "onednn")]
    differences = [(weights[0][k] - weights[1][k]).abs().max().item() for k in weights[0]]
    assert max(differences) > 0 and max(differences) < 1e-3, differences


def test_the_peak_is_measured_through_the_same_library(monkeypatch):
    from higgsbench.core import hardware
    from higgsbench.engines import onednn

    # oneDNN's product is the x · yᵀ of a dense layer (square matrices: the same FLOPs)
    x, y = torch.randn(64, 32), torch.randn(48, 32)
    assert torch.allclose(onednn.product(x, y), x @ y.T, rtol=1e-5, atol=1e-5)
    # timed through it, each product as if it took 10 ms: 2n³ FLOPs per 10 ms
    clock, operands = FakeClock(), []
    clock.install(monkeypatch, hardware)
    product = product_taking(clock, 0.01, onednn.product, operands)
    gflops = hardware.measure_gemm_gflops(torch.device("cpu"), "fp32", 0.05, product)
    n = operands[0][0][0]
    assert operands == [((n, n), (n, n), torch.float32, torch.float32)] * len(operands)
    assert gflops == pytest.approx(2 * n**3 / 0.01 / 1e9)


def test_freed_memory_stays_in_the_process_on_glibc():
    import platform

    from higgsbench.core import hardware

    glibc = platform.libc_ver()[0] == "glibc"
    assert hardware.keep_freed_memory() is glibc
