"""The result record of a training run: assembled once for every engine, written atomically.

Every run writes RUN_DIR/result.json and prints the same record as its last line, prefixed
``RESULT `` (the MLPerf habit: one machine-readable line ends every benchmark).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from higgsbench import __version__
from higgsbench.common.atomic import write_text_atomic

# The checker of the records read back, named here too for the readers of result.json.
from higgsbench.common.shapes import NUMBER, NUMBER_OR_NULL
from higgsbench.common.shapes import read_record as read_record
from higgsbench.common.shapes import shape_problem as shape_problem
from higgsbench.core.config import PHYSICS_KEYS, RunConfig, TrainOutcome
from higgsbench.core.network import NetworkSpec
from higgsbench.data.prepared import PreparedDataset

RESULT_PREFIX = "RESULT "

HISTORY_SHAPE = {"epoch": NUMBER, "train_loss": NUMBER, "val_loss": NUMBER, "val_auc": NUMBER}
RESULT_SHAPE = {
    "engine": str,
    "device": str,
    "nodes": NUMBER,
    "cores_per_node": NUMBER_OR_NULL,
    "optimizer": str,
    "batch_size": NUMBER,
    "epochs": NUMBER,
    "features": str,
    "layers": NUMBER,
    "width": NUMBER,
    "train_rows": NUMBER,
    "test_rows": NUMBER,
    "startup_seconds": NUMBER,
    "epoch_seconds": [NUMBER],
    "events_per_second": NUMBER,
    "test_auc": NUMBER,
    "test_accuracy": NUMBER,
    "fom_max": NUMBER,
    "fom_cut": NUMBER,
    "significance": NUMBER,
    "history": [HISTORY_SHAPE],
    "versions": dict,
    "git_sha": str,
    "hosts": [str],
}
REQUIRED_KEYS = list(RESULT_SHAPE)  # the results contract of DESIGN.md


def build_record(
    config: RunConfig, spec: NetworkSpec, data: PreparedDataset, outcome: TrainOutcome, lr: float
) -> dict:
    # The median epoch is the typical one: the first epoch may still pay for warm-up.
    typical = statistics.median(outcome.epoch_seconds) if outcome.epoch_seconds else math.nan
    events_per_second = outcome.train_rows_per_epoch / typical if typical else math.nan
    gflops = events_per_second * spec.train_flops_per_event() / 1e9
    # imported here: scikit-learn takes a second or more to import, and `report` or `bench`
    # read records through this module without computing any metric
    from higgsbench.core.metrics import physics_metrics

    metrics = physics_metrics(outcome.test_labels, outcome.test_scores)
    record = {
        "engine": config.engine,
        "device": outcome.device,
        "nodes": outcome.nodes,
        "cores_per_node": outcome.cores_per_node,
        "optimizer": config.optimizer,
        "learning_rate": lr,
        "batch_size": config.batch_size,
        "epochs": len(outcome.epoch_seconds),
        "epochs_requested": config.epochs,
        "features": config.features,
        "inputs": spec.inputs,
        "layers": spec.layers,
        "width": spec.width,
        "network": spec.to_dict(),
        "precision": config.precision,
        "seed": config.seed,
        "train_rows": outcome.train_rows,
        "train_rows_per_epoch": outcome.train_rows_per_epoch,
        "test_rows": len(outcome.test_labels),
        "startup_seconds": outcome.startup_seconds,
        "epoch_seconds": outcome.epoch_seconds,
        "epoch_seconds_median": typical,
        "events_per_second": events_per_second,
        "flops_per_event": spec.train_flops_per_event(),
        "gflops": gflops,
        "peak_gflops": outcome.peak_gflops,
        "fraction_of_peak": gflops / outcome.peak_gflops if outcome.peak_gflops else None,
        **{k: metrics[k] for k in (*PHYSICS_KEYS, "expected_events")},
        "history": [dataclasses.asdict(h) for h in outcome.history],
        "data": data.describe(),
        "generated_data": data.generated,
        "versions": versions(),
        "git_sha": git_sha(),
        "hosts": outcome.hosts,
        "machine": machine(),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config.to_dict(),
        **outcome.extra,
        "curves": metrics["curves"],
    }
    missing = [k for k in REQUIRED_KEYS if k not in record]
    assert not missing, f"result record lacks {missing}"
    return record


def write_json_atomic(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def result_line(record: dict) -> str:
    """The one-line form: the record without its curves (they stay in result.json)."""
    slim = {k: v for k, v in record.items() if k not in ("curves", "config")}
    return RESULT_PREFIX + json.dumps(slim, default=_json_default, separators=(",", ":"))


def parse_result_line(text: str) -> dict:
    """The record printed last by a run (for benchmarks that run engines as subprocesses)."""
    for line in reversed(text.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise ValueError("no RESULT line in the output")


def _json_default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


# module imported by the run → the distribution whose version is recorded
_DISTRIBUTIONS = {
    "numpy": "numpy",
    "torch": "torch",
    "pyarrow": "pyarrow",
    "pyspark": "pyspark",
    "tensorflow": "tensorflow-cpu",
    "keras": "keras",
    "bigdl": "bigdl-dllib-spark3",
}


def versions() -> dict:
    """Versions of the libraries this run actually imported."""
    from importlib import metadata

    found = {"higgsbench": __version__, "python": platform.python_version()}
    for module, dist in _DISTRIBUTIONS.items():
        if module not in sys.modules:
            continue
        try:
            found[module] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[module] = getattr(sys.modules[module], "__version__", "unknown")
    return found


def git_sha() -> str:
    """The commit the code came from: the image's build argument, else the checkout's HEAD."""
    if os.environ.get("HIGGSBENCH_GIT_SHA"):
        return os.environ["HIGGSBENCH_GIT_SHA"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        sha = out.stdout.strip()
        return sha if out.returncode == 0 and sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict:
    info = {
        "hostname": platform.node(),
        "cpu_count": os.cpu_count(),
        "processor": _cpu_model(),
        "platform": platform.platform(),
    }
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
