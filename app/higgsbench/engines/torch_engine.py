"""engine=torch: plain PyTorch in one process, on the CPU or one CUDA GPU (the GPU node).
This module is imported only when the engine is chosen, so torch with it."""

from __future__ import annotations

import socket
import time

import torch

from higgsbench.core import hardware
from higgsbench.core.config import RunConfig, TrainOutcome
from higgsbench.core.network import NetworkSpec
from higgsbench.data.prepared import PreparedDataset
from higgsbench.engines import onednn
from higgsbench.engines.torch_setup import build_model, build_optimizer
from higgsbench.engines.torch_training import DeviceData, fit, predict, save


def train(config: RunConfig, data: PreparedDataset, spec: NetworkSpec) -> TrainOutcome:
    started = time.perf_counter()
    device, threads, fused, extra = _hardware(config)
    cpu = device.type == "cpu"
    # the peak in the run's own arithmetic and library: fraction_of_peak compares like with like
    peak = hardware.measure_gemm_gflops(
        device, config.precision, product=onednn.product if fused else None
    )
    gemm_seconds = time.perf_counter() - started

    torch.manual_seed(config.seed)
    rows = {"train": config.max_train_rows, "val": None, "test": None}
    splits = {name: data.load(name, config.features, max_rows=n) for name, n in rows.items()}
    train_data, val_data, test_data = (DeviceData(s.x, s.y, device) for s in splits.values())
    model, _ = build_model(spec, config.seed, device, fuse=fused)
    optimizer, schedule = build_optimizer(
        config.recipe, config.optimizer, config.lr, model.parameters(), device.type
    )
    # Start-up: everything from here back to the engine's start, less the GEMM measurement.
    startup = time.perf_counter() - started - gemm_seconds
    settings = ("epochs", "batch_size", "seed", "precision", "cuda_graphs", "until_plateau")
    state, facts = fit(
        model,
        optimizer,
        train_data,
        val_data,
        **{name: getattr(config, name) for name in settings},
        checkpoint=config.out / "checkpoint.pt",
        resume=config.resume,
        show_progress=config.progress,
        schedule=schedule,
    )
    _, scores = predict(model, test_data, config.precision)
    save(model.state_dict(), config.out / "model.pt")  # whole, or a full disk said as such

    extra.update(
        cuda_graph=facts["cuda_graph"],
        steps_per_epoch=facts["steps_per_epoch"],
        gemm_seconds=gemm_seconds,
        peak_precision=hardware.peak_precision(config.precision, device),
        **_schedule_and_plateau(config, state, schedule),
    )
    return TrainOutcome(
        device=str(device) if cpu else f"{device} ({torch.cuda.get_device_name(device)})",
        nodes=1,
        cores_per_node=threads if cpu else 0,
        hosts=[socket.gethostname()],
        startup_seconds=startup,
        epoch_seconds=state.epoch_seconds,
        history=state.history,
        test_labels=splits["test"].y,
        test_scores=scores,
        train_rows=len(train_data),
        train_rows_per_epoch=facts["steps_per_epoch"] * config.batch_size,
        peak_gflops=peak,
        extra=extra,
    )


def _hardware(config: RunConfig):
    """The device, the threads, whether the dense layers go through oneDNN, and what the
    record says of them."""
    device = hardware.resolve_device(config.device)
    cpu = device.type == "cpu"
    # one process on one node: --cores-per-node is its thread count unless --threads says
    threads = hardware.set_threads(config.threads or config.cores_per_node)
    hardware.configure_precision(config.precision, device)
    # float32 on a CPU: the dense layers through oneDNN (engines/onednn.py)
    fused = cpu and config.precision == "fp32" and onednn.available()
    extra = {
        "threads": threads,
        "kernels": "onednn" if fused else "torch",
        "malloc_keeps_freed_memory": cpu and hardware.keep_freed_memory(),
    }
    return device, threads, fused, extra


def _schedule_and_plateau(config: RunConfig, state, schedule) -> dict:
    """What the record says of a recipe's schedule and of --until-plateau."""
    extra = {}
    if schedule is not None:
        extra["schedule"] = {**schedule.to_dict(), "epochs": state.schedule_log}
    if config.until_plateau:
        extra["plateau"] = _plateau(config, state, schedule)
    return extra


def _plateau(config: RunConfig, state, schedule) -> dict:
    """How --until-plateau ended: a recipe's own rule (the last epoch is tested), or the
    best validation epoch (whose weights are tested)."""
    if schedule is not None:
        return {
            "rule": f"recipe {config.recipe}: validation objective",
            "stopped_early": len(state.history) < config.epochs,
            "test_model": "weights of the last epoch (as the recipe's authors)",
        }
    best = max(state.history, key=lambda h: h.val_auc)
    return {
        "best_epoch": best.epoch,
        "best_val_auc": best.val_auc,
        "seconds_to_best": best.wall_seconds,
        "train_seconds_to_best": sum(state.epoch_seconds[: best.epoch]),
        "test_model": "weights of the best validation epoch",
    }
