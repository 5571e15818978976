"""What the single-process torch engine and every Spark rank build alike: the network with its
seeded weights (through oneDNN where that is the faster path), and the optimizer with the
recipe's schedule."""

from __future__ import annotations

from higgsbench.core import network, optimizers, recipes
from higgsbench.core.network import NetworkSpec
from higgsbench.engines import onednn


def build_model(spec: NetworkSpec, seed: int, device, fuse: bool):
    """The network on ``device`` with the weights ``seed`` gives (the same on every rank),
    and the kernels its dense layers use: 'onednn' when ``fuse`` and oneDNN is there, else
    'torch'."""
    import torch

    model = network.build_torch(spec, generator=torch.Generator().manual_seed(seed)).to(device)
    return onednn.fuse(model) if fuse else (model, "torch")


def build_optimizer(recipe: str, name: str, lr: float | None, parameters, device_type: str):
    """The optimizer, and the recipe's schedule (None for a recipe without one), which starts
    from the learning rate the run starts with."""
    schedule = recipes.schedule_for(recipe, name, optimizers.learning_rate(name, lr))
    options = schedule.optimizer_options() if schedule is not None else {}
    return optimizers.build_torch(name, parameters, lr, device_type, **options), schedule
