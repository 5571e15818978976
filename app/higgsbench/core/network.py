"""The network, described once; each engine builds it from this description.

Defaults are the thesis' choices: 3 hidden layers × 300 tanh units, a sigmoid output, weights
drawn from a Gaussian, zero biases, no dropout. Baldi et al.'s (2014) recipe is a preset:
4 hidden layers × 300 tanh units with Gaussian weights of width 0.1 in the first layer, 0.05
in the hidden layers and 0.001 in the output layer.

Engines train on the output's logit and apply the sigmoid when scoring (the numerically stable
form of the same function: sigmoid + binary cross-entropy == BCE-with-logits).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

from higgsbench.common.errors import UsageError

ACTIVATIONS = ("tanh", "relu", "sigmoid")
# Tensors the size of the weights each optimizer keeps between steps (torch's and Keras'):
# Adam its two moments, Adagrad its sum of squares; SGD none without momentum.
OPTIMIZER_STATE = {"sgd": 0, "adagrad": 1, "adam": 2, "adamax": 2, "adadelta": 2}
FLOAT_BYTES = 4  # every engine trains in float32 (bf16 autocast keeps float32 weights)


@dataclass(frozen=True)
class NetworkSpec:
    inputs: int
    layers: int = 3
    width: int = 300
    activation: str = "tanh"
    init: str = "gaussian"
    init_std_first: float = 0.05
    init_std_hidden: float = 0.05
    init_std_output: float = 0.05
    dropout: float = 0.0
    output: str = "sigmoid"

    def __post_init__(self):
        if self.layers < 1 or self.width < 1:
            raise UsageError(
                f"network needs ≥ 1 hidden layer of ≥ 1 unit, got {self.layers}×{self.width}"
            )
        if self.activation not in ACTIVATIONS:
            raise UsageError(
                f"activation {self.activation!r}: choose one of {', '.join(ACTIVATIONS)}"
            )

    def layer_sizes(self) -> list[tuple[int, int]]:
        """(inputs, outputs) of every dense layer, the output layer last."""
        sizes = [self.inputs] + [self.width] * self.layers + [1]
        return list(itertools.pairwise(sizes))

    def init_std(self, index: int) -> float:
        if index == 0:
            return self.init_std_first
        return self.init_std_output if index == self.layers else self.init_std_hidden

    def parameters(self) -> int:
        return sum(i * o + o for i, o in self.layer_sizes())

    def training_bytes(self, batch_size: int, optimizer: str = "adam") -> int:
        """A lower bound of the memory training takes: the weights, their gradients and the
        optimizer's state, and for one batch what every layer keeps for the backward pass
        (its input) and the gradient flowing back through it. Engines need more (copies for
        checkpoints, the allocator's slack), so a run refused for this could never fit."""
        state = (2 + OPTIMIZER_STATE.get(optimizer, 0)) * self.parameters()
        activations = 2 * batch_size * (self.inputs + self.width * self.layers + 1)
        return FLOAT_BYTES * (state + activations)

    def train_flops_per_event(self) -> float:
        """Floating-point operations per event per training step: a multiply-add is 2 FLOPs,
        forward once and backward twice (gradients of inputs and of weights)."""
        macs = sum(i * o for i, o in self.layer_sizes())
        return 6.0 * macs

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    "thesis": {},
    "baldi": {
        "layers": 4,
        "init_std_first": 0.1,
        "init_std_hidden": 0.05,
        "init_std_output": 0.001,
    },
}


def network_spec(inputs: int, recipe: str = "thesis", **overrides) -> NetworkSpec:
    """A preset ('thesis' or 'baldi') with explicit settings (layers, width, …) on top."""
    if recipe not in PRESETS:
        raise UsageError(f"--recipe {recipe!r}: choose one of {', '.join(PRESETS)}")
    settings = {**PRESETS[recipe], **{k: v for k, v in overrides.items() if v is not None}}
    return NetworkSpec(inputs=inputs, **settings)


def build_torch(spec: NetworkSpec, generator=None):
    """The network as a torch.nn.Sequential that outputs logits."""
    import torch
    from torch import nn

    act = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}[spec.activation]
    modules: list[nn.Module] = []
    for index, (n_in, n_out) in enumerate(spec.layer_sizes()):
        linear = nn.Linear(n_in, n_out)
        with torch.no_grad():
            linear.weight.normal_(0.0, spec.init_std(index), generator=generator)
            linear.bias.zero_()
        modules.append(linear)
        if index < spec.layers:
            modules.append(act())
            if spec.dropout > 0:
                modules.append(nn.Dropout(spec.dropout))
    return nn.Sequential(*modules)
