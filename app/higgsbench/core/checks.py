"""The one validation of a run (``validate``: every check of a RunConfig, all problems said
at once) and the checks it is made of that need to know what a run is (its network, its Spark
master, BigDL's limits); the generic limits on numbers, paths and addresses are in
common/limits.py."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from higgsbench.common import limits
from higgsbench.common.errors import UsageError
from higgsbench.common.limits import fits_in_memory
from higgsbench.common.paths import check_output_dir
from higgsbench.core.config import RunConfig
from higgsbench.core.engine import BIGDL_LOCAL, ENGINES, SINGLE_PROCESS
from higgsbench.core.hardware import check_precision
from higgsbench.core.network import FLOAT_BYTES, NetworkSpec, network_spec
from higgsbench.core.optimizers import check_optimizer
from higgsbench.core.recipes import check_engine
from higgsbench.data.layout import feature_columns
from higgsbench.data.prepared import PreparedDataset


def spark_master(option: str, master: str | None, batch_size: int, nodes: list[int]) -> None:
    """A Spark run's master URL and batch: refused, naming ``option``, unless the master is a
    spark:// URL and the batch divides evenly among every node count."""
    if not master:
        raise UsageError(
            f"{option} spark needs --master spark://HOST:PORT "
            "(start a local cluster with `higgsbench cluster up`)"
        )
    if not master.startswith("spark://"):
        raise UsageError(f"--master {master!r}: expected spark://HOST:PORT")
    for n in nodes:
        if batch_size % n:
            raise UsageError(f"--batch-size {batch_size} must divide evenly among --nodes {n}")


def network_fits(spec: NetworkSpec, batch_size: int, optimizer: str, trains_here: bool) -> None:
    """--width/--layers: refuse a network that would not fit in this process's memory. Where it
    ``trains_here`` (one process on the CPU) its whole training must fit; elsewhere (a GPU,
    Spark ranks) this process still builds or receives its weights."""
    option = f"--width {spec.width} --layers {spec.layers}"
    params = f"a network of {spec.parameters():,} parameters"
    if trains_here:
        needed = spec.training_bytes(batch_size, optimizer)
        state = f"the {optimizer} optimizer's state"
        what = f"training {params} (weights, gradients, {state}, a batch of {batch_size})"
    else:
        needed, what = FLOAT_BYTES * spec.parameters(), f"the weights of {params}"
    fits_in_memory(option, needed, what)


class Problems:
    """Every problem of a configuration, collected so that all are said at once (litgpt's
    validate_args does the same): each check runs in ``with problems.check():``, and
    ``raise_any`` raises one UsageError naming them all."""

    def __init__(self) -> None:
        self.found: list[str] = []

    @contextlib.contextmanager
    def check(self) -> Iterator[None]:
        try:
            yield
        except UsageError as exc:
            if str(exc) not in self.found:
                self.found.append(str(exc))

    def raise_any(self) -> None:
        if len(self.found) == 1:
            raise UsageError(self.found[0])
        if self.found:
            raise UsageError(f"{len(self.found)} problems: " + "; ".join(self.found))


def validate(config: RunConfig) -> tuple[NetworkSpec, PreparedDataset]:
    """Every check of a run, before anything is made: the one validation `train`, `train
    --check` and every run of a sweep go through (engines only assert). Collects every
    problem and raises once, naming them all; returns the network and the dataset."""
    problems = Problems()
    spec = data = None
    with problems.check():
        _engine(config)
    with problems.check():
        limits.at_least("--layers", config.layers)
        limits.at_least("--width", config.width)
        spec = _network(config)
    for option, value in (
        ("--epochs", config.epochs),
        ("--batch-size", config.batch_size),
        ("--max-train-rows", config.max_train_rows),
        ("--nodes", config.nodes),
        ("--cores-per-node", config.cores_per_node),
    ):
        with problems.check():
            limits.at_least(option, value)
    for check, option, value in (
        (limits.threads, "--threads", config.threads),
        (limits.seed, "--seed", config.seed),
        (limits.positive, "--lr", config.lr),
        (limits.positive, "--worker-timeout", config.worker_timeout),
    ):
        with problems.check():
            check(option, value)
    with problems.check():
        data = _dataset(config)
    with problems.check():
        run_dir(config)
    if spec is not None:
        with problems.check():
            trains_here = config.engine in SINGLE_PROCESS and not config.on_gpu
            network_fits(spec, config.batch_size, config.optimizer, trains_here)
    problems.raise_any()
    return spec, data


def _engine(config: RunConfig) -> None:
    """The engine exists, can apply the recipe, and is given what it needs."""
    if config.engine not in ENGINES:
        raise UsageError(f"--engine {config.engine!r}: choose one of {', '.join(ENGINES)}")
    check_engine(config.recipe, config.engine)
    if config.engine in SINGLE_PROCESS:
        check_precision(config.precision, config.device)  # bf16 not emulated on a CPU
        if config.nodes != 1:
            raise UsageError(
                f"--nodes {config.nodes}: the {config.engine} engine trains in one process; "
                "--nodes is for the spark and bigdl engines"
            )
    if config.engine == "spark":
        spark_master("--engine", config.master, config.batch_size, [config.nodes])
    if config.engine == "bigdl":
        bigdl_settings(config)


def bigdl_settings(config: RunConfig) -> None:
    """What BigDL cannot do: resume, a learning rate for its Adadelta, a master that is
    neither local[N] nor spark://, a batch that does not divide among its cores."""
    if config.resume:
        raise UsageError("--resume is not supported by the bigdl engine")
    if config.optimizer == "adadelta" and config.lr not in (None, 1.0):
        raise UsageError("BigDL's Adadelta has no learning rate (it is 1.0): drop --lr")
    cores = bigdl_cores(config.master, config.nodes, config.cores_per_node)
    if config.batch_size % cores:
        raise UsageError(
            f"--batch-size {config.batch_size}: BigDL needs a multiple of the {cores} cores in use"
        )


def bigdl_cores(master: str | None, nodes: int, cores_per_node: int | None) -> int:
    """The cores a BigDL run uses: N of local[N] (all of local[*]), else nodes × cores."""
    master = master or BIGDL_LOCAL
    if master.startswith("local"):
        inner = master[len("local") :].strip("[]") or "1"
        if inner == "*":
            return os.cpu_count() or 1
        if not inner.isdigit() or int(inner) < 1:
            raise UsageError(f"--master {master!r}: expected local[N], local[*] or spark://…")
        return int(inner)
    if not master.startswith("spark://"):
        raise UsageError(f"--master {master!r}: expected local[N] or spark://HOST:PORT")
    return nodes * (cores_per_node or 1)


def run_dir(config: RunConfig) -> None:
    """--out: a directory a run may write into (new, empty or a run's), holding no result
    already, and a checkpoint when --resume asks to continue from it."""
    result = config.out / "result.json"
    if result.exists() and not config.resume:
        raise UsageError(f"{result}: exists already; choose another --out, or --resume to continue")
    if config.resume and not (config.out / "checkpoint.pt").exists():
        raise UsageError(f"--resume: no checkpoint in {config.out} to resume from")
    check_output_dir(config.out, "--out")


def _network(config: RunConfig) -> NetworkSpec:
    check_optimizer(config.optimizer)
    inputs = len(feature_columns(config.features))
    return network_spec(inputs, config.recipe, layers=config.layers, width=config.width)


def _dataset(config: RunConfig) -> PreparedDataset:
    """The prepared dataset, and a batch that fits in the training rows it is given."""
    limits.no_link_loop(config.data)
    data = PreparedDataset(config.data)
    rows, of = data.rows("train"), f"of {config.data}"
    if config.max_train_rows is not None and config.max_train_rows < rows:
        rows, of = config.max_train_rows, f"(--max-train-rows {config.max_train_rows})"
    if config.batch_size > rows:
        raise UsageError(f"--batch-size {config.batch_size} exceeds the {rows} training rows {of}")
    return data
