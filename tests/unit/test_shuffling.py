"""The order fit() trains in: shuffled, a new order every epoch, decided by --seed alone.

A network that writes down the rows it is given (each row carries its own number as its
feature) shows the order the training loop actually used, whatever draws it."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from higgsbench.core.network import NetworkSpec, build_torch
from higgsbench.engines.torch_training import DeviceData, fit

ROWS, BATCH, EPOCHS = 64, 16, 3


class _RowRecorder(nn.Module):
    """A one-weight network that keeps the row numbers of every batch it is trained on."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen += x[:, 0].long().tolist()
        return x[:, :1] * self.weight


def _training_order(seed: int) -> list[list[int]]:
    """The row numbers fit() trained on, one list per epoch."""
    numbers = np.arange(ROWS, dtype=np.float32)[:, None]
    labels = (np.arange(ROWS) % 2).astype(np.float32)
    model = _RowRecorder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    train = DeviceData(numbers, labels, torch.device("cpu"))
    fit(model, optimizer, train, None, epochs=EPOCHS, batch_size=BATCH, seed=seed,
        show_progress=False)  # fmt: skip
    return [model.seen[e * ROWS : (e + 1) * ROWS] for e in range(EPOCHS)]


def test_every_epoch_trains_on_every_row_once_in_a_shuffled_order():
    epochs = _training_order(seed=42)
    assert len(epochs) == EPOCHS
    for order in epochs:
        assert sorted(order) == list(range(ROWS))  # a permutation: no row dropped or repeated
        assert order != list(range(ROWS)), "the rows were trained on in file order"


def test_the_order_changes_from_epoch_to_epoch():
    first, second, third = _training_order(seed=42)
    assert first != second and second != third and first != third


def test_the_seed_decides_the_order():
    assert _training_order(seed=42) == _training_order(seed=42)
    assert _training_order(seed=42) != _training_order(seed=43)


def _trained_weights(seed: int, initial: nn.Module, x: np.ndarray, y: np.ndarray) -> list:
    model = copy.deepcopy(initial)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    train = DeviceData(x, y, torch.device("cpu"))
    fit(model, optimizer, train, None, epochs=2, batch_size=32, seed=seed, show_progress=False)
    return [p.detach().clone() for p in model.parameters()]


def test_the_same_network_trained_with_another_seed_ends_with_other_weights():
    # the same initial weights both times: only the order of the batches differs
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=256) > 0).astype(np.float32)
    spec = NetworkSpec(inputs=4, layers=1, width=8)
    initial = build_torch(spec, generator=torch.Generator().manual_seed(0))
    again = _trained_weights(7, initial, x, y)
    same = _trained_weights(7, initial, x, y)
    other = _trained_weights(8, initial, x, y)
    assert all(torch.equal(a, b) for a, b in zip(again, same, strict=True))
    assert any(not torch.allclose(a, b) for a, b in zip(again, other, strict=True))
