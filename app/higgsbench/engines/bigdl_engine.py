"""engine=bigdl: Intel BigDL DLlib on Spark, the thesis' cluster engine, kept for comparison.

The same network description (Linear layers with Gaussian weights and zero biases, tanh,
sigmoid output trained with binary cross-entropy), the same prepared data and
standardisation, the same optimizers where BigDL has them (its Adadelta has no learning
rate: it is 1.0, as in torch's default), and the same result contract.

BigDL pins pyspark 3.4.1 and numpy ≤ 1.26.4, so it runs in its own environment:
``make venv-bigdl`` (.venv-bigdl) or the bigdl image (docker/Dockerfile, FLAVOUR=bigdl). Its jar is
passed to the executors with ``spark.jars``. ``--master local[N]`` trains in one process
with N cores; ``--master spark://…`` on a standalone cluster with RPC authentication.

Timing: each epoch is one ``optimize()`` call continued from the last (BigDL keeps its
optimizer state), timed on the driver; it includes BigDL's per-call job set-up, which the
first epoch also pays for caching the data. The median epoch is the one quoted.
"""

from __future__ import annotations

import glob
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np

from higgsbench.common.errors import HiggsbenchError, UsageError
from higgsbench.common.paths import new_dir
from higgsbench.common.progress import progress_bar
from higgsbench.core.checks import bigdl_cores
from higgsbench.core.config import EpochRecord, RunConfig, TrainOutcome, plateau_reached
from higgsbench.core.engine import BIGDL_LOCAL
from higgsbench.core.metrics import auc, binary_cross_entropy
from higgsbench.core.network import NetworkSpec
from higgsbench.core.optimizers import learning_rate
from higgsbench.data.prepared import PreparedDataset

# BigDL's training summary, a directory of the run (removed with a run that has no result)
SUMMARY_PREFIX = "bigdl-summary-"


def _import_bigdl():
    try:
        import bigdl.dllib  # noqa: F401
    except ImportError:
        raise UsageError(
            "--engine bigdl needs BigDL DLlib, which lives in its own environment: "
            "`make venv-bigdl`, then run .venv-bigdl/bin/higgsbench (or use the bigdl image)"
        ) from None


def bigdl_jars() -> list[str]:
    import bigdl

    root = os.path.dirname(bigdl.__path__[0] if hasattr(bigdl, "__path__") else bigdl.__file__)
    jars = glob.glob(os.path.join(root, "bigdl", "share", "*", "lib", "*.jar"))
    if not jars:
        raise UsageError("BigDL's jars were not found next to the bigdl package")
    return sorted(jars)


def _master_shape(config: RunConfig) -> tuple[str, int, int]:
    """(master URL, nodes, cores per node), of a master core/checks.py has accepted."""
    master = config.master or BIGDL_LOCAL
    cores = bigdl_cores(master, config.nodes, config.cores_per_node)
    if master.startswith("local"):
        return master, 1, cores
    return master, config.nodes, config.cores_per_node or 1


def _context(config: RunConfig, master: str, nodes: int, cores: int):
    from bigdl.dllib.nncontext import init_nncontext
    from bigdl.dllib.utils.common import create_spark_conf

    from higgsbench.spark.security import driver_properties, is_loopback_master

    conf = (
        create_spark_conf()
        .setMaster(master)
        .setAppName(f"higgsbench bigdl {config.optimizer} x{nodes}")
    )
    # Python workers run this environment's interpreter, where BigDL is installed.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf.set("spark.jars", ",".join(bigdl_jars()))
    conf.set("spark.ui.showConsoleProgress", "false")
    if master.startswith("spark://"):
        conf.set("spark.executor.cores", str(cores))
        conf.set("spark.cores.max", str(cores * nodes))
        conf.set("spark.task.maxFailures", "1")
    conf.set("spark.ui.killEnabled", "false")
    if is_loopback_master(master):
        os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"  # the driver's UI on loopback too
    try:
        # the secret and the encryption settings reach the JVM from a private file, not argv
        with driver_properties(master):
            sc = init_nncontext(
                conf, cluster_mode="spark-submit", spark_log_level="ERROR", redirect_spark_log=False
            )
    except HiggsbenchError:
        raise
    except Exception as exc:  # py4j wraps what the JVM threw
        raise UsageError(f"BigDL could not start on {master}: {str(exc)[:300]}") from None
    return sc


def build_bigdl(spec: NetworkSpec):
    from bigdl.dllib.nn.initialization_method import RandomNormal, Zeros
    from bigdl.dllib.nn.layer import Dropout, Linear, ReLU, Sequential, Sigmoid, Tanh

    activation = {"tanh": Tanh, "relu": ReLU, "sigmoid": Sigmoid}[spec.activation]
    model = Sequential()
    for index, (n_in, n_out) in enumerate(spec.layer_sizes()):
        model.add(
            Linear(n_in, n_out).set_init_method(RandomNormal(0.0, spec.init_std(index)), Zeros())
        )
        if index < spec.layers:
            model.add(activation())
            if spec.dropout > 0:
                model.add(Dropout(spec.dropout))
    model.add(Sigmoid())
    return model


def build_optimizer(name: str, lr: float):
    from bigdl.dllib.optim import optimizer as o

    if name == "adadelta":
        assert lr == 1.0, "BigDL's Adadelta has no learning rate (core/checks.py refuses one)"
        return o.Adadelta(decayrate=0.9, epsilon=1e-6)
    return {
        "sgd": lambda: o.SGD(learningrate=lr),
        "adam": lambda: o.Adam(learningrate=lr, epsilon=1e-8),
        "adamax": lambda: o.Adamax(learningrate=lr, epsilon=1e-8),
        "adagrad": lambda: o.Adagrad(learningrate=lr),
    }[name]()


def _scores(model, split) -> tuple[np.ndarray, float]:
    """Sigmoid outputs of a split (the BigDL network ends in a sigmoid) and their mean BCE."""
    probs = model.predict_local(split.x, batch_size=max(1, min(len(split.x), 65536)))
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    return probs, binary_cross_entropy(split.y, probs)


@contextmanager
def _watch_iterations(summary, bar, after: int, every: float = 1.0):
    """While ``optimize()`` runs on the JVM, move ``bar`` to the iterations BigDL has logged
    in its train summary since iteration ``after`` (read on a thread of its own; py4j gives
    every thread its own connection)."""
    stop = threading.Event()

    def look() -> bool:
        try:
            bar.update(sum(1 for step, _, _ in summary.read_scalar("Loss") if step > after))
        except Exception:  # the context is stopping: the bar is only a view
            return False
        return True

    def watch() -> None:
        while not stop.wait(every) and look():
            pass

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        look()  # where the epoch ended


def _epochs(optimizer, summary, config: RunConfig, val, steps: int):
    """One optimize() call per epoch, timed on the driver, its loss read from the training
    summary, the validation set evaluated; the trained model and the epochs' records."""
    from bigdl.dllib.optim.optimizer import MaxEpoch

    history: list[EpochRecord] = []
    wall_start = time.perf_counter()
    seen_iterations, model = 0, None
    for epoch in range(1, config.epochs + 1):
        optimizer.set_end_when(MaxEpoch(epoch))
        title = f"epoch {epoch}/{config.epochs}"
        events = config.batch_size
        with (
            progress_bar(title, steps, show=config.progress, events_per_step=events) as bar,
            _watch_iterations(summary, bar, seen_iterations),
        ):
            began = time.perf_counter()
            model = optimizer.optimize()
            seconds = time.perf_counter() - began
        losses = [v for step, v, _ in summary.read_scalar("Loss") if step > seen_iterations]
        seen_iterations += len(losses)
        val_scores, val_loss = _scores(model, val)
        loss = float(np.mean(losses)) if losses else float("nan")
        wall = time.perf_counter() - wall_start
        history.append(EpochRecord(epoch, loss, val_loss, auc(val.y, val_scores), seconds, wall))
        if config.until_plateau and plateau_reached([h.val_auc for h in history]):
            break
    return model, history


def train(config: RunConfig, data: PreparedDataset, spec: NetworkSpec) -> TrainOutcome:
    started = time.perf_counter()
    _import_bigdl()
    from bigdl.dllib.nn.criterion import BCECriterion
    from bigdl.dllib.optim.optimizer import MaxEpoch, Optimizer, TrainSummary
    from bigdl.dllib.utils.common import Sample

    master, nodes, cores = _master_shape(config)  # resume and the batch: core/checks.py
    sc = _context(config, master, nodes, cores)
    try:
        train_split = data.load("train", config.features, max_rows=config.max_train_rows)
        val = data.load("val", config.features)
        test = data.load("test", config.features)
        rows = sc.parallelize(
            list(zip(train_split.x, train_split.y.reshape(-1, 1), strict=True)),
            numSlices=nodes * cores,
        ).map(lambda r: Sample.from_ndarray(r[0], r[1]))
        model = build_bigdl(spec)
        lr = learning_rate(config.optimizer, config.lr)
        optimizer = Optimizer.create(
            model=model,
            training_set=rows,
            criterion=BCECriterion(),
            end_trigger=MaxEpoch(1),
            batch_size=config.batch_size,
            optim_method=build_optimizer(config.optimizer, lr),
        )
        # the umask's mode, not mkdtemp's 0700: results follow the user's umask
        summary_dir = str(new_dir(config.out, SUMMARY_PREFIX))
        summary = TrainSummary(summary_dir, "train")
        optimizer.set_train_summary(summary)
        startup = time.perf_counter() - started
        steps = -(-len(train_split) // config.batch_size)
        model, history = _epochs(optimizer, summary, config, val, steps)
        test_scores, _ = _scores(model, test)
        model.saveModel(str(config.out / "model.bigdl"), over_write=True)
        infos = sc._jsc.sc().statusTracker().getExecutorInfos()
        hosts = sorted({i.host() for i in infos}) or [socket.gethostname()]
    finally:
        sc.stop()
    return TrainOutcome(
        device="cpu",
        nodes=nodes,
        cores_per_node=cores,
        hosts=hosts,
        startup_seconds=startup,
        epoch_seconds=[h.seconds for h in history],
        history=history,
        test_labels=test.y,
        test_scores=test_scores,
        train_rows=len(train_split),
        train_rows_per_epoch=len(train_split),
        peak_gflops=None,
        extra={
            "master": master,
            "iterations_per_epoch": steps,
            "epoch_timing": "driver wall time of one optimize() call per epoch",
        },
    )
