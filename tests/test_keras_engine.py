"""engine=keras: the thesis' Keras/TensorFlow path, same network and contract, on genuine rows."""

import json
import subprocess
import sys

import pytest

from higgsbench.records.result import REQUIRED_KEYS
from tests.helpers import run_cli

pytest.importorskip("tensorflow", reason="the keras extra is not installed (pip install .[keras])")


def test_keras_builds_the_described_network():
    import keras

    from higgsbench.core.network import network_spec
    from higgsbench.engines.keras_engine import build_keras, build_optimizer

    spec = network_spec(28, "baldi")
    model = build_keras(keras, spec, seed=0)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [300, 300, 300, 300, 1]
    assert model.count_params() == spec.parameters()
    assert float(dense[0].kernel.numpy().std()) == pytest.approx(0.1, rel=0.05)
    assert dense[-1].activation.__name__ == "linear"  # logits; sigmoid applied when scoring
    adadelta = build_optimizer(keras, "adadelta", 1.0)
    assert adadelta.rho == 0.9 and adadelta.epsilon == 1e-6


@pytest.mark.slow
def test_keras_reaches_auc_070_on_the_genuine_sample(higgs_sample, tmp_path):
    prepared = tmp_path / "prepared"
    run_cli("data", "prepare", higgs_sample, "--out", prepared, check=True)
    run_cli(
        "train",
        "--engine",
        "keras",
        "--data",
        prepared,
        "--out",
        tmp_path / "run",
        "--optimizer",
        "adam",
        "--batch-size",
        128,
        "--epochs",
        40,
        "--until-plateau",
        "--seed",
        1,
        check=True,
        timeout=900,
    )
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    assert [k for k in REQUIRED_KEYS if k not in record] == []
    assert record["engine"] == "keras" and record["versions"]["keras"].startswith("3.")
    assert record["test_auc"] >= 0.70, record["test_auc"]


def test_keras_on_a_gpu_that_tensorflow_cannot_see_is_refused_with_the_fix(toy_dataset, tmp_path):
    """Here TensorFlow is the CPU-only build, as in the keras extra: --device cuda names that
    and the extra with the CUDA build, before anything is trained or written."""
    proc = run_cli("train", "--engine", "keras", "--device", "cuda", "--data", toy_dataset,
                   "--out", tmp_path / "run", "--epochs", 1, timeout=300)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "TensorFlow finds 0 GPU(s)" in proc.stderr and "a CPU-only build" in proc.stderr
    assert "'.[keras-gpu]'" in proc.stderr and "--device cpu" in proc.stderr
    assert not (tmp_path / "run" / "result.json").exists()


def test_keras_float32_is_not_tf32_and_its_peak_is_timed_in_the_runs_precision():
    """TensorFlow turns TF32 on by default (on GPUs that have it); torch does not. The engine
    sets it from --precision, so fp32 means float32 in both. Run in a child: TensorFlow's
    thread pools can be sized only before its first operation."""
    script = (
        "import sys; from types import SimpleNamespace as C\n"
        "from higgsbench.engines.keras_engine import _import_keras, _peak_gflops\n"
        "p = sys.argv[1]; tf, _ = _import_keras(C(device='cpu', on_gpu=False, precision=p), 1)\n"
        "print(tf.config.experimental.tensor_float_32_execution_enabled(),"
        " _peak_gflops(tf, p, gpu=False, seconds=0.1) > 0)\n"
    )
    seen = {}
    for precision in ("fp32", "tf32", "bf16"):
        proc = subprocess.run([sys.executable, "-c", script, precision], capture_output=True,
                              text=True, timeout=300, check=True)  # fmt: skip
        seen[precision] = proc.stdout.split()
    assert seen == {"fp32": ["False", "True"], "tf32": ["True", "True"], "bf16": ["False", "True"]}
