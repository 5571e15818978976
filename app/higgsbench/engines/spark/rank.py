"""What each rank of engine=spark runs, inside the process TorchDistributor starts on a worker.

torchrun has set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT. The rank joins a gloo
process group, reads its own contiguous shard of the training Parquet (equal shards, so every
rank takes the same number of batches: synchronous training deadlocks otherwise), and trains
the network wrapped in DistributedDataParallel with the same loop as the single-process
engine. Rank 0 evaluates the validation set, writes the epoch checkpoints and returns the
history, every rank's epoch times and host, and the trained weights to the driver.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from datetime import timedelta
from pathlib import Path

from higgsbench.common.progress import remote_bar
from higgsbench.core.network import NetworkSpec
from higgsbench.data.prepared import PreparedDataset


class DistributedCoordinator:
    """torch.distributed behind the Coordinator interface of torch_training.fit."""

    def __init__(self, dist):
        self.dist = dist
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        self.is_main = self.rank == 0

    def barrier(self) -> None:
        self.dist.barrier()

    def mean(self, value: float) -> float:
        import torch

        t = torch.tensor([value], dtype=torch.float64)
        self.dist.all_reduce(t)
        return float(t.item()) / self.world

    def decide(self, flag: bool) -> bool:
        import torch

        t = torch.tensor([1 if flag else 0], dtype=torch.int32)
        self.dist.broadcast(t, src=0)
        return bool(t.item())


def time_allreduce(dist, numel: int, reps: int = 10) -> float:
    """Median seconds of an all-reduce of ``numel`` float32 values across the group."""
    import statistics

    import torch

    buffer = torch.zeros(numel)
    for _ in range(2):
        dist.all_reduce(buffer)
    times = []
    for _ in range(reps):
        dist.barrier()
        began = time.perf_counter()
        dist.all_reduce(buffer)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def measure_allreduce(dist, parameters: int) -> dict:
    """The two numbers the scaling model needs: per-hop latency and the gradient's cost."""
    world = dist.get_world_size()
    full = time_allreduce(dist, parameters)
    tiny = time_allreduce(dist, 1)
    hops = 2 * (world - 1)
    volume = 2 * (world - 1) / world * parameters * 4
    return {
        "bytes": parameters * 4,
        "seconds": full,
        "latency_seconds": tiny / hops,
        "bytes_per_second": volume / max(full - tiny, 1e-9),
    }


def loopback_interface() -> str | None:
    """The network interface that holds 127.0.0.1 (``lo`` on Linux)."""
    import psutil

    return next(
        (
            name
            for name, addresses in psutil.net_if_addrs().items()
            if any(a.address == "127.0.0.1" for a in addresses)
        ),
        None,
    )


def keep_gloo_on_loopback() -> None:
    """On a local cluster (rendezvous on 127.0.0.1), make gloo listen on loopback too: without
    GLOO_SOCKET_IFNAME it binds to whatever address the hostname resolves to."""
    import ipaddress

    try:
        local = ipaddress.ip_address(socket.gethostbyname(os.environ.get("MASTER_ADDR", "")))
    except (OSError, ValueError):
        return
    interface = loopback_interface() if local.is_loopback else None
    if interface:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", interface)


def rank_main(job: dict) -> dict | None:
    started = time.perf_counter()
    # from the driver's distributor.run() to here: the barrier stage scheduled, torchrun and
    # this Python started (one clock on a local cluster; NTP-close on real nodes)
    launch = max(0.0, time.time() - job["run_started_at"])
    import torch
    import torch.distributed as dist

    from higgsbench.core import hardware

    torch.set_num_threads(job["cores"])
    keeps_memory = hardware.keep_freed_memory()
    keep_gloo_on_loopback()
    dist.init_process_group("gloo", timeout=timedelta(seconds=job["worker_timeout"]))
    joined = time.perf_counter()  # the process group formed: every rank has started
    times = {"started": started, "launch_seconds": launch, "joined": joined}
    try:
        return _train_rank(job, dist, DistributedCoordinator(dist), times, keeps_memory)
    finally:
        dist.destroy_process_group()


def _train_rank(job: dict, dist, co, times: dict, keeps_memory: bool) -> dict | None:
    """This rank's shard, model and training; rank 0 returns what the driver needs."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from higgsbench.engines.torch_setup import build_model, build_optimizer
    from higgsbench.engines.torch_training import DeviceData, fit, unwrap

    rank, world, started, joined = co.rank, co.world, times["started"], times["joined"]
    shard, val = _shard(job, co)
    times["data_seconds"] = time.perf_counter() - joined
    rank_batch = job["batch_size"] // world  # the global batch, shared
    cpu = torch.device("cpu")
    spec = NetworkSpec(**job["spec"])
    # Same seed everywhere (DDP also broadcasts rank 0's weights); oneDNN, as the torch engine
    model, kernels = build_model(spec, job["seed"], cpu, fuse=True)
    ddp = DistributedDataParallel(model)
    allreduce = measure_allreduce(dist, spec.parameters()) if world > 1 else None
    # a recipe's schedule: every rank steps the same number of batches, so every rank's
    # learning rate and momentum agree
    optimizer, schedule = build_optimizer(
        job["recipe"], job["optimizer"], job["lr"], ddp.parameters(), "cpu"
    )
    times["startup_seconds"] = time.perf_counter() - started
    state, facts = fit(
        ddp,
        optimizer,
        DeviceData(shard.x, shard.y, cpu),
        DeviceData(val.x, val.y, cpu) if val is not None else None,
        epochs=job["epochs"],
        batch_size=rank_batch,
        seed=job["seed"] + 7919 * rank,
        until_plateau=job["until_plateau"],
        checkpoint=Path(job["checkpoint"]),
        resume=job["resume"],
        # rank 0's bar, drawn by the driver (which decided whether it has a terminal)
        show_progress=job["progress"] and co.is_main,
        bar=remote_bar,
        coordinator=co,
        schedule=schedule,
    )
    mine = {
        "rank": rank,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "epoch_seconds": state.epoch_seconds,
        **{k: times[k] for k in ("startup_seconds", "launch_seconds", "data_seconds")},
        "group_seconds": joined - started,
        "wall_seconds": time.perf_counter() - started,
        "shard_rows": len(shard),
        # which rows this rank trained on (the tests compare them), hashed after training so
        # that it counts in neither the start-up nor an epoch
        "shard_sha256": shard.digest(),
        "batch_size": rank_batch,
        "steps_per_epoch": facts["steps_per_epoch"],
        "kernels": kernels,
        "malloc_keeps_freed_memory": keeps_memory,
        # equal on every rank when DDP kept the replicas in step (the tests compare them)
        "weights_sha256": weights_digest(unwrap(ddp)),
    }
    everyone: list = [None] * world
    dist.all_gather_object(everyone, mine)
    if not co.is_main:
        return None
    return _driver_reply(everyone, state, facts, rank_batch, allreduce, schedule, ddp)


def _shard(job: dict, co):
    """This rank's shard of the training rows, and the validation rows on rank 0 (which
    alone evaluates)."""
    data = PreparedDataset(job["data"])
    shard = data.load(
        "train", job["features"], shard=co.rank, num_shards=co.world, max_rows=job["max_train_rows"]
    )
    return shard, data.load("val", job["features"]) if co.is_main else None


def _driver_reply(
    everyone: list, state, facts: dict, rank_batch: int, allreduce, schedule, ddp
) -> dict:
    """What rank 0 hands back to the driver: every rank's facts, the history, the timing of
    the all-reduce, the schedule as applied and the trained weights."""
    from higgsbench.engines.torch_training import unwrap

    return {
        "ranks": everyone,
        # launch + the rank's own wall time: what the driver's run() spent in training
        "ranks_wall_seconds": max(r["launch_seconds"] + r["wall_seconds"] for r in everyone),
        "history": [h.__dict__ for h in state.history],
        "steps_per_epoch": facts["steps_per_epoch"],
        "rank_batch_size": rank_batch,
        "allreduce": allreduce,
        "schedule": (
            {**schedule.to_dict(), "epochs": state.schedule_log} if schedule is not None else None
        ),
        "weights": {k: v.detach().cpu().numpy() for k, v in unwrap(ddp).state_dict().items()},
    }


def weights_digest(model) -> str:
    """sha256 of a model's parameters and buffers, in state_dict order."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
