"""Can this torch compute on every GPU it sees? Run inside the GPU image by the gpu_node role
(`docker run --gpus all … python -c <this file> <minimum>`, tasks/check.yml) and by
scripts/gpu-check.sh before its first step: `python check_gpu.py [MINIMUM]`.

torch.cuda.is_available() is not enough: it only asks the driver. A card older than the oldest
architecture the wheels are built for (CUDA 13 wheels: sm_75, Turing, and newer; a V100 is
sm_70) is "available" and fails at its first kernel. So each card must have a compute
capability of at least MINIMUM (default 7.5) and then run a real kernel. Exits non-zero with
one line per problem naming the card, what it has and what to do; prints one line per card
otherwise.
"""

import sys

import torch

MINIMUM = sys.argv[1] if len(sys.argv) > 1 else "7.5"


def main() -> int:
    minimum = tuple(int(part) for part in MINIMUM.split("."))
    built = f"torch {torch.__version__} (CUDA {torch.version.cuda or 'none: a CPU build'})"
    if not torch.cuda.is_available():
        print(
            f"{built} sees no CUDA device: run it with --gpus all on a host whose nvidia-smi "
            "lists the card (driver, NVIDIA container toolkit)",
            file=sys.stderr,
        )
        return 1
    arches = " ".join(torch.cuda.get_arch_list()) or "?"
    problems = []
    for index in range(torch.cuda.device_count()):
        name = torch.cuda.get_device_name(index)
        major, minor = torch.cuda.get_device_capability(index)
        if (major, minor) < minimum:
            problems.append(
                f"GPU {index} {name}: compute capability {major}.{minor}, below {MINIMUM}: "
                f"{built} carries no code for it (built for {arches}; CUDA 13 wheels dropped "
                "sm_70 and older), so it would pass torch.cuda.is_available() and fail at its "
                f"first kernel. Use a card of compute capability {MINIMUM} or newer (T4 7.5, "
                "A10 and A100 8.x, L4 8.9, H100 9.0…): another GPU flavor "
                "(openstack_gpu_flavor) or GPU host"
            )
            continue
        try:
            total = torch.ones(8, device=f"cuda:{index}").sum().item()
        except RuntimeError as error:  # e.g. "no kernel image is available for execution"
            problems.append(f"GPU {index} {name}: a CUDA kernel failed: {error}")
            continue
        if total != 8:
            problems.append(f"GPU {index} {name}: a CUDA kernel summed 8 ones to {total}")
            continue
        print(f"GPU {index} {name}: compute capability {major}.{minor}, {built}: a kernel ran")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
