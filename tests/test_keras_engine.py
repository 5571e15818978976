"""engine=keras: the thesis' Keras/TensorFlow path, same network and contract, on genuine rows."""

import json

import pytest

from higgsbench.results import REQUIRED_KEYS
from tests.helpers import run_cli

pytest.importorskip("tensorflow", reason="the keras extra is not installed (pip install .[keras])")


def test_keras_builds_the_described_network():
    import keras

    from higgsbench.engines.keras_engine import build_keras, build_optimizer
    from higgsbench.network import network_spec

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
