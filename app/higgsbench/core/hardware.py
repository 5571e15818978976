"""The machine a run trains on: which device, how many threads, and what its matrix units can do.

``peak_gflops`` is measured, not looked up: a large matrix product in the run's precision
(float32, or bfloat16 for ``--precision bf16``) through the same library and thread count the
training uses, at the start of the run. Achieved GFLOP/s of the training are quoted as a
fraction of it.

bfloat16 on the CPU runs only where the CPU computes it natively: AVX-512 BF16
(``avx512_bf16``) or AMX (``amx_bf16``) on x86, BF16 (``bf16``) on Arm. Elsewhere torch would
emulate it, slower than float32, so ``--precision bf16 --device cpu`` is refused naming the
missing instruction set. The CPU's flags are read from /proc/cpuinfo; the environment variable
HIGGSBENCH_CPU_FLAGS, when set, is read instead (flags separated by spaces or commas): tests use
it to play a CPU without them, and ``HIGGSBENCH_CPU_FLAGS=avx512_bf16`` runs bf16 emulated
where that is wanted anyway.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from higgsbench.common.errors import UsageError

PRECISIONS = ("fp32", "tf32", "bf16")
CPU_FLAGS_ENV = "HIGGSBENCH_CPU_FLAGS"
CPUINFO = Path("/proc/cpuinfo")
# CPU flags that compute bfloat16 natively: x86 AVX-512 BF16, x86 AMX, Arm BF16
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def cpu_flags() -> set[str] | None:
    """The CPU's instruction-set flags: HIGGSBENCH_CPU_FLAGS when set, else the `flags`
    (x86) or `Features` (Arm) line of /proc/cpuinfo; None when neither can be read."""
    override = os.environ.get(CPU_FLAGS_ENV)
    if override is not None:
        return set(override.replace(",", " ").split())
    try:
        text = CPUINFO.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return None


def check_cpu_bf16(flags: set[str] | None = None) -> str:
    """The flag through which this CPU computes bfloat16, or a one-line HiggsbenchError
    naming the instruction set it lacks."""
    flags = cpu_flags() if flags is None else flags
    found = [f for f in BF16_FLAGS if flags and f in flags]
    if found:
        return found[0]
    what = (
        f"cannot read the CPU's flags from {CPUINFO} to find" if flags is None else "this CPU has"
    )
    raise UsageError(
        f"--precision bf16 --device cpu: {what} neither AVX-512 BF16 (avx512_bf16) nor AMX "
        "(amx_bf16), so bfloat16 would only be emulated, slower than fp32; use --precision "
        f"fp32 (or set {CPU_FLAGS_ENV}=avx512_bf16 to run it emulated anyway)"
    )


def check_precision(precision: str, device: str) -> None:
    """Refuse a precision the device cannot compute natively, before anything is made
    (``device`` as the options name it: cpu, cuda, cuda:N)."""
    if precision == "bf16" and device == "cpu":
        check_cpu_bf16()


def peak_precision(precision: str, device) -> str:
    """The arithmetic measure_gemm_gflops times for a run in ``precision`` on ``device``."""
    if precision == "tf32" and device.type != "cuda":
        return "fp32"  # TF32 exists on CUDA matrix units only
    return precision


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
            raise UsageError(
                f"--device {name}: no CUDA GPU is available; {why}. "
                "Use --device cpu to train on the CPU."
            )
        return torch.device(name)
    raise UsageError(f"--device {name!r}: choose cpu, cuda or cuda:N")


def set_threads(threads: int | None) -> int:
    """Intra-op threads for torch (default: every core this process may use)."""
    import torch

    n = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return n


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(mmap_threshold: int = 256 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Let glibc's malloc keep freed memory in the process for the next step to reuse.

    By default a freed block of more than a few MB (an activation at batch 4096 is 4.9 MB)
    goes back to the kernel, and the next step's allocation of the same size faults in fresh
    zeroed pages: measured on our 2-vCPU EPYC, about a sixth of a torch CPU step. Every engine
    that trains on the CPU calls this once (Keras too: the comparison stays fair). Returns
    whether it applied (False where the C library is not glibc)."""
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(M_TRIM_THRESHOLD, trim_threshold)
    )


def configure_precision(precision: str, device) -> None:
    """fp32 keeps IEEE float32 matrix products; tf32 lets CUDA matrix units round inputs to
    TF32; bf16 is applied by the engine through autocast."""
    import torch

    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and device.type == "cpu":
        check_cpu_bf16()
    if device.type == "cuda":
        allow = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = allow
        torch.backends.cudnn.allow_tf32 = allow


def measure_gemm_gflops(
    device, precision: str = "fp32", seconds: float = 0.5, product=None
) -> float:
    """GFLOP/s of a square matrix product on ``device`` in ``precision``: float32, bfloat16
    operands for bf16, float32 with TF32 matrix units allowed for tf32 (CUDA). ``product``
    (x, y) -> x @ y is the library the training's products use: torch's own choice (MKL for
    CPU float32, oneDNN for CPU bfloat16, cuBLAS) unless an engine passes its own (the oneDNN
    dense layer's), so that a fraction of the peak compares a library with itself."""
    import torch

    if product is None:

        def product(x, y):
            return x @ y

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
        product(a, b)
    sync()
    reps, start = 0, time.perf_counter()
    while True:
        product(a, b)
        reps += 1
        if reps % 4 == 0:
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
    return 2.0 * n**3 * reps / elapsed / 1e9
