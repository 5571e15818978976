"""A sweep's plan: engines × nodes × optimizers × repeats, checked once before any run, and
the `train` configuration of each run (``config_for``).

Every configuration runs as its own `higgsbench train` process (sweep/runner.py). Repeats
(``--repeat R``): every configuration runs R times, one after another, each run in its own
directory (NAME-r1 … NAME-rR; NAME alone when R is 1).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from higgsbench.common import limits
from higgsbench.common.errors import UsageError
from higgsbench.core.checks import Problems, spark_master, validate
from higgsbench.core.config import RunConfig, to_argv
from higgsbench.core.engine import CLUSTER_ENGINES, ENGINES
from higgsbench.core.optimizers import check_optimizer

# RunConfig fields that config_for chooses for each run, whatever the base says
CHOSEN_PER_RUN = ("engine", "optimizer", "progress")


@dataclass
class BenchPlan:
    """A sweep: the settings every run shares (``base``, a RunConfig: its out, engine,
    optimizer and nodes are chosen per run) and what only a sweep has."""

    base: RunConfig
    engines: list[str]
    optimizers: list[str]
    nodes: list[int] = field(default_factory=lambda: [1])
    repeat: int = 1  # runs of every configuration: the median is quoted, with the min–max
    python: dict[str, str] = field(default_factory=dict)  # engine → interpreter
    timeout: float = 3600.0
    # a bar over the sweep with its ETA (on a terminal); the children draw none
    progress: bool = True
    # every run's own output (Spark, the engine's warnings) streamed with the run's name
    verbose: bool = False

    @classmethod
    def of(cls, **options) -> BenchPlan:
        """A plan from options named as the sweep's fields and RunConfig's (as `bench`'s
        command line has them): the sweep's go to the plan (``nodes`` is a list of node
        counts there), the rest to ``base``."""
        own = {f.name for f in fields(cls)} - {"base"}
        base = RunConfig(**{k: v for k, v in options.items() if k not in own})
        return cls(base=base, **{k: v for k, v in options.items() if k in own})

    @property
    def out(self) -> Path:
        return self.base.out

    def to_dict(self) -> dict:
        """The plan as bench.json and the tracking server keep it: the shared settings and
        the sweep's own, side by side."""
        sweep = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "base"}
        shared = {k: v for k, v in self.base.to_dict().items() if k not in CHOSEN_PER_RUN}
        return {**shared, **sweep}

    def check(self) -> None:
        """Every run of the sweep validated as `train` validates it (core/checks.validate),
        and what only a sweep has, before the first child starts; every problem said at
        once."""
        problems = Problems()
        with problems.check():
            self._check_sweep()
        for run in self.runs() if not problems.found else []:
            with problems.check():
                validate(self.config_for(run, self.out / run_name(run, 1, 1)))
        problems.raise_any()
        if self.base.track:  # the server answers before the first child trains, not after it
            from higgsbench import tracking

            tracking.check(self.base.track)

    def _check_sweep(self) -> None:
        limits.at_least("--repeat", self.repeat)
        for n in self.nodes:
            limits.at_least("--nodes", n)
        if not self.nodes:
            raise UsageError("--nodes: name at least one node count, e.g. 1,2,4")
        if not self.engines or not self.optimizers:
            raise UsageError("--engines and --optimizers each need at least one name")
        for engine in self.engines:
            if engine not in ENGINES:
                raise UsageError(f"--engines {engine!r}: choose from {', '.join(ENGINES)}")
        for name in self.optimizers:
            try:
                check_optimizer(name)
            except UsageError as exc:
                raise UsageError(f"--optimizers: {exc}") from None
        if self.out.exists() and not self.out.is_dir():
            raise UsageError(f"--out {self.out}: is a file; a directory is needed")
        for engine, interpreter in self.python.items():
            if engine not in ENGINES:
                raise UsageError(
                    f"--python {engine}={interpreter}: no engine {engine!r}; "
                    f"choose from {', '.join(ENGINES)}"
                )
            limits.executable(f"--python {engine}={interpreter}", interpreter)
        if "spark" in self.engines:  # every node count at once: the runs check one each
            spark_master("--engines", self.base.master, self.base.batch_size, self.nodes)

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
        return not self.base.master or "spark" in self.engines

    def master_for(self, engine: str) -> str | None:
        if engine == "bigdl" and self.bigdl_local:
            return f"local[{max(self.nodes) * (self.base.cores_per_node or 1)}]"
        return self.base.master

    def config_for(self, run: dict, run_dir: Path) -> RunConfig:
        """The `train` run of one configuration of the sweep: the shared settings, and what is
        chosen per run."""
        base = self.base
        per_run = {"out": run_dir, "engine": run["engine"], "optimizer": run["optimizer"]}
        per_run["progress"] = False
        if run["engine"] in CLUSTER_ENGINES:
            per_run.update(nodes=run["nodes"], master=self.master_for(run["engine"]))
            per_run["threads"] = None
        else:
            per_run.update(nodes=1, master=None, cores_per_node=None)
            if not base.threads and base.cores_per_node:
                # single process, as many cores as the largest cluster run used: as cores,
                # which may be more than this machine's CPUs (--threads may not), and which a
                # single-process engine takes for its thread count
                per_run["cores_per_node"] = max(self.nodes) * base.cores_per_node
        return dataclasses.replace(base, **per_run)


def run_name(run: dict, repeat: int, repeats: int) -> str:
    """The directory of one run of the sweep: NAME, or NAME-rK for repeat K of several."""
    name = f"{run['engine']}-n{run['nodes']}-{run['optimizer']}"
    return name if repeats == 1 else f"{name}-r{repeat}"


def child_command(
    plan: BenchPlan, run: dict, run_dir: Path, sweep_env: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The `higgsbench train` of one run of the sweep: its argv and the environment it adds
    to the sweep's own (the sweep's tracking variables; no progress bars, the sweep draws
    one). Pure: the runner starts it, owns the process, its log and its time limit."""
    python = plan.python.get(run["engine"], sys.executable)
    argv = [python, "-m", "higgsbench", "train", *to_argv(plan.config_for(run, run_dir))]
    return argv, {**sweep_env, "HIGGSBENCH_PROGRESS": "0"}
