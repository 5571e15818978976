"""engine=spark: PyTorch DDP (gloo) on a Spark standalone cluster via TorchDistributor.

One rank per worker node: each executor gets all the cores the rank may use
(``spark.executor.cores`` = ``spark.task.cpus`` = cores per node, ``spark.cores.max`` =
nodes × cores), and each rank sets torch to that many threads. All epochs run inside one
``TorchDistributor.run()``: its start-up (9–15 s) is paid once and timed apart from the
epochs. The driver receives the history and the weights and computes the test metrics once,
through the same metrics module as every engine.

Failures end the run, never hang it: Spark is told not to retry the training stage, the
gloo process group has a timeout, and when a worker is lost the error names it and says how
to continue from the last epoch checkpoint (``--resume``, on the workers still alive).
"""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from higgsbench.common import progress
from higgsbench.common.errors import HiggsbenchError, UsageError
from higgsbench.core.config import EpochRecord, RunConfig, TrainOutcome
from higgsbench.core.network import NetworkSpec
from higgsbench.data.prepared import PreparedDataset
from higgsbench.spark.master import alive_workers
from higgsbench.spark.security import (
    SECRET_ENV,
    SECRET_FILE_ENV,
    driver_properties,
    is_loopback_master,
)
from higgsbench.spark.state import local_cluster

MASTER_UI_ENV = "HIGGSBENCH_SPARK_MASTER_UI"


def master_ui(master: str) -> str:
    """The master's web UI: $HIGGSBENCH_SPARK_MASTER_UI, the local cluster's, or port 8080."""
    if os.environ.get(MASTER_UI_ENV):
        return os.environ[MASTER_UI_ENV].rstrip("/")
    local = local_cluster(master)
    if local is not None:
        return local.ui_url
    host = urllib.parse.urlparse(master.replace("spark://", "http://", 1)).hostname
    return f"http://{host}:8080"


def train(config: RunConfig, data: PreparedDataset, spec: NetworkSpec) -> TrainOutcome:
    started = time.perf_counter()
    ui = master_ui(config.master)
    workers_before = alive_workers(ui)
    cores = _cores_per_node(config, workers_before, ui)

    # the fixed start-up of a run, part by part (result.json: startup_breakdown)
    marks = {"checks": time.perf_counter() - started}
    spark = _session(config, cores)
    marks["spark_session"] = time.perf_counter() - started - sum(marks.values())
    try:
        executors = _wait_for_executors(spark, config, cores, ui)
        marks["executors"] = time.perf_counter() - started - sum(marks.values())
        from pyspark.ml.torch.distributor import TorchDistributor

        from higgsbench.engines.spark.rank import rank_main

        distributor = TorchDistributor(num_processes=config.nodes, local_mode=False, use_gpu=False)
        run_started = time.perf_counter()
        job = rank_job(config, spec, cores)
        try:
            # rank 0's epoch bar arrives as lines through Spark's log relay and is drawn here
            with progress.RemoteProgress(
                config.progress, config.batch_size, prefix=f"{config.nodes} ranks, "
            ) as bars:
                _serve_rank_logs_on_driver_address(bars.feed)
                result = distributor.run(rank_main, job)
        except Exception as exc:
            raise _explain_failure(
                exc, config, ui, workers_before, executors, time.perf_counter() - run_started
            ) from None
    finally:
        spark.stop()
    marks["after_training"] = time.perf_counter() - run_started - result["ranks_wall_seconds"]
    return _outcome(config, data, spec, result, cores, time.perf_counter() - started, marks)


def rank_job(config: RunConfig, spec: NetworkSpec, cores: int) -> dict:
    """What every rank receives: the run's whole configuration as a dict, and what the driver
    worked out for it (the network, cores per rank, absolute paths the workers can read)."""
    return {
        **config.to_dict(),
        "data": str(Path(config.data).resolve()),
        "spec": spec.to_dict(),
        "cores": cores,
        "checkpoint": str((config.out / "checkpoint.pt").resolve()),
        # whether rank 0 prints its progress for the driver to draw: only to a terminal
        "progress": progress.shown(config.progress),
        # made just before distributor.run(): the ranks time their launch from it
        "run_started_at": time.time(),
    }


def _serve_rank_logs_on_driver_address(feed) -> None:
    """TorchDistributor (pyspark 4.3) serves the ranks' log lines on an unauthenticated socket
    bound to 0.0.0.0; serve them on the driver's own address (127.0.0.1 for a local cluster),
    which is the address the ranks are told to send to anyway. Each line goes through
    ``feed`` (a RemoteProgress draws the progress lines); the rest go to stderr."""
    import socketserver
    import threading

    from pyspark.ml.torch import distributor, log_communication

    class RankLines(log_communication.WriteLogToStdout):
        def handle(self) -> None:
            self.request.setblocking(0)
            for bline in self._read_bline():
                line = feed(bline.decode("utf-8", errors="replace"))
                if line is not None:
                    with log_communication._get_log_print_lock():
                        sys.stderr.write(line + "\n")
                        sys.stderr.flush()

    class DriverAddressLogServer(log_communication.LogStreamingServer):
        def start(self, spark_host_address: str = "") -> None:
            address = spark_host_address or "127.0.0.1"
            self.port = self._get_free_port(address)
            self.server = socketserver.ThreadingTCPServer((address, self.port), RankLines)
            self.server.is_active = True
            self.serve_thread = threading.Thread(
                target=self.server.serve_forever,
                kwargs={"poll_interval": log_communication._SERVER_POLL_INTERVAL},
                daemon=True,
            )
            self.serve_thread.start()

        def shutdown(self) -> None:
            server = self.server
            super().shutdown()
            if server is not None:
                server.server_close()

    distributor.LogStreamingServer = DriverAddressLogServer


def _cores_per_node(config: RunConfig, workers: list[dict] | None, ui: str) -> int:
    if workers is not None and len(workers) < config.nodes:
        raise UsageError(
            f"--nodes {config.nodes}: only {len(workers)} worker(s) alive at {config.master} "
            f"(see {ui}); start more or ask for fewer nodes"
        )
    if config.cores_per_node:
        return config.cores_per_node
    if workers:
        return min(w["cores"] for w in workers)  # one rank uses a whole worker
    return 1


def _session(config: RunConfig, cores: int):
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise UsageError("pyspark is not installed: `pip install -e '.[spark]'`") from None
    # Executors run the driver's Python (the same virtual environment on every node).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(config.master)
        .appName(f"higgsbench {config.optimizer} x{config.nodes}")
        .config("spark.executor.cores", str(cores))
        .config("spark.task.cpus", str(cores))
        .config("spark.cores.max", str(cores * config.nodes))
        .config("spark.executor.memory", os.environ.get("HIGGSBENCH_EXECUTOR_MEMORY", "1g"))
        .config("spark.executorEnv.OMP_NUM_THREADS", str(cores))
        # a failed rank fails the run: no task or stage retries, no minutes-long slot waits
        .config("spark.task.maxFailures", "1")
        .config("spark.stage.maxConsecutiveAttempts", "1")
        .config("spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures", "1")
        .config("spark.scheduler.barrier.maxConcurrentTasksCheck.interval", "2s")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.killEnabled", "false")
    )
    if is_loopback_master(config.master):
        # A local cluster: every socket of the driver on loopback. The RPC and block manager
        # follow bindAddress; the web UI binds to $SPARK_LOCAL_IP (all interfaces without it).
        os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
        builder = builder.config("spark.driver.host", "127.0.0.1").config(
            "spark.driver.bindAddress", "127.0.0.1"
        )
    try:
        # the secret and the encryption settings reach the JVM from a private file, not argv
        with driver_properties(config.master):
            spark = builder.getOrCreate()
    except HiggsbenchError:
        raise
    except Exception as exc:  # py4j wraps whatever the JVM threw
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"no Spark application could start at {config.master}: the master did not accept "
            f"this driver. Check that it has the cluster's RPC secret (${SECRET_ENV} or "
            f"${SECRET_FILE_ENV}) and that the master is reachable ({first[:200]})"
        ) from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _executors(spark) -> list[str]:
    """Ids of the executors registered with this application (the driver excluded)."""
    ids = spark.sparkContext._jsc.sc().getExecutorIds()
    return [str(ids.apply(i)) for i in range(ids.size())]


def _wait_for_executors(spark, config: RunConfig, cores: int, ui: str) -> list[str]:
    deadline = time.monotonic() + config.worker_timeout
    while time.monotonic() < deadline:
        executors = _executors(spark)
        if len(executors) >= config.nodes:
            return executors
        if spark.sparkContext._jsc.sc().isStopped():
            break
        time.sleep(0.5)
    executors = _executors(spark)
    why = (
        "the master did not accept this driver: check that it has the cluster's RPC secret "
        f"(${SECRET_ENV} or ${SECRET_FILE_ENV})"
        if not executors
        else f"workers with {cores} free cores are missing"
    )
    raise UsageError(
        f"--nodes {config.nodes}: {len(executors)} executor(s) started within "
        f"{config.worker_timeout:.0f} s at {config.master}; {why} (master UI: {ui})"
    )


def _explain_failure(exc, config, ui, workers_before, executors, seconds) -> HiggsbenchError:
    time.sleep(2)  # let the master register the loss
    now = alive_workers(ui)
    lost = []
    if workers_before is not None and now is not None:
        alive_ids = {w["id"] for w in now}
        lost = [f"{w['id']} ({w['host']})" for w in workers_before if w["id"] not in alive_ids]
    checkpoint = config.out / "checkpoint.pt"
    resume = ""
    if checkpoint.exists():
        import torch

        done = len(torch.load(checkpoint, weights_only=False)["history"])
        resume = (
            f"; epochs 1–{done} are checkpointed in {checkpoint}: continue with "
            f"--resume (add --nodes N for the workers still alive)"
        )
    text = str(exc).strip().splitlines()
    detail = next(
        (line for line in text if "Exception" in line or "Error" in line),
        text[0] if text else type(exc).__name__,
    )
    if lost:
        return UsageError(
            f"worker {', '.join(lost)} was lost during training; the run stopped after "
            f"{seconds:.0f} s{resume}"
        )
    return UsageError(
        f"distributed training failed after {seconds:.0f} s on executors "
        f"{', '.join(executors)}: {detail[:400]}{resume}"
    )


def startup_breakdown(driver: dict, ranks: list[dict]) -> dict:
    """Where a run's fixed start-up went, in seconds: the driver's checks, its Spark session
    and waiting for executors; then, for the slowest rank, Spark scheduling the barrier stage
    and torchrun starting Python (``launch``), the rank's imports and the gloo process group
    forming (``process_group``: it waits for the last rank), reading its shard (``rank_data``),
    building the network and DDP and timing the all-reduce (``rank_setup``); and after the
    last epoch, the ranks returning the weights and the stage ending (``after_training``,
    with Spark's stop)."""
    slowest = max(ranks, key=lambda r: r["launch_seconds"] + r["startup_seconds"])
    return {
        "checks": driver["checks"],
        "spark_session": driver["spark_session"],
        "executors": driver["executors"],
        "launch": slowest["launch_seconds"],
        "process_group": slowest["group_seconds"],
        "rank_data": slowest["data_seconds"],
        "rank_setup": slowest["startup_seconds"]
        - slowest["group_seconds"]
        - slowest["data_seconds"],
        "after_training": driver["after_training"],
    }


# What result.json keeps of each rank's own account of its run
RANK_FACTS = (
    "rank",
    "host",
    "pid",
    "epoch_seconds",
    "startup_seconds",
    "launch_seconds",
    "group_seconds",
    "data_seconds",
    "shard_rows",
    "shard_sha256",
    "batch_size",
    "steps_per_epoch",
    "weights_sha256",
    "kernels",
)


def _outcome(config, data, spec, result, cores, total_seconds, marks) -> TrainOutcome:
    import numpy as np
    import torch

    from higgsbench.core import network
    from higgsbench.engines.torch_training import DeviceData, predict, save

    model = network.build_torch(spec)
    model.load_state_dict(
        {k: torch.from_numpy(np.asarray(v)) for k, v in result["weights"].items()}
    )
    save(model.state_dict(), config.out / "model.pt")  # whole, or a full disk said as such
    test = data.load("test", config.features)
    _, scores = predict(model, DeviceData(test.x, test.y, torch.device("cpu")))
    ranks = sorted(result["ranks"], key=lambda r: r["rank"])
    # An epoch of a synchronous job lasts as long as its slowest rank.
    epoch_seconds = [max(times) for times in zip(*(r["epoch_seconds"] for r in ranks), strict=True)]
    history = [EpochRecord(**h) for h in result["history"]]
    for h, seconds in zip(history, epoch_seconds, strict=True):
        h.seconds = seconds
    return TrainOutcome(
        device="cpu",
        nodes=config.nodes,
        cores_per_node=cores,
        hosts=[r["host"] for r in ranks],
        # everything but the epochs and their evaluations: session, executors, torchrun,
        # data loading on the ranks, returning the weights
        startup_seconds=total_seconds - history[-1].wall_seconds,
        epoch_seconds=epoch_seconds,
        history=history,
        test_labels=test.y,
        test_scores=scores,
        train_rows=sum(r["shard_rows"] for r in ranks),
        train_rows_per_epoch=result["steps_per_epoch"] * result["rank_batch_size"] * len(ranks),
        peak_gflops=None,
        extra={
            "ranks": [{k: r[k] for k in RANK_FACTS} for r in ranks],
            "startup_breakdown": startup_breakdown(marks, ranks),
            "master": config.master,
            "driver_host": socket.gethostname(),
            "allreduce": result["allreduce"],
            "schedule": result.get("schedule"),
        },
    )
