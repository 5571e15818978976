"""The network description and its torch build."""

import pytest
import torch

from higgsbench.common.errors import UsageError
from higgsbench.core.network import build_torch, network_spec


def test_thesis_default_is_3_by_300_tanh():
    spec = network_spec(28)
    assert (spec.layers, spec.width, spec.activation) == (3, 300, "tanh")
    assert spec.layer_sizes() == [(28, 300), (300, 300), (300, 300), (300, 1)]
    assert spec.parameters() == 28 * 300 + 300 + 2 * (300 * 300 + 300) + 301
    # the figure quoted throughout: about 1.14 MFLOP per event per training step
    assert spec.train_flops_per_event() == pytest.approx(1.132e6, rel=1e-3)


def test_baldi_recipe_and_overrides():
    spec = network_spec(21, "baldi")
    assert spec.layers == 4 and spec.init_std(0) == 0.1 and spec.init_std(4) == 0.001
    assert network_spec(7, "thesis", layers=1, width=50).layer_sizes() == [(7, 50), (50, 1)]
    with pytest.raises(UsageError, match="--recipe 'mine': choose one of thesis, baldi"):
        network_spec(28, "mine")


def test_torch_build_follows_the_description():
    spec = network_spec(28, "baldi")
    model = build_torch(spec, torch.Generator().manual_seed(0))
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(o, i) for i, o in spec.layer_sizes()]
    assert sum(isinstance(m, torch.nn.Tanh) for m in model) == 4
    assert linears[0].weight.std().item() == pytest.approx(0.1, rel=0.05)
    assert linears[1].weight.std().item() == pytest.approx(0.05, rel=0.05)
    assert all((m.bias == 0).all() for m in linears)
    assert sum(p.numel() for p in model.parameters()) == spec.parameters()
