"""`higgsbench bench`: sweeps of engines × nodes × optimizers, one training run each.

Every configuration runs as its own `higgsbench train` process (a fresh interpreter, so one
run's threads, caches or JIT state cannot colour the next; the BigDL engine even needs another
virtual environment), its RESULT line is collected, and all records land in BENCH_DIR/bench.json
with plots: epoch time against nodes, time relative to one node, parallel efficiency, and an
engine comparison. The last printed line is one machine-readable summary, prefixed RESULT.

Repeats (``--repeat R``): every configuration runs R times, one after another, each run in its
own directory (NAME-r1 … NAME-rR; NAME alone when R is 1). A row of bench.json is one
configuration: its ``epoch_seconds``, ``events_per_second``, ``test_auc`` and ``gflops`` are the
median over the repeats, ``*_min``/``*_max`` their range, and ``repeats`` keeps every repeat's
run directory and epoch times. Speed-up and efficiency are ratios of medians; their range pairs
the fastest with the slowest repeat (one node's slowest over N nodes' fastest, and the other way
round). A bench.json written before repeats existed (rows without ``repeats``) reads as one
repeat per row.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from higgsbench import checks
from higgsbench.atomic import write_text_atomic
from higgsbench.checks import at_least, executable, spark_master
from higgsbench.contract import RunConfig, to_argv
from higgsbench.data.prepared import PreparedDataset
from higgsbench.engines import ENGINES
from higgsbench.errors import HiggsbenchError
from higgsbench.hardware import check_precision
from higgsbench.optimizers import check_optimizer
from higgsbench.paths import claim_output_dir, output_set
from higgsbench.progress import progress_bar
from higgsbench.results import (
    RESULT_PREFIX,
    git_sha,
    machine,
    parse_result_line,
    versions,
    write_json_atomic,
)
from higgsbench.shapes import NUMBER_OR_NULL, POSITIVE, Items, Maybe, Number, OrNull, read_record
from higgsbench.signals import Terminated
from higgsbench.train import SINGLE_PROCESS

CLUSTER_ENGINES = ("spark", "bigdl")
# How long a stopped child run may take to clean up (a Spark driver and its ranks) before
# what is left of it is killed.
CHILD_GRACE_SECONDS = 30.0
# BenchPlan settings that mean the whole sweep, not one run: config_for decides them per run.
PER_RUN = ("out", "nodes", "threads", "master", "cores_per_node", "progress")

# Configurations a bench.json may hold: every engine × optimizer at 50 node counts is 1,000.
# The engine comparison draws a bar for each, which takes some 20 s for a thousand; a file of
# more rows is not a sweep (and would keep `bench --from` busy for minutes).
MAX_BENCH_ROWS = 1_000
NODES = Number(least=1, integer=True)
AUC = Number(least=0, most=1, nan=True)  # NaN: a test set of one class has no AUC

# A row's repeats (bench.json written with --repeat; older ones have none: one repeat each).
REPEAT_SHAPE = {"run_dir": str, "epoch_seconds": [NUMBER_OR_NULL], "epoch_seconds_median": POSITIVE}

ROW_SHAPE = {
    "engine": str,
    "nodes": NODES,
    "cores_per_node": Number(least=0, integer=True, null=True),
    "optimizer": str,
    "device": str,
    "epoch_seconds": POSITIVE,
    "events_per_second": POSITIVE,
    "test_auc": AUC,
    "run_dir": str,
    "repeats": Maybe(Items(REPEAT_SHAPE, least=1)),
    "speedup": Maybe(POSITIVE),  # cluster rows of a sweep over nodes
    "efficiency": Maybe(POSITIVE),
    # with repeats: the range of each median above
    **{
        f"{key}_{end}": Maybe(shape)
        for key, shape in (
            ("epoch_seconds", POSITIVE),
            ("events_per_second", POSITIVE),
            ("test_auc", AUC),
            ("speedup", POSITIVE),
            ("efficiency", POSITIVE),
        )
        for end in ("min", "max")
    },
}

# bench --predict's model against the sweep, drawn again by `bench --from`.
PREDICTION_SHAPE = {
    "engine": str,
    "optimizer": str,
    "bandwidth": str,
    "measured_network_bits_per_second": POSITIVE,
    "model": dict,
    "points": [
        {"nodes": NODES, "epoch_seconds": POSITIVE, "epoch_seconds_at_measured_network": POSITIVE}
    ],
    "measured": [{"nodes": NODES, "epoch_seconds": POSITIVE}],
    "communication_dominates_from": OrNull(NODES),
}

# What `bench --from`, `--against`, the table, the plots and --predict read from a bench.json.
BENCH_SHAPE = {
    "generated_data": bool,
    "machine": dict,
    "failures": list,
    "rows": Items(ROW_SHAPE, most=MAX_BENCH_ROWS),
    "prediction": Maybe(PREDICTION_SHAPE),
}


def read_bench(path: Path, option: str) -> dict:
    """A bench.json named by ``option`` (--from, --against), checked before anything uses it."""
    return read_record(path, BENCH_SHAPE, f"a bench.json of `higgsbench bench` ({option})")


def repeat_dirs(row: dict) -> list[str]:
    """The run directories of a row, one per repeat (a bench.json from before --repeat: one)."""
    return [r["run_dir"] for r in row.get("repeats") or []] or [row["run_dir"]]


def spread(row: dict, key: str = "epoch_seconds") -> tuple[float, float]:
    """(min, max) of ``key`` over a row's repeats; (value, value) for a row of one run."""
    return row.get(f"{key}_min", row[key]), row.get(f"{key}_max", row[key])


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
        checks.threads("--threads", self.threads)
        checks.seed("--seed", self.seed)
        if self.data is not None:
            checks.no_link_loop(self.data)
        if not self.nodes:
            raise HiggsbenchError("--nodes: name at least one node count, e.g. 1,2,4")
        for engine in self.engines:
            if engine not in ENGINES:
                raise HiggsbenchError(f"--engines {engine!r}: choose from {', '.join(ENGINES)}")
        for name in self.optimizers:
            try:
                check_optimizer(name)
            except ValueError as exc:
                raise HiggsbenchError(f"--optimizers: {exc}") from None
        if not self.engines or not self.optimizers:
            raise HiggsbenchError("--engines and --optimizers each need at least one name")
        if any(run["engine"] in SINGLE_PROCESS for run in self.runs()):
            # the children run here: bf16 on a CPU without it is refused once, before them
            check_precision(self.precision, self.device)
        self.check_inputs()

    def check_inputs(self) -> None:
        """Every path and setting a run would refuse, refused once here, before the first
        child starts: the dataset, the run directory, the interpreters, the cluster."""
        if self.out is not None and self.out.exists() and not self.out.is_dir():
            raise HiggsbenchError(f"--out {self.out}: is a file; a directory is needed")
        for engine, interpreter in self.python.items():
            if engine not in ENGINES:
                raise HiggsbenchError(
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
                raise HiggsbenchError(
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


def run_bench(plan: BenchPlan, echo=print) -> dict:
    if plan.out.exists() and any(plan.out.iterdir()):
        raise HiggsbenchError(f"{plan.out}: exists and is not empty; choose another --out")
    sweep_env, parent = {}, None
    if plan.track:  # the sweep's parent run; each child is tagged with the sweep and logged
        from higgsbench import tracking

        plan_dict = {k: str(v) if isinstance(v, Path) else v for k, v in plan.__dict__.items()}
        parent, sweep_env = tracking.start_sweep(plan.track, plan.out.resolve().name, plan_dict)
    try:
        bench = _sweep(plan, echo, sweep_env)
    except BaseException:
        if parent is not None:
            tracking.finish_sweep(plan.track, parent, None, "KILLED")
        raise
    if parent is not None:
        status = "FAILED" if bench["failures"] else "FINISHED"
        tracking.finish_sweep(plan.track, parent, plan.out / "bench.json", status)
    return bench


def run_name(run: dict, repeat: int, repeats: int) -> str:
    """The directory of one run of the sweep: NAME, or NAME-rK for repeat K of several."""
    name = f"{run['engine']}-n{run['nodes']}-{run['optimizer']}"
    return name if repeats == 1 else f"{name}-r{repeat}"


def _sweep(plan: BenchPlan, echo, sweep_env: dict) -> dict:
    claim_output_dir(plan.out, "--out", "bench")
    records, failures = [], []
    runs = [(run, k) for run in plan.runs() for k in range(1, plan.repeat + 1)]
    # the ETA comes from the whole sweep so far: one run takes minutes, not seconds
    with progress_bar(
        "bench", len(runs), unit="runs", show=plan.progress, eta_window=7 * 24 * 3600
    ) as bar:
        for i, (run, k) in enumerate(runs, 1):
            name = run_name(run, k, plan.repeat)
            bar.describe(f"bench [{i}/{len(runs)}] {name}")
            echo(f"[{i}/{len(runs)}] {name}")
            started = time.perf_counter()
            try:
                record = _train(plan, run, plan.out / name, sweep_env, echo)
            except HiggsbenchError as exc:
                repeat = {"repeat": k} if plan.repeat > 1 else {}
                failures.append({**run, **repeat, "error": str(exc)})
                echo(f"  failed: {exc}")
                bar.advance()
                continue
            record["run_dir"] = name
            records.append(record)
            echo(
                f"  epoch {record['epoch_seconds_median']:.3f} s, "
                f"{record['events_per_second']:,.0f} events/s, test AUC {record['test_auc']:.4f} "
                f"({time.perf_counter() - started:.0f} s with start-up)"
            )
            bar.advance()
    bench = summarise(plan, records, failures)
    write_json_atomic(plan.out / "bench.json", bench)
    return bench


def _train(plan: BenchPlan, run: dict, run_dir: Path, env: dict | None = None, echo=print) -> dict:
    """One child `higgsbench train`: its stderr goes to RUN_DIR/train.log (and, --verbose,
    to ``echo`` line by line as it comes), its stdout's RESULT line is the record."""
    python = plan.python.get(run["engine"], sys.executable)
    args = [python, "-m", "higgsbench", "train", *to_argv(plan.config_for(run, run_dir))]
    claim_output_dir(run_dir, "--out", "run")  # the child's run directory, marked as ours
    log = run_dir / "train.log"
    with open(log, "w") as f:
        # In a session of its own: a terminal's Ctrl-C reaches only this process, which
        # passes it on (as it passes on SIGTERM), and whatever the child leaves is found by
        # its process group.
        proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {}), "HIGGSBENCH_PROGRESS": "0"},
            start_new_session=True,
        )
        stdout: list[str] = []

        def relay() -> None:
            for line in proc.stderr:
                f.write(line)
                f.flush()
                if plan.verbose:
                    echo(f"  {run_dir.name} | {line.rstrip()}")

        readers = [
            threading.Thread(target=relay, daemon=True),
            threading.Thread(target=lambda: stdout.append(proc.stdout.read()), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            proc.wait(timeout=plan.timeout)
        except subprocess.TimeoutExpired:
            _stop(proc, signal.SIGTERM)
            raise HiggsbenchError(
                f"still running after {plan.timeout:.0f} s: stopped (log: {log})"
            ) from None
        except KeyboardInterrupt as exc:  # the child is stopped the same way, and cleans up
            _stop(proc, signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
            raise
        finally:
            for reader in readers:
                reader.join()
        f.write("".join(stdout))
    if proc.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise HiggsbenchError(f"exit {proc.returncode}: {tail[0]} (log: {log})")
    return parse_result_line("".join(stdout))


def _stop(proc: subprocess.Popen, signum: int, grace: float = CHILD_GRACE_SECONDS) -> None:
    """Stop a child run with ``signum``, give it ``grace`` seconds to clean up after itself,
    then kill what is left of its process group (which only the child and what it started
    belong to: it was started in a session of its own)."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signum)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# Per-run numbers a row quotes as the median over its repeats, with their min and max.
REPEATED = {
    "epoch_seconds": "epoch_seconds_median",
    "events_per_second": "events_per_second",
    "test_auc": "test_auc",
    "gflops": "gflops",
}


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(plan: BenchPlan, records: list[dict], failures: list[dict]) -> dict:
    """Per configuration (the records of one engine, node count and optimizer are its
    repeats): the median epoch time, events/s, AUC and GFLOP/s over the repeats, with their
    min–max when there are several; for clusters: speed-up and efficiency relative to one
    node of the same engine and optimizer, from this same run, as ratios of the medians."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["engine"], r["nodes"], r["optimizer"]), []).append(r)
    rows = []
    for reps in groups.values():
        r = reps[0]
        row = {
            "engine": r["engine"],
            "nodes": r["nodes"],
            "cores_per_node": r["cores_per_node"],
            "optimizer": r["optimizer"],
            "device": r["device"],
        }
        for key, source in REPEATED.items():
            row[key] = _median([o[source] for o in reps])
            if len(reps) > 1:
                row[f"{key}_min"] = min(o[source] for o in reps)
                row[f"{key}_max"] = max(o[source] for o in reps)
        row["startup_seconds"] = _median([o["startup_seconds"] for o in reps])
        row["fraction_of_peak"] = _median([o.get("fraction_of_peak") for o in reps])
        row["run_dir"] = r["run_dir"]  # the first repeat's; every one is in "repeats"
        row["repeats"] = [
            {
                "run_dir": o["run_dir"],
                "epoch_seconds": o.get("epoch_seconds", [o["epoch_seconds_median"]]),
                "epoch_seconds_median": o["epoch_seconds_median"],
                "events_per_second": o["events_per_second"],
                "test_auc": o["test_auc"],
            }
            for o in reps
        ]
        rows.append(row)
    for row in rows:
        key = (row["engine"], row["optimizer"])
        same = [o for o in rows if (o["engine"], o["optimizer"]) == key]
        one = [o for o in same if o["nodes"] == 1]
        swept = len({o["nodes"] for o in same}) > 1  # speed-up needs a sweep over nodes
        if one and swept and row["engine"] in CLUSTER_ENGINES:
            base = one[0]
            row["speedup"] = base["epoch_seconds"] / row["epoch_seconds"]
            row["efficiency"] = row["speedup"] / row["nodes"]
            if row is not base and (len(row["repeats"]) > 1 or len(base["repeats"]) > 1):
                (b_lo, b_hi), (n_lo, n_hi) = spread(base), spread(row)
                row["speedup_min"], row["speedup_max"] = b_lo / n_hi, b_hi / n_lo
                row["efficiency_min"] = row["speedup_min"] / row["nodes"]
                row["efficiency_max"] = row["speedup_max"] / row["nodes"]
    generated = any(r.get("generated_data") for r in records)
    return {
        "format": "higgsbench-bench/1",
        "plan": {k: str(v) if isinstance(v, Path) else v for k, v in plan.__dict__.items()},
        "generated_data": generated,
        "data": records[0]["data"] if records else None,
        # where the training ran (the runs' own record), not where this sweep was started
        "machine": records[0]["machine"] if records else machine(),
        "versions": records[0]["versions"] if records else versions(),
        "git_sha": git_sha(),
        "rows": rows,
        "failures": failures,
    }


def finish_bench(
    bench: dict,
    out: Path,
    *,
    runs_dir: Path,
    predict: list[int] | None = None,
    bandwidth: str = "10Gbit",
    predict_cores: int | None = None,
    against: dict | None = None,
    force: bool = False,
    echo=print,
) -> str:
    """What follows a sweep (or a bench.json read back): the scaling prediction for the node
    counts ``predict``, the GPU in CPU cores of the cluster bench ``against``, the plots and
    bench.md in ``out``, all of them or none. ``out`` must be ``runs_dir`` or a directory that
    is new, empty or the kit's, unless ``force``. Says the table with ``echo``; returns the
    RESULT line."""
    from higgsbench.bench_plots import write_plots

    with output_set(out, "--out", "bench", force, also_ours=(runs_dir,)) as tmp:
        if predict:
            from higgsbench.scaling import predict as predict_scaling

            bench["prediction"] = predict_scaling(
                bench, runs_dir, predict, bandwidth, cores=predict_cores
            )
            _say_prediction(bench["prediction"], predict, echo)
        if against is not None:
            gpu_rows = [r for r in bench["rows"] if "cuda" in r["device"]]
            bench["gpu_equivalent"] = gpu_equivalent_cores(gpu_rows, against)
            for g in bench["gpu_equivalent"]:
                echo(
                    f"this GPU equals {g['gpu_equals_cores']:.0f} CPU cores of the cluster "
                    f"({g['engine']} {g['optimizer']})"
                )
        if predict or against is not None:
            write_json_atomic(tmp / "bench.json", bench)
        write_plots(bench, tmp, runs_dir)
        write_text_atomic(tmp / "bench.md", table(bench) + "\n")
    echo(table(bench))
    return summary_line(bench)


def _say_prediction(prediction: dict, predict: list[int], echo) -> None:
    """Where communication overtakes compute, and how far the model is from the sweep."""
    bandwidth = prediction["bandwidth"]
    crossover = prediction["communication_dominates_from"]
    echo(
        f"prediction at {bandwidth}: communication dominates from {crossover} nodes"
        if crossover
        else f"prediction at {bandwidth}: compute dominates up to {max(predict)} nodes"
    )
    checked = [p for p in prediction["points"] if "error" in p]
    if checked:
        echo(
            f"prediction at {bandwidth} against the sweep: "
            + ", ".join(
                f"{p['nodes']} node{'s' if p['nodes'] > 1 else ''} "
                f"{p['epoch_seconds']:.2f} s predicted, {p['measured_epoch_seconds']:.2f} s "
                f"measured ({p['error']:+.0%})"
                for p in checked
            )
        )


def gpu_equivalent_cores(gpu_rows: list[dict], cluster: dict) -> list[dict]:
    """How many CPU cores of the cluster one GPU is worth, per optimizer: GPU events/s over
    the best events/s per core among the cluster sweep's CPU runs of the same optimizer
    (the most efficient core is the fair yardstick: scaling losses are not the GPU's merit)."""
    out = []
    for g in gpu_rows:
        cpu = [
            r
            for r in cluster["rows"]
            if r["optimizer"] == g["optimizer"]
            and r["engine"] in ("spark", "torch", "bigdl")
            and "cuda" not in r["device"]
        ]
        if not cpu:
            continue
        per_core = max(
            r["events_per_second"] / max(r["nodes"] * (r["cores_per_node"] or 1), 1) for r in cpu
        )
        out.append(
            {
                "engine": g["engine"],
                "optimizer": g["optimizer"],
                "gpu_events_per_second": g["events_per_second"],
                "cpu_events_per_second_per_core": per_core,
                "gpu_equals_cores": g["events_per_second"] / per_core,
            }
        )
    return out


def summary_line(bench: dict) -> str:
    """The last line a benchmark prints: RESULT and the table, compactly."""
    slim = {
        "bench": "higgsbench",
        "generated_data": bench["generated_data"],
        "machine": bench["machine"].get("processor"),
        "gpu": bench["machine"].get("gpu"),
        "rows": [
            {
                k: (round(v, 5) if isinstance(v, float) else v)
                for k, v in r.items()
                if k not in ("run_dir", "repeats")
            }
            for r in bench["rows"]
        ],
        "failures": len(bench["failures"]),
    }
    if "gpu_equivalent" in bench:
        slim["gpu_equivalent"] = bench["gpu_equivalent"]
    return RESULT_PREFIX + json.dumps(slim, separators=(",", ":"))


def _cell(row: dict, key: str, fmt: str, scale: float = 1.0, unit: str = "") -> str:
    """A table cell: the median, and the min–max over the repeats where the row has them."""
    if key not in row:
        return "–"
    text = f"{scale * row[key]:{fmt}}{unit}"
    if f"{key}_min" in row:
        lo, hi = spread(row, key)
        text += f" ({scale * lo:{fmt}}–{scale * hi:{fmt}}{unit})"
    return text


def table(bench: dict) -> str:
    """A Markdown table of the sweep, as the README quotes it. With repeats, every time,
    throughput, speed-up and efficiency reads "median (min–max)" over the repeats."""
    counts = sorted({len(repeat_dirs(r)) for r in bench["rows"]})
    if counts and counts[-1] > 1:
        of = f"{counts[0]}–{counts[-1]}" if len(counts) > 1 else f"{counts[0]}"
        header = (
            f"| engine | nodes × cores | optimizer | device | epoch s, median of {of} runs "
            "(min–max) | events/s | speed-up | efficiency | test AUC |"
        )
    else:
        header = (
            "| engine | nodes × cores | optimizer | device | epoch s | events/s | speed-up "
            "| efficiency | test AUC |"
        )
    lines = [header, "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in bench["rows"]:
        lines.append(
            f"| {r['engine']} | {r['nodes']} × {r['cores_per_node']} | {r['optimizer']} "
            f"| {r['device']} | {_cell(r, 'epoch_seconds', '.3f')} "
            f"| {_cell(r, 'events_per_second', ',.0f')} | {_cell(r, 'speedup', '.2f')} "
            f"| {_cell(r, 'efficiency', '.0f', 100, ' %')} | {r['test_auc']:.4f} |"
        )
    return "\n".join(lines)
