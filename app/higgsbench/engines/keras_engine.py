"""engine=keras: Keras 3 on TensorFlow, the thesis' standalone and GPU path, for comparison.

The same network description (layers, width, activation, Gaussian weights, zero biases,
logit output trained with binary cross-entropy from logits), the same optimizers with the
same learning rates and hyper-parameters as torch's (Keras' own defaults differ: Adadelta
ρ = 0.95, Adagrad's initial accumulator 0.1, ε = 1e-7 everywhere), the same prepared data
and standardisation, and the same result contract. Each epoch is one ``model.fit`` epoch
as a Keras user would run it (shuffled, last partial batch included), timed by a callback
from its first batch to its end; validation runs after it, untimed.

Installed with the extra: ``pip install -e '.[keras]'`` (CPU), ``'.[keras-gpu]'`` (TensorFlow's
CUDA build, as in the GPU image); imported only when chosen.
"""

from __future__ import annotations

import json
import os
import socket
import time

from higgsbench.common.errors import UsageError
from higgsbench.core import hardware
from higgsbench.core.config import EpochRecord, RunConfig, TrainOutcome, plateau_reached
from higgsbench.core.metrics import auc, binary_cross_entropy
from higgsbench.core.network import NetworkSpec
from higgsbench.core.optimizers import learning_rate
from higgsbench.data.prepared import PreparedDataset

EVAL_BATCH = 65_536


def _import_keras(config: RunConfig, threads: int):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError:
        raise UsageError(
            "--engine keras needs TensorFlow and Keras: `pip install -e '.[keras]'`"
        ) from None
    import keras

    # Thread pools must be sized before TensorFlow runs its first operation.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    gpus = tf.config.list_physical_devices("GPU")
    if config.on_gpu:
        index = int(config.device.partition(":")[2] or 0)
        if index >= len(gpus):
            raise UsageError(
                f"--device {config.device}: TensorFlow finds {len(gpus)} GPU(s) "
                f"({tf.__version__}{'' if tf.test.is_built_with_cuda() else ', a CPU-only build'})"
                "; the GPU image has its CUDA build (make images-gpu), elsewhere "
                "`pip install -c constraints.txt '.[keras-gpu]'`, or use --device cpu"
            )
        tf.config.set_visible_devices([gpus[index]], "GPU")
    else:
        tf.config.set_visible_devices([], "GPU")
    # TensorFlow computes float32 products in TF32 on Ampere and newer unless told not to;
    # torch does not, so each precision means the same arithmetic in both engines.
    tf.config.experimental.enable_tensor_float_32_execution(config.precision == "tf32")
    return tf, keras


def _device_name(tf, config: RunConfig) -> str:
    """As the torch engine names it: ``cuda:0 (NVIDIA H100 80GB HBM3)``, or ``cpu``."""
    if not config.on_gpu:
        return "cpu"
    (gpu,) = tf.config.get_visible_devices("GPU")
    name = tf.config.experimental.get_device_details(gpu).get("device_name", "GPU")
    return f"{config.device if ':' in config.device else 'cuda:0'} ({name})"


def build_keras(keras, spec: NetworkSpec, seed: int):
    layers = [keras.Input((spec.inputs,))]
    for index, (_, n_out) in enumerate(spec.layer_sizes()):
        init = keras.initializers.RandomNormal(0.0, spec.init_std(index), seed=seed + index)
        last = index == spec.layers
        layers.append(
            keras.layers.Dense(
                n_out,
                activation=None if last else spec.activation,
                kernel_initializer=init,
                bias_initializer="zeros",
            )
        )
        if not last and spec.dropout > 0:
            layers.append(keras.layers.Dropout(spec.dropout))
    return keras.Sequential(layers)


def build_optimizer(keras, name: str, lr: float):
    """torch's hyper-parameters, so that a name means the same algorithm in every engine."""
    opt = keras.optimizers
    return {
        "sgd": lambda: opt.SGD(learning_rate=lr),
        "adam": lambda: opt.Adam(learning_rate=lr, epsilon=1e-8),
        "adamax": lambda: opt.Adamax(learning_rate=lr, epsilon=1e-8),
        "adadelta": lambda: opt.Adadelta(learning_rate=lr, rho=0.9, epsilon=1e-6),
        "adagrad": lambda: opt.Adagrad(
            learning_rate=lr, initial_accumulator_value=0.0, epsilon=1e-10
        ),
    }[name]()


def _peak_gflops(tf, precision: str, gpu: bool, seconds: float = 0.5) -> float:
    """A square matrix product through TensorFlow in the run's arithmetic (bfloat16 for bf16,
    TF32 as set above): 1024 on a CPU, 8192 on a GPU (smaller ones leave a GPU idle), with
    only a scalar brought back to the host to wait for each product."""
    n = 8192 if gpu else 1024
    dtype = tf.bfloat16 if precision == "bf16" else tf.float32
    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)

    def product():
        return float(tf.cast((a @ b)[0, 0], tf.float32))

    for _ in range(3):
        product()
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        product()
        reps += 1
    return 2.0 * n**3 * reps / (time.perf_counter() - start) / 1e9


CHECKPOINT, PROGRESS = "checkpoint.keras", "checkpoint-history.json"


def _model(keras, config: RunConfig, spec: NetworkSpec):
    """The compiled model and the epochs it has done: from the checkpoint with --resume,
    else new, its weights from the seed."""
    checkpoint, progress_file = config.out / CHECKPOINT, config.out / PROGRESS
    if config.resume and checkpoint.exists():
        done = json.loads(progress_file.read_text())
        return keras.models.load_model(checkpoint), [EpochRecord(**h) for h in done["history"]]
    model = build_keras(keras, spec, config.seed)
    model.compile(
        optimizer=build_optimizer(
            keras, config.optimizer, learning_rate(config.optimizer, config.lr)
        ),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    return model, []


def _epochs(keras, model, config: RunConfig, train_split, val, history: list) -> list | None:
    """The epochs, each one model.fit epoch timed by a callback, evaluated and checkpointed;
    ``history`` grows by one record each. Returns the best validation epoch's weights with
    --until-plateau (the torch engine tests those too), else None."""

    class EpochClock(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                self.began = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.began
            self.loss = float(logs["loss"])

    clock = EpochClock()
    wall_start = time.perf_counter() - (history[-1].wall_seconds if history else 0.0)
    best_auc, best_weights = -1.0, None
    for epoch in range(len(history) + 1, config.epochs + 1):
        model.fit(
            train_split.x, train_split.y, batch_size=config.batch_size, epochs=1, shuffle=True,
            verbose=0, callbacks=[clock],
        )  # fmt: skip
        val_scores, val_loss = _scores(model, val)
        wall = time.perf_counter() - wall_start
        record = EpochRecord(
            epoch, clock.loss, val_loss, auc(val.y, val_scores), clock.seconds, wall
        )
        history.append(record)
        if config.until_plateau and record.val_auc > best_auc:
            best_auc, best_weights = record.val_auc, model.get_weights()
        model.save(config.out / CHECKPOINT)
        (config.out / PROGRESS).write_text(json.dumps({"history": [h.__dict__ for h in history]}))
        if config.until_plateau and plateau_reached([h.val_auc for h in history]):
            break
    return best_weights


def train(config: RunConfig, data: PreparedDataset, spec: NetworkSpec) -> TrainOutcome:
    started = time.perf_counter()
    # one process on one node, as torch: --cores-per-node is its threads unless --threads says
    threads = config.threads or config.cores_per_node or len(os.sched_getaffinity(0))
    # as every engine on a CPU: freed memory stays in the process (hardware.py says why)
    keeps_memory = not config.on_gpu and hardware.keep_freed_memory()
    tf, keras = _import_keras(config, threads)
    if config.precision != "fp32":
        keras.mixed_precision.set_global_policy(
            "mixed_bfloat16" if config.precision == "bf16" else "float32"
        )
    gemm_started = time.perf_counter()
    peak = _peak_gflops(tf, config.precision, gpu=config.on_gpu)
    gemm_seconds = time.perf_counter() - gemm_started
    keras.utils.set_random_seed(config.seed)

    train_split = data.load("train", config.features, max_rows=config.max_train_rows)
    val = data.load("val", config.features)
    test = data.load("test", config.features)
    model, history = _model(keras, config, spec)
    startup = time.perf_counter() - started - gemm_seconds
    best_weights = _epochs(keras, model, config, train_split, val, history)
    if best_weights is not None:  # as the torch engine: test the best validation epoch
        model.set_weights(best_weights)
    test_scores, _ = _scores(model, test)
    model.save(config.out / "model.keras")
    return TrainOutcome(
        device=_device_name(tf, config),
        nodes=1,
        cores_per_node=threads,
        hosts=[socket.gethostname()],
        startup_seconds=startup,
        epoch_seconds=[h.seconds for h in history],
        history=history,
        test_labels=test.y,
        test_scores=test_scores,
        train_rows=len(train_split),
        train_rows_per_epoch=len(train_split),
        peak_gflops=peak,
        extra={
            "threads": threads,
            "kernels": "tensorflow",
            "malloc_keeps_freed_memory": keeps_memory,
            "gemm_seconds": gemm_seconds,
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
        },
    )


def _scores(model, split):
    """Sigmoid scores of a split, predicted in large batches from the logits, and their BCE."""
    import numpy as np

    logits = model.predict(split.x, batch_size=EVAL_BATCH, verbose=0).reshape(-1)
    scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return scores, binary_cross_entropy(split.y, scores)
