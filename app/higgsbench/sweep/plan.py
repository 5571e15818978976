"""A sweep's plan: engines × nodes × optimizers × repeats, checked once before any run, and
the `train` configuration of each run (``config_for``).

Every configuration runs as its own `higgsbench train` process (sweep/runner.py). Repeats
(``--repeat R``): every configuration runs R times, one after another, each run in its own
directory (NAME-r1 … NAME-rR; NAME alone when R is 1).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from higgsbench.common import limits
from higgsbench.common.errors import UsageError
from higgsbench.common.limits import at_least, executable
from higgsbench.core.checks import spark_master
from higgsbench.core.config import RunConfig, to_argv
from higgsbench.core.hardware import check_precision
from higgsbench.core.optimizers import check_optimizer
from higgsbench.data.prepared import PreparedDataset
from higgsbench.engines import CLUSTER_ENGINES, ENGINES, SINGLE_PROCESS

# BenchPlan settings that mean the whole sweep, not one run: config_for decides them per run.
PER_RUN = ("out", "nodes", "threads", "master", "cores_per_node", "progress")


@dataclass
class BenchPlan:
    data: Path
    out: Path
    engines: list[str]
    optimizers: list[str]
    nodes: list[int] = field(default_factory=lambda: [1])
    epochs: int = 2
    repeat: int = 1  # runs of every configuration: the median is quoted, with the min–max
    batch_size: int = 4096
    features: str = "all"
    seed: int = 42
    device: str = "cpu"
    precision: str = "fp32"
    threads: int | None = None
    master: str | None = None
    cores_per_node: int | None = None
    until_plateau: bool = False
    max_train_rows: int | None = None
    python: dict[str, str] = field(default_factory=dict)  # engine → interpreter
    # MLflow tracking URI: every run is logged there, tagged with the sweep (tracking.py)
    track: str | None = None
    timeout: float = 3600.0
    # a bar over the sweep with its ETA (on a terminal); the children draw none
    progress: bool = True
    # every run's own output (Spark, the engine's warnings) streamed with the run's name
    verbose: bool = False

    def check(self) -> None:
        """Refuse impossible numbers before the first run starts, not once per run."""
        for option, value in (
            ("--epochs", self.epochs),
            ("--repeat", self.repeat),
            ("--batch-size", self.batch_size),
            ("--cores-per-node", self.cores_per_node),
            ("--max-train-rows", self.max_train_rows),
            *(("--nodes", n) for n in self.nodes),
        ):
            at_least(option, value)
        limits.threads("--threads", self.threads)
        limits.seed("--seed", self.seed)
        if self.data is not None:
            limits.no_link_loop(self.data)
        if not self.nodes:
            raise UsageError("--nodes: name at least one node count, e.g. 1,2,4")
        for engine in self.engines:
            if engine not in ENGINES:
                raise UsageError(f"--engines {engine!r}: choose from {', '.join(ENGINES)}")
        for name in self.optimizers:
            try:
                check_optimizer(name)
            except ValueError as exc:
                raise UsageError(f"--optimizers: {exc}") from None
        if not self.engines or not self.optimizers:
            raise UsageError("--engines and --optimizers each need at least one name")
        if any(run["engine"] in SINGLE_PROCESS for run in self.runs()):
            # the children run here: bf16 on a CPU without it is refused once, before them
            check_precision(self.precision, self.device)
        self.check_inputs()

    def check_inputs(self) -> None:
        """Every path and setting a run would refuse, refused once here, before the first
        child starts: the dataset, the run directory, the interpreters, the cluster."""
        if self.out is not None and self.out.exists() and not self.out.is_dir():
            raise UsageError(f"--out {self.out}: is a file; a directory is needed")
        for engine, interpreter in self.python.items():
            if engine not in ENGINES:
                raise UsageError(
                    f"--python {engine}={interpreter}: no engine {engine!r}; "
                    f"choose from {', '.join(ENGINES)}"
                )
            executable(f"--python {engine}={interpreter}", interpreter)
        if "spark" in self.engines:
            spark_master("--engines", self.master, self.batch_size, self.nodes)
        if self.data is not None:
            data = PreparedDataset(self.data)  # refuses a path that is not a prepared dataset
            rows = data.rows("train")
            if self.max_train_rows is not None and self.max_train_rows < rows:
                rows, of = self.max_train_rows, f"(--max-train-rows {self.max_train_rows})"
            else:
                of = f"of {self.data}"
            if self.batch_size > rows:
                raise UsageError(
                    f"--batch-size {self.batch_size} exceeds the {rows} training rows {of}"
                )
        if self.track:  # the server answers before the first child trains, not after it
            from higgsbench import tracking

            tracking.check(self.track)

    def runs(self) -> list[dict]:
        """The configurations, in the order they run. A Spark sweep also measures
        single-process torch on this machine, in the same run, as its baseline."""
        out = []
        engines = list(self.engines)
        if "spark" in engines and "torch" not in engines:
            engines.insert(0, "torch")
        for engine in engines:
            node_counts = [1]
            if engine == "spark" or (engine == "bigdl" and not self.bigdl_local):
                node_counts = self.nodes
            for nodes in node_counts:
                for opt in self.optimizers:
                    out.append({"engine": engine, "nodes": nodes, "optimizer": opt})
        return out

    @property
    def bigdl_local(self) -> bool:
        """BigDL (pyspark 3.4.1) cannot join this package's Spark 4 cluster: beside a spark
        sweep, or without a master, it runs in local mode on as many cores."""
        return not self.master or "spark" in self.engines

    def master_for(self, engine: str) -> str | None:
        if engine == "bigdl" and self.bigdl_local:
            return f"local[{max(self.nodes) * (self.cores_per_node or 1)}]"
        return self.master

    def config_for(self, run: dict, run_dir: Path) -> RunConfig:
        """The `train` run of one configuration of the sweep: the plan's settings of the same
        name as a RunConfig field, passed on as they are, and what is chosen per run."""
        passed_on = {
            f.name: getattr(self, f.name)
            for f in fields(RunConfig)
            if f.name in self.__dataclass_fields__ and f.name not in PER_RUN
        }
        config = RunConfig(
            **passed_on,
            out=run_dir,
            engine=run["engine"],
            optimizer=run["optimizer"],
            progress=False,
        )
        if run["engine"] in CLUSTER_ENGINES:
            config.nodes = run["nodes"]
            config.master = self.master_for(run["engine"])
            config.cores_per_node = self.cores_per_node
        elif self.threads:
            config.threads = self.threads
        elif self.cores_per_node:
            # single process, as many cores as the largest cluster run used: as cores, which
            # may be more than this machine's CPUs (--threads may not), and which a
            # single-process engine takes for its thread count
            config.cores_per_node = max(self.nodes) * self.cores_per_node
        return config


def child_command(
    plan: BenchPlan, run: dict, run_dir: Path, sweep_env: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The `higgsbench train` of one run of the sweep: its argv and the environment it adds
    to the sweep's own (the sweep's tracking variables; no progress bars, the sweep draws
    one). Pure: the runner starts it, owns the process, its log and its time limit."""
    python = plan.python.get(run["engine"], sys.executable)
    argv = [python, "-m", "higgsbench", "train", *to_argv(plan.config_for(run, run_dir))]
    return argv, {**sweep_env, "HIGGSBENCH_PROGRESS": "0"}
