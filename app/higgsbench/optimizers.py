"""The optimizers every engine offers, with one table of default learning rates.

The defaults are the classic ones (Keras 2, which the thesis used, and PyTorch agree on all but
SGD): each engine builds its own optimizer object from this table, so a run with the same
name means the same algorithm and learning rate everywhere.
"""

from __future__ import annotations

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
        raise ValueError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
    return name


def learning_rate(name: str, lr: float | None = None) -> float:
    return DEFAULT_LR[check_optimizer(name)] if lr is None else float(lr)


def build_torch(name: str, params, lr: float | None = None, device_type: str = "cpu"):
    """A torch optimizer. On CUDA the fused (one-kernel) or foreach (few kernels) variants are
    used, capturable where torch offers it so that the whole step fits in a CUDA graph: that
    matters when a training step takes tens of microseconds."""
    import torch

    name = check_optimizer(name)
    rate = learning_rate(name, lr)
    if device_type != "cuda":
        cls = {
            "sgd": torch.optim.SGD,
            "adam": torch.optim.Adam,
            "adamax": torch.optim.Adamax,
            "adadelta": torch.optim.Adadelta,
            "adagrad": torch.optim.Adagrad,
        }[name]
        return cls(params, lr=rate)
    if name == "sgd":
        return torch.optim.SGD(params, lr=rate, fused=True)
    if name == "adam":
        return torch.optim.Adam(params, lr=rate, fused=True, capturable=True)
    if name == "adagrad":  # no fused or capturable Adagrad on CUDA: its step stays eager
        return torch.optim.Adagrad(params, lr=rate, foreach=True)
    if name == "adamax":
        return torch.optim.Adamax(params, lr=rate, foreach=True, capturable=True)
    return torch.optim.Adadelta(params, lr=rate, foreach=True, capturable=True)
