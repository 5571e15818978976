"""Run one training job: check the configuration, call the engine, write result.json.

The same sequence for every engine: the data flow prepared/ → engine → result.json.
"""

from __future__ import annotations

import importlib
import json

from higgsbench.data.prepared import PreparedDataset
from higgsbench.engines import ENGINES
from higgsbench.engines.contract import RunConfig
from higgsbench.errors import HiggsbenchError
from higgsbench.features import feature_columns
from higgsbench.network import network_spec
from higgsbench.optimizers import check_optimizer, learning_rate
from higgsbench.results import build_record, result_line, write_json_atomic


def run_training(config: RunConfig) -> dict:
    if config.engine not in ENGINES:
        raise HiggsbenchError(f"--engine {config.engine!r}: choose one of {', '.join(ENGINES)}")
    try:
        check_optimizer(config.optimizer)
        inputs = len(feature_columns(config.features))
        spec = network_spec(inputs, config.recipe, layers=config.layers, width=config.width)
    except ValueError as exc:
        raise HiggsbenchError(str(exc)) from None
    for name in ("epochs", "batch_size"):
        if getattr(config, name) < 1:
            raise HiggsbenchError(f"--{name.replace('_', '-')} must be at least 1")
    data = PreparedDataset(config.data)
    if config.batch_size > data.rows("train"):
        raise HiggsbenchError(
            f"--batch-size {config.batch_size} exceeds the {data.rows('train')} training rows "
            f"of {config.data}"
        )
    result_path = config.out / "result.json"
    if config.resume and not (config.out / "checkpoint.pt").exists():
        raise HiggsbenchError(f"--resume: no checkpoint in {config.out} to resume from")
    if result_path.exists() and not config.resume:
        raise HiggsbenchError(
            f"{result_path}: exists already; choose another --out, or --resume to continue"
        )
    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")

    engine = importlib.import_module(ENGINES[config.engine])
    outcome = engine.train(config, data, spec)
    record = build_record(config, spec, data, outcome, learning_rate(config.optimizer, config.lr))
    write_json_atomic(result_path, record)
    print(result_line(record), flush=True)
    return record
