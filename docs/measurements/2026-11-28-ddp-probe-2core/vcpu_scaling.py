"""What two cores of this machine deliver together against one alone, with nothing but
oneDNN's float32 products (a DDP rank's step on 2048 events: 2048 × 300 × 300 forward and
backward, through the engine's own oneDNN entry point), one thread per process.

Run with both cores idle: `python vcpu_scaling.py`. It times one process pinned to core 0
alone, then two identical processes pinned to cores 0 and 1 at once, each several times
(alternating), and prints events/s per process and the ratio two-together ÷ one-alone.
That ratio is the ceiling of any two-rank data-parallel speed-up here, communication aside:
parallel efficiency cannot exceed ratio ÷ 2.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

BATCH, WIDTH, SECONDS, REPEATS = 2048, 300, 8.0, 3


def worker() -> None:
    import torch

    from higgsbench import hardware
    from higgsbench.engines.onednn import linear

    hardware.keep_freed_memory()
    torch.set_num_threads(1)
    x = torch.randn(BATCH, WIDTH)
    w = torch.randn(WIDTH, WIDTH)
    g = torch.randn(BATCH, WIDTH)
    gt, xt, wt = g.t().contiguous(), x.t().contiguous(), w.t().contiguous()

    def step():  # the three products of one dense layer's training step
        linear(x, w, None, "tanh")
        linear(g, wt, None)
        linear(gt, xt, None)

    for _ in range(20):
        step()
    n, began = 0, time.perf_counter()
    while time.perf_counter() - began < SECONDS:
        step()
        n += 1
    seconds = time.perf_counter() - began
    gflops = n * 3 * 2 * BATCH * WIDTH * WIDTH / seconds / 1e9
    print(json.dumps({"gflops": gflops}))


def run(cores: list[int]) -> list[float]:
    procs = [
        subprocess.Popen(
            ["taskset", "-c", str(c), sys.executable, __file__, "--worker"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for c in cores
    ]
    return [json.loads(p.communicate()[0])["gflops"] for p in procs]


def main() -> None:
    alone, together = [], []
    for _ in range(REPEATS):
        alone.append(run([0])[0])
        together.append(sum(run([0, 1])))
    ratios = [t / a for a, t in zip(alone, together, strict=True)]
    print(f"one process, core 0 alone:      {[round(v) for v in alone]} GFLOP/s")
    print(f"two processes, cores 0 and 1:   {[round(v) for v in together]} GFLOP/s in all")
    print(
        f"two together / one alone: median {statistics.median(ratios):.2f} "
        f"({min(ratios):.2f}-{max(ratios):.2f}); efficiency ceiling "
        f"{statistics.median(ratios) / 2:.0%}"
    )


if __name__ == "__main__":
    worker() if "--worker" in sys.argv else main()
