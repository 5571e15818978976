"""The optimizers every engine offers, with one table of default learning rates.

The defaults are the classic ones (Keras 2, which the thesis used, and PyTorch agree on all but
SGD): each engine builds its own optimizer object from this table, so a run with the same
name means the same algorithm and learning rate everywhere.
"""

from __future__ import annotations

from higgsbench.common.errors import UsageError

DEFAULT_LR = {
    "sgd": 0.01,
    "adam": 0.001,
    "adamax": 0.002,
    "adadelta": 1.0,
    "adagrad": 0.01,
}
OPTIMIZERS = tuple(DEFAULT_LR)


def check_optimizer(name: str) -> str:
    name = name.lower()
    if name not in DEFAULT_LR:
        raise UsageError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
    return name


def learning_rate(name: str, lr: float | None = None) -> float:
    return DEFAULT_LR[check_optimizer(name)] if lr is None else float(lr)


# How each optimizer is asked to run. Fused: one vectorised pass over all parameters (torch
# has it for SGD, Adam and Adagrad on the CPU, SGD and Adam on CUDA); foreach: a few
# multi-tensor kernels; the default per-tensor loop costs milliseconds per step on the CPU.
# On CUDA, capturable keeps the optimizer's state on the GPU so its step fits in a CUDA graph.
_VARIANTS = {
    "cpu": {
        "sgd": {"fused": True},
        "adam": {"fused": True},
        "adagrad": {"fused": True},
        "adamax": {"foreach": True},
        "adadelta": {"foreach": True},
    },
    "cuda": {
        "sgd": {"fused": True},
        "adam": {"fused": True, "capturable": True},
        "adagrad": {"foreach": True},  # neither fused nor capturable on CUDA: its step stays eager
        "adamax": {"foreach": True, "capturable": True},
        "adadelta": {"foreach": True, "capturable": True},
    },
}


def build_torch(
    name: str,
    params,
    lr: float | None = None,
    device_type: str = "cpu",
    *,
    momentum: float | None = None,
    weight_decay: float = 0.0,
):
    """A torch optimizer with the table's learning rate, in its fastest variant for the device.

    ``momentum`` (SGD only) and ``weight_decay`` serve a training recipe (recipes.py): the decay
    is torch's (a gradient of weight_decay · W) and applies to weight matrices only, so the
    optimizer then has two parameter groups, weights first and biases (no decay) second."""
    import torch

    name = check_optimizer(name)
    if momentum is not None and name != "sgd":  # a recipe's mistake, not a user's setting
        raise ValueError(f"momentum is an SGD setting; {name} has none")
    cls = {
        "sgd": torch.optim.SGD,
        "adam": torch.optim.Adam,
        "adamax": torch.optim.Adamax,
        "adadelta": torch.optim.Adadelta,
        "adagrad": torch.optim.Adagrad,
    }[name]
    variant = dict(_VARIANTS["cuda" if device_type == "cuda" else "cpu"][name])
    if momentum is not None:
        variant["momentum"] = momentum
    if weight_decay:
        params = list(params)
        params = [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
    return cls(params, lr=learning_rate(name, lr), **variant)
