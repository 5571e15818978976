"""Where a two-rank DDP step loses time on this machine, outside Spark: the torch engine's
float32 step (the thesis network through oneDNN, fused Adam, one thread, pinned to a core)
timed as the median of 300 steps after 30 warm-up steps.

  alone 4096   one process, the global batch: the 1-worker run's step
  alone 2048   one process, half the batch: a rank's share with nothing beside it
  indep 2048   two processes at once, one per core, no communication: what sharing the
               machine (caches, memory) costs
  ddp 2048     two DDP ranks over gloo on loopback: the all-reduce added (one bucket, after
               the backward: DDP's default 25 MB bucket holds the whole 0.75 MB of gradients)
  ddp-small    the same with 0.1 MB buckets, so the all-reduce overlaps the backward

Run with both cores idle: `python ddp_probe.py` (about 2 minutes). It also times the
all-reduce of the gradients alone, as the ranks see it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

STEPS, WARM = 300, 30
MODES = [("alone", 4096, 1), ("alone", 2048, 1), ("indep", 2048, 2), ("ddp", 2048, 2)]
MODES.append(("ddp-small", 2048, 2))


def step_ms(model, batch: int) -> float:
    import torch

    from higgsbench import optimizers

    opt = optimizers.build_torch("adam", model.parameters(), None)
    x, y = torch.randn(batch, 28), (torch.rand(batch, 1) > 0.5).float()
    loss_fn = torch.nn.BCELoss()
    times = []
    for i in range(WARM + STEPS):
        began = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x).clamp(1e-6, 1 - 1e-6), y).backward()
        opt.step()
        if i >= WARM:
            times.append(time.perf_counter() - began)
    return statistics.median(times) * 1e3


def rank(mode: str, core: int, batch: int) -> dict:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from higgsbench import hardware, network
    from higgsbench.engines import onednn
    from higgsbench.network import network_spec

    os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    hardware.keep_freed_memory()
    model = onednn.fuse(
        network.build_torch(network_spec(28, "thesis"), generator=torch.Generator().manual_seed(1))
    )[0]
    out = {"mode": mode, "core": core, "batch": batch}
    if mode == "alone":
        return {**out, "step_ms": step_ms(model, batch)}
    dist.init_process_group("gloo", rank=core, world_size=2)
    try:
        if mode == "indep":
            dist.barrier()
            return {**out, "step_ms": step_ms(model, batch)}
        ddp = DistributedDataParallel(model, bucket_cap_mb=0.1 if mode == "ddp-small" else 25)
        dist.barrier()
        out["step_ms"] = step_ms(ddp, batch)
        flat = torch.zeros(sum(p.numel() for p in model.parameters()))
        for _ in range(10):
            dist.all_reduce(flat)
        began = time.perf_counter()
        for _ in range(100):
            dist.all_reduce(flat)
        return {**out, "allreduce_ms": (time.perf_counter() - began) * 10}
    finally:
        dist.destroy_process_group()


def run(mode: str, batch: int, processes: int, port: int) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    env.update(MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, mode, str(core), str(batch)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for core in range(processes)
    ]
    return [json.loads(p.communicate()[0]) for p in procs]


def main() -> None:
    results: dict[str, list[float]] = {}
    for repeat in range(2):
        for i, (mode, batch, processes) in enumerate(MODES):
            for r in run(mode, batch, processes, 29600 + 10 * repeat + i):
                results.setdefault(f"{mode} {batch}", []).append(r["step_ms"])
                if "allreduce_ms" in r:
                    results.setdefault("all-reduce alone", []).append(r["allreduce_ms"])
    for name, values in results.items():
        print(f"{name:17s} median {statistics.median(values):6.2f} ms  {sorted(values)}")
    alone = statistics.median(results["alone 4096"])
    for mode in ("indep 2048", "ddp 2048", "ddp-small 2048"):
        efficiency = alone / (2 * statistics.median(results[mode]))
        print(f"two-rank efficiency against alone 4096, {mode}: {efficiency:.0%}")


if __name__ == "__main__":
    if len(sys.argv) == 4:
        print(json.dumps(rank(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
    else:
        main()
