"""What every engine is given and what it must give back.

An engine receives a RunConfig and a prepared dataset, trains, times every epoch apart from
start-up and evaluation, and returns a TrainOutcome holding the per-epoch history and the
test-set scores. It does not compute metrics or write result.json itself: records/result.py does
that once for every engine, so every engine's numbers mean the same thing.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

# Plateau rule of --until-plateau: stop when the best validation AUC has gained less than
# PLATEAU_MIN_GAIN over the last PLATEAU_EPOCHS epochs.
PLATEAU_EPOCHS = 5
PLATEAU_MIN_GAIN = 1e-4

# The scalar physics metrics of a run (result.json, the RESULT line, MLflow), as
# metrics.physics_metrics() gives them for the test set.
PHYSICS_KEYS = (
    "test_auc",
    "test_accuracy",
    "fom_max",
    "fom_cut",
    "significance",
    "significance_cut",
)


@dataclass
class RunConfig:
    data: Path
    out: Path
    engine: str = "torch"
    optimizer: str = "adam"
    lr: float | None = None
    epochs: int = 10
    batch_size: int = 1024
    features: str = "all"
    seed: int = 42
    recipe: str = "thesis"
    layers: int | None = None
    width: int | None = None
    device: str = "cpu"
    threads: int | None = None
    precision: str = "fp32"
    cuda_graphs: bool = True
    resume: bool = False
    until_plateau: bool = False
    max_train_rows: int | None = None
    progress: bool = True
    track: str | None = None  # MLflow tracking URI: the run is logged there (tracking.py)
    # cluster engines
    master: str | None = None
    nodes: int = 1
    cores_per_node: int | None = None
    worker_timeout: float = 120.0

    @classmethod
    def from_options(cls, options: dict) -> RunConfig:
        """The run the `train` command's options describe (each option is named as its field)."""
        return cls(**{f.name: options[f.name] for f in fields(cls)})

    @property
    def on_gpu(self) -> bool:
        """Whether the run asks for a CUDA device ('cuda' or 'cuda:N')."""
        return self.device.startswith("cuda")

    def to_dict(self) -> dict:
        """The run as plain JSON values: config.json, and what the Spark ranks receive."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def to_argv(config: RunConfig) -> list[str]:
    """The `higgsbench train` options that describe ``config``: every field that differs from
    its default (and those without one, and those its recipe sets), as ``--field-name VALUE``
    or ``--[no-]flag``."""
    from higgsbench.core.recipes import recipe_fields

    # the fields a recipe sets by default are always passed: left out, the child's recipe
    # would set them again where the parent had chosen the field's default
    keep = recipe_fields(config.recipe)
    argv = []
    for f in fields(config):
        value = getattr(config, f.name)
        if f.default is not MISSING and value == f.default and f.name not in keep:
            continue
        option = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(option if value else "--no-" + option[2:])
        elif value is not None:
            argv += [option, str(value)]
    return argv


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    val_auc: float
    seconds: float
    wall_seconds: float  # since the first epoch began, evaluation and checkpoints included


@dataclass
class TrainOutcome:
    device: str
    nodes: int
    cores_per_node: int
    hosts: list[str]
    startup_seconds: float
    epoch_seconds: list[float]
    history: list[EpochRecord]
    test_labels: np.ndarray
    test_scores: np.ndarray
    train_rows: int
    train_rows_per_epoch: int  # rows actually stepped over per epoch (full batches only)
    peak_gflops: float | None = None
    extra: dict = field(default_factory=dict)


def plateau_reached(val_aucs: list[float]) -> bool:
    """True when the best AUC has gained < PLATEAU_MIN_GAIN over the last PLATEAU_EPOCHS epochs."""
    if len(val_aucs) <= PLATEAU_EPOCHS:
        return False
    before = max(val_aucs[:-PLATEAU_EPOCHS])
    return max(val_aucs) - before < PLATEAU_MIN_GAIN
