"""Run one training job: check the configuration, call the engine, write result.json.

The same sequence for every engine: the data flow prepared/ → engine → result.json.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path

from higgsbench.common.atomic import write_text_atomic
from higgsbench.common.paths import (
    OUTPUT_MARKER,
    claim_output_dir,
    is_ours,
    missing_dirs,
    remove_made,
)
from higgsbench.core.checks import validate
from higgsbench.core.config import RunConfig
from higgsbench.core.optimizers import learning_rate
from higgsbench.engines import ENGINES, bigdl_engine
from higgsbench.records.result import build_record, result_line, write_json_atomic

# What a run writes into its directory besides result.json; a run that ends without a result
# removes them, unless it left a checkpoint to resume from.
RUN_FILES = ("config.json", "model.pt", "model.keras", "model.bigdl", "checkpoint-history.json")
CHECKPOINTS = ("checkpoint.pt", "checkpoint.keras")


def run_training(config: RunConfig) -> dict:
    spec, data = validate(config)
    result_path = config.out / "result.json"
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
