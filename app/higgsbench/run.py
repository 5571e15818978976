"""Run one training job: check the configuration, call the engine, write result.json.

The same sequence for every engine: the data flow prepared/ → engine → result.json.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path

from higgsbench.common import limits
from higgsbench.common.atomic import write_text_atomic
from higgsbench.common.errors import UsageError
from higgsbench.common.limits import at_least, positive
from higgsbench.common.paths import (
    OUTPUT_MARKER,
    claim_output_dir,
    is_ours,
    missing_dirs,
    remove_made,
)
from higgsbench.core import recipes
from higgsbench.core.checks import network_fits
from higgsbench.core.config import RunConfig
from higgsbench.core.hardware import check_precision
from higgsbench.core.network import NetworkSpec, network_spec
from higgsbench.core.optimizers import check_optimizer, learning_rate
from higgsbench.data.layout import feature_columns
from higgsbench.data.prepared import PreparedDataset
from higgsbench.engines import ENGINES, SINGLE_PROCESS, bigdl_engine
from higgsbench.records.result import build_record, result_line, write_json_atomic

# What a run writes into its directory besides result.json; a run that ends without a result
# removes them, unless it left a checkpoint to resume from.
RUN_FILES = ("config.json", "model.pt", "model.keras", "model.bigdl", "checkpoint-history.json")
CHECKPOINTS = ("checkpoint.pt", "checkpoint.keras")


def run_training(config: RunConfig) -> dict:
    spec, data = check_config(config)
    result_path = config.out / "result.json"
    if config.resume and not (config.out / "checkpoint.pt").exists():
        raise UsageError(f"--resume: no checkpoint in {config.out} to resume from")
    if result_path.exists() and not config.resume:
        raise UsageError(
            f"{result_path}: exists already; choose another --out, or --resume to continue"
        )
    experiment_id = None
    if config.track:  # the server must answer before training, not after it
        from higgsbench import tracking

        experiment_id = tracking.check(config.track)
    # what to remove if the run ends without a result, known before anything is made
    new, made = not is_ours(config.out), missing_dirs(config.out)
    try:
        claim_output_dir(config.out, "--out", "run")
        write_text_atomic(config.out / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
        engine = importlib.import_module(ENGINES[config.engine])
        outcome = engine.train(config, data, spec)
    except BaseException:
        _remove_unfinished(config.out, made, new)
        raise
    record = build_record(config, spec, data, outcome, learning_rate(config.optimizer, config.lr))
    write_json_atomic(result_path, record)
    if config.track:
        run_id = tracking.log_run(config, record, experiment_id)
        print(
            f"tracked: {config.track.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}",
            file=sys.stderr,
            flush=True,
        )
    print(result_line(record), flush=True)
    return record


def _remove_unfinished(out: Path, made: list[Path], marked_here: bool) -> None:
    """A run that failed or was stopped before its result leaves its directory as it found
    it: the files a run writes are removed, and the directory if this run made it. A
    checkpoint keeps everything, for --resume. Whatever else is there stays, and nothing is
    removed from a directory that is not a run's (a refused --out)."""
    if is_ours(out) and not any((out / name).exists() for name in CHECKPOINTS):
        for name in RUN_FILES + ((OUTPUT_MARKER,) if marked_here else ()):
            (out / name).unlink(missing_ok=True)
        for summary in out.glob(f"{bigdl_engine.SUMMARY_PREFIX}*"):
            shutil.rmtree(summary, ignore_errors=True)
    remove_made(made)


def check_config(config: RunConfig) -> tuple[NetworkSpec, PreparedDataset]:
    """Every setting checked before the run directory is made: a refused run leaves nothing."""
    if config.engine not in ENGINES:
        raise UsageError(f"--engine {config.engine!r}: choose one of {', '.join(ENGINES)}")
    recipes.check_engine(config.recipe, config.engine)
    if config.engine in SINGLE_PROCESS:  # bf16 on a CPU without it: refused, not emulated
        check_precision(config.precision, config.device)
    try:
        check_optimizer(config.optimizer)
        inputs = len(feature_columns(config.features))
        spec = network_spec(inputs, config.recipe, layers=config.layers, width=config.width)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for option, value in (
        ("--epochs", config.epochs),
        ("--batch-size", config.batch_size),
        ("--max-train-rows", config.max_train_rows),
        ("--nodes", config.nodes),
        ("--cores-per-node", config.cores_per_node),
    ):
        at_least(option, value)
    limits.threads("--threads", config.threads)
    limits.seed("--seed", config.seed)
    positive("--lr", config.lr)
    positive("--worker-timeout", config.worker_timeout)
    if config.engine in SINGLE_PROCESS and config.nodes != 1:
        raise UsageError(
            f"--nodes {config.nodes}: the {config.engine} engine trains in one process; "
            "--nodes is for the spark and bigdl engines"
        )
    limits.no_link_loop(config.data)
    data = PreparedDataset(config.data)
    train_rows = data.rows("train")
    if config.max_train_rows is not None and config.max_train_rows < train_rows:
        train_rows = config.max_train_rows
        of = f"(--max-train-rows {config.max_train_rows})"
    else:
        of = f"of {config.data}"
    if config.batch_size > train_rows:
        raise UsageError(
            f"--batch-size {config.batch_size} exceeds the {train_rows} training rows {of}"
        )
    trains_here = config.engine in SINGLE_PROCESS and not config.on_gpu
    network_fits(spec, config.batch_size, config.optimizer, trains_here)
    return spec, data
