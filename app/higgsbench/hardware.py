"""The machine a run trains on: which device, how many threads, and what its matrix units can do.

``peak_gflops`` is measured, not looked up: a large float32 matrix product through the same
library and thread count the training uses, at the start of the run. Achieved GFLOP/s of the
training are quoted as a fraction of it.
"""

from __future__ import annotations

import os
import time

from higgsbench.errors import HiggsbenchError

PRECISIONS = ("fp32", "tf32", "bf16")


def resolve_device(name: str):
    """A torch.device for 'cpu', 'cuda' or 'cuda:N'; a clear error when no GPU is there."""
    import torch

    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            built = torch.version.cuda
            why = (
                f"this torch ({torch.__version__}) is a CPU-only build"
                if built is None
                else f"this torch ({torch.__version__}, CUDA {built}) finds no GPU: "
                "check `nvidia-smi` and the NVIDIA driver / container toolkit"
            )
            raise HiggsbenchError(
                f"--device {name}: no CUDA GPU is available; {why}. "
                "Use --device cpu to train on the CPU."
            )
        return torch.device(name)
    raise HiggsbenchError(f"--device {name!r}: choose cpu, cuda or cuda:N")


def set_threads(threads: int | None) -> int:
    """Intra-op threads for torch (default: every core this process may use)."""
    import torch

    n = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return n


def configure_precision(precision: str, device) -> None:
    """fp32 keeps IEEE float32 matrix products; tf32 lets CUDA matrix units round inputs to
    TF32; bf16 is applied by the engine through autocast."""
    import torch

    if precision not in PRECISIONS:
        raise HiggsbenchError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if device.type == "cuda":
        allow = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = allow
        torch.backends.cudnn.allow_tf32 = allow


def measure_gemm_gflops(device, precision: str = "fp32", seconds: float = 0.5) -> float:
    """GFLOP/s of a square matrix product on ``device`` (float32, or bf16/tf32 as asked)."""
    import torch

    cuda = device.type == "cuda"
    n = 8192 if cuda else 1024
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    configure_precision(precision, device)

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    for _ in range(3):
        a @ b
    sync()
    reps, start = 0, time.perf_counter()
    while True:
        a @ b
        reps += 1
        if reps % 4 == 0:
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
    return 2.0 * n**3 * reps / elapsed / 1e9
