"""float32 CPU training through oneDNN: each dense layer's matrix products, bias and tanh.

Why: torch sends a CPU float32 matrix product to MKL, and MKL runs its AVX2 kernels on AMD
processors; oneDNN, which torch bundles (and through which TensorFlow runs Keras), runs
AVX-512 on the same cores. Measured on our 2-vCPU AMD EPYC with one thread, a
4096 × 300 × 300 product: MKL 89–96 GFLOP/s, oneDNN 214 GFLOP/s. The dense layer here
computes all three products of a training step with oneDNN (forward; backward to the input
and to the weights), adds the bias and applies tanh in the forward product's epilogue (as
Keras does), and takes tanh's derivative from the stored output (1 − y²).

The parameters stay those of the network's ``nn.Linear`` layers (``fuse`` wraps the same
modules: the state_dict, checkpoints and DDP are unchanged). The fused path runs only on a CPU
in float32 outside autocast (bf16 keeps torch's own path, which is oneDNN already); elsewhere
the layers run as they are. ``HIGGSBENCH_CPU_KERNELS=torch`` turns it off (to compare).
"""

from __future__ import annotations

import os

import torch
from torch import nn

KERNELS_ENV = "HIGGSBENCH_CPU_KERNELS"


def available() -> bool:
    """Whether this torch has oneDNN and its fused linear operator, and it is not turned off."""
    choice = os.environ.get(KERNELS_ENV, "onednn")
    if choice not in ("onednn", "torch"):
        raise ValueError(f"{KERNELS_ENV}={choice!r}: choose onednn or torch")
    return (
        choice == "onednn"
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def linear(x: torch.Tensor, weight: torch.Tensor, bias, activation: str = "none"):
    """x · weightᵀ (+ bias), then ``activation`` ('none' or 'tanh'), in one oneDNN call."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, activation, [], "")


def product(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x · yᵀ through oneDNN: the products a dense layer here computes, for timing the peak
    (hardware.measure_gemm_gflops) with the library the training uses."""
    return linear(x, y, None)


class _DenseFunction(torch.autograd.Function):
    """A dense layer (and its tanh) forward and backward, every product through oneDNN."""

    @staticmethod
    def forward(ctx, x, weight, bias, tanh: bool):
        y = linear(x, weight, bias, "tanh" if tanh else "none")
        ctx.tanh = tanh
        ctx.save_for_backward(x, weight, y if tanh else None)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, weight, y = ctx.saved_tensors
        # tanh' = 1 − tanh², from the output kept in the forward
        grad_z = torch.ops.aten.tanh_backward(grad_y, y) if ctx.tanh else grad_y.contiguous()
        grad_x = None
        if ctx.needs_input_grad[0]:  # the first layer's input (the data) needs none
            grad_x = linear(grad_z, weight.t().contiguous(), None)
        grad_w = linear(grad_z.t(), x.t(), None)  # (out × batch) · (batch × in)
        return grad_x, grad_w, grad_z.sum(0), None


def usable(x: torch.Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and x.dim() == 2
    )


class FusedSequential(nn.Sequential):
    """The network's own layers (same modules, same state_dict keys) whose forward runs each
    Linear, with the Tanh after it, as one _DenseFunction where ``usable``."""

    def forward(self, x):
        if not usable(x):
            return super().forward(x)
        layers = list(self)
        i = 0
        while i < len(layers):
            layer = layers[i]
            if isinstance(layer, nn.Linear) and layer.bias is not None:
                tanh = i + 1 < len(layers) and isinstance(layers[i + 1], nn.Tanh)
                x = _DenseFunction.apply(x, layer.weight, layer.bias, tanh)
                i += 2 if tanh else 1
            else:
                x = layer(x)
                i += 1
        return x


def fuse(model: nn.Sequential) -> tuple[nn.Sequential, str]:
    """The model to train on a CPU in float32, and which kernels it uses: 'onednn' (the same
    modules in a FusedSequential) or 'torch' (the model itself)."""
    if not available():
        return model, "torch"
    return FusedSequential(*model), "onednn"
