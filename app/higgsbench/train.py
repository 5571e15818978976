"""Run one training job: check the configuration, call the engine, write result.json.

The same sequence for every engine: the data flow prepared/ → engine → result.json.
"""

from __future__ import annotations

import importlib
import json
import sys

from higgsbench import recipes
from higgsbench.checks import at_least, positive
from higgsbench.contract import RunConfig
from higgsbench.data.prepared import PreparedDataset
from higgsbench.engines import ENGINES
from higgsbench.errors import HiggsbenchError
from higgsbench.features import feature_columns
from higgsbench.hardware import check_precision
from higgsbench.network import NetworkSpec, network_spec
from higgsbench.optimizers import check_optimizer, learning_rate
from higgsbench.paths import make_dirs, remove_made
from higgsbench.results import build_record, result_line, write_json_atomic

# Engines that train in one process: --nodes means nothing to them.
SINGLE_PROCESS = ("torch", "keras")


def run_training(config: RunConfig) -> dict:
    spec, data = check_config(config)
    result_path = config.out / "result.json"
    if config.resume and not (config.out / "checkpoint.pt").exists():
        raise HiggsbenchError(f"--resume: no checkpoint in {config.out} to resume from")
    if result_path.exists() and not config.resume:
        raise HiggsbenchError(
            f"{result_path}: exists already; choose another --out, or --resume to continue"
        )
    if config.out.exists() and not config.out.is_dir():
        raise HiggsbenchError(f"--out {config.out}: is a file; a run directory is needed")
    experiment_id = None
    if config.track:  # the server must answer before training, not after it
        from higgsbench import tracking

        experiment_id = tracking.check(config.track)
    made = make_dirs(config.out)
    fresh = not any(config.out.iterdir())
    config_path = config.out / "config.json"
    config_path.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    try:
        engine = importlib.import_module(ENGINES[config.engine])
        outcome = engine.train(config, data, spec)
    except BaseException:
        # An engine that fails before it produced anything (no GPU, no cluster, a setting
        # it refuses) leaves the run directory as it found it; a checkpoint stays, for --resume.
        if fresh and [p.name for p in config.out.iterdir()] == ["config.json"]:
            config_path.unlink()
            remove_made(made)
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


def check_config(config: RunConfig) -> tuple[NetworkSpec, PreparedDataset]:
    """Every setting checked before the run directory is made: a refused run leaves nothing."""
    if config.engine not in ENGINES:
        raise HiggsbenchError(f"--engine {config.engine!r}: choose one of {', '.join(ENGINES)}")
    recipes.check_engine(config.recipe, config.engine)
    if config.engine in SINGLE_PROCESS:  # bf16 on a CPU without it: refused, not emulated
        check_precision(config.precision, config.device)
    try:
        check_optimizer(config.optimizer)
        inputs = len(feature_columns(config.features))
        spec = network_spec(inputs, config.recipe, layers=config.layers, width=config.width)
    except ValueError as exc:
        raise HiggsbenchError(str(exc)) from None
    for option, value in (
        ("--epochs", config.epochs),
        ("--batch-size", config.batch_size),
        ("--max-train-rows", config.max_train_rows),
        ("--threads", config.threads),
        ("--nodes", config.nodes),
        ("--cores-per-node", config.cores_per_node),
    ):
        at_least(option, value)
    positive("--lr", config.lr)
    positive("--worker-timeout", config.worker_timeout)
    if config.engine in SINGLE_PROCESS and config.nodes != 1:
        raise HiggsbenchError(
            f"--nodes {config.nodes}: the {config.engine} engine trains in one process; "
            "--nodes is for the spark and bigdl engines"
        )
    data = PreparedDataset(config.data)
    train_rows = data.rows("train")
    if config.max_train_rows is not None and config.max_train_rows < train_rows:
        train_rows = config.max_train_rows
        of = f"(--max-train-rows {config.max_train_rows})"
    else:
        of = f"of {config.data}"
    if config.batch_size > train_rows:
        raise HiggsbenchError(
            f"--batch-size {config.batch_size} exceeds the {train_rows} training rows {of}"
        )
    return spec, data
