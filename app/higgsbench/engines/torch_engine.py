"""engine=torch: plain PyTorch in one process, on the CPU or one CUDA GPU (the GPU node)."""

from __future__ import annotations

import socket
import time

from higgsbench.core.config import RunConfig, TrainOutcome
from higgsbench.core.network import NetworkSpec
from higgsbench.data.prepared import PreparedDataset


def train(config: RunConfig, data: PreparedDataset, spec: NetworkSpec) -> TrainOutcome:
    started = time.perf_counter()
    import torch

    from higgsbench.core import hardware, network, optimizers, recipes
    from higgsbench.engines import onednn
    from higgsbench.engines.torch_training import DeviceData, fit, predict, save

    device = hardware.resolve_device(config.device)
    cpu = device.type == "cpu"
    # one process on one node: --cores-per-node is its thread count unless --threads says
    threads = hardware.set_threads(config.threads or config.cores_per_node)
    hardware.configure_precision(config.precision, device)  # refuses emulated bf16 on a CPU
    keeps_memory = cpu and hardware.keep_freed_memory()
    # float32 on a CPU: the dense layers through oneDNN (engines/onednn.py)
    fused = cpu and config.precision == "fp32" and onednn.available()
    kernels = "onednn" if fused else "torch"
    # the peak in the run's own arithmetic and library: fraction_of_peak compares like with like
    peak = hardware.measure_gemm_gflops(
        device, config.precision, product=onednn.product if fused else None
    )
    gemm_seconds = time.perf_counter() - started

    torch.manual_seed(config.seed)
    train_split = data.load("train", config.features, max_rows=config.max_train_rows)
    val_split = data.load("val", config.features)
    test_split = data.load("test", config.features)
    train_data = DeviceData(train_split.x, train_split.y, device)
    val_data = DeviceData(val_split.x, val_split.y, device)
    test_data = DeviceData(test_split.x, test_split.y, device)

    model = network.build_torch(spec, generator=torch.Generator().manual_seed(config.seed)).to(
        device
    )
    if fused:
        model, _ = onednn.fuse(model)
    # a recipe's schedule (recipes.py), from the learning rate the run starts with
    schedule = recipes.schedule_for(
        config.recipe, config.optimizer, optimizers.learning_rate(config.optimizer, config.lr)
    )
    optimizer = optimizers.build_torch(
        config.optimizer,
        model.parameters(),
        config.lr,
        device.type,
        **(schedule.optimizer_options() if schedule is not None else {}),
    )
    # Start-up: everything from here back to the engine's start, less the GEMM measurement.
    startup = time.perf_counter() - started - gemm_seconds
    state, facts = fit(
        model,
        optimizer,
        train_data,
        val_data,
        epochs=config.epochs,
        batch_size=config.batch_size,
        seed=config.seed,
        precision=config.precision,
        cuda_graphs=config.cuda_graphs,
        until_plateau=config.until_plateau,
        checkpoint=config.out / "checkpoint.pt",
        resume=config.resume,
        show_progress=config.progress,
        schedule=schedule,
    )
    _, scores = predict(model, test_data, config.precision)
    save(model.state_dict(), config.out / "model.pt")  # whole, or a full disk said as such

    extra = {
        "threads": threads,
        "kernels": kernels,
        "malloc_keeps_freed_memory": keeps_memory,
        "cuda_graph": facts["cuda_graph"],
        "steps_per_epoch": facts["steps_per_epoch"],
        "gemm_seconds": gemm_seconds,
        "peak_precision": hardware.peak_precision(config.precision, device),
    }
    if schedule is not None:
        extra["schedule"] = {**schedule.to_dict(), "epochs": state.schedule_log}
    if config.until_plateau and schedule is not None:
        extra["plateau"] = {
            "rule": f"recipe {config.recipe}: validation objective",
            "stopped_early": len(state.history) < config.epochs,
            "test_model": "weights of the last epoch (as the recipe's authors)",
        }
    elif config.until_plateau:
        best = max(state.history, key=lambda h: h.val_auc)
        extra["plateau"] = {
            "best_epoch": best.epoch,
            "best_val_auc": best.val_auc,
            "seconds_to_best": best.wall_seconds,
            "train_seconds_to_best": sum(state.epoch_seconds[: best.epoch]),
            "test_model": "weights of the best validation epoch",
        }
    return TrainOutcome(
        device=str(device) if cpu else f"{device} ({torch.cuda.get_device_name(device)})",
        nodes=1,
        cores_per_node=threads if cpu else 0,
        hosts=[socket.gethostname()],
        startup_seconds=startup,
        epoch_seconds=state.epoch_seconds,
        history=state.history,
        test_labels=test_split.y,
        test_scores=scores,
        train_rows=len(train_data),
        train_rows_per_epoch=facts["steps_per_epoch"] * config.batch_size,
        peak_gflops=peak,
        extra=extra,
    )
