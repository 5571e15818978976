"""--recipe baldi: Baldi et al.'s (2014) training, as their published code runs it, applied by the
torch engine (and the Spark ranks, which share its fit()); engines that cannot apply it refuse.

Runs: the toy dataset, 1 000 training rows, the recipe's batch of 100 (10 steps an epoch), one
thread, 2 epochs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from higgsbench import cli
from higgsbench import run as train
from higgsbench.core import optimizers
from higgsbench.core.checks import validate
from higgsbench.core.config import RunConfig, to_argv
from higgsbench.core.network import PRESETS, build_torch, network_spec
from higgsbench.core.recipes import BALDI, RECIPES, Schedule, schedule_for
from higgsbench.engines.torch_training import DeviceData, fit
from tests.helpers import run_cli

COMMON = ("--threads", 1, "--seed", 42, "--max-train-rows", 1000)


def _train(data, out, *extra):
    run_cli("train", "--data", data, "--out", out, *COMMON, *extra, check=True)
    return json.loads((out / "result.json").read_text())


def _checkpoint(run: Path) -> dict:
    return torch.load(run / "checkpoint.pt", weights_only=False)


# ------------------------------------------------------------------ the recipe, as published


def test_the_recipe_is_baldi_et_al_s_published_one():
    # uci-igb/higgs-susy higgs/layers4_width300_lr005_m200_wd000001_all.py
    assert RECIPES == {"baldi": BALDI} and set(RECIPES) <= set(PRESETS)
    assert (BALDI.optimizer, BALDI.batch_size, BALDI.lr, BALDI.epochs) == ("sgd", 100, 0.05, 200)
    assert (BALDI.lr_decay, BALDI.lr_min) == (1.0000002, 1e-6)
    assert (BALDI.momentum_start, BALDI.momentum_end, BALDI.momentum_epochs) == (0.9, 0.99, 200)
    assert BALDI.weight_decay == 1e-5
    # the stopping rule: MonitorBased(prop_decrease=1e-5, N=10) on the validation objective
    assert (BALDI.plateau_epochs, BALDI.plateau_min_gain) == (10, 1e-5)
    spec = network_spec(28, "baldi")
    assert (spec.layers, spec.width, spec.activation) == (4, 300, "tanh")
    assert [spec.init_std(i) for i in range(5)] == [0.1, 0.05, 0.05, 0.05, 0.001]


def test_schedule_learning_rate_momentum_and_decay():
    s = schedule_for("baldi", "sgd", 0.05)
    assert s.lr_after(0) == 0.05
    assert s.lr_after(1000) == pytest.approx(0.05 / 1.0000002**1000, rel=1e-15)
    assert s.lr_after(10**9) == 1e-6  # the floor
    # pylearn2's MomentumAdjustor counts the monitor call before the first epoch
    assert s.momentum_of(1) == pytest.approx(0.9 + 0.09 / 200)
    assert s.momentum_of(100) == pytest.approx(0.945)
    assert s.momentum_of(200) == s.momentum_of(350) == pytest.approx(0.99)
    assert s.torch_weight_decay() == 2e-5  # d/dW of 1e-5 · ΣW²
    assert s.optimizer_options() == {"momentum": s.momentum_of(1), "weight_decay": 2e-5}
    # an optimizer without momentum keeps the rest of the schedule
    adam = schedule_for("baldi", "adam", 0.001)
    assert adam.momentum_of(5) is None and adam.optimizer_options() == {"weight_decay": 2e-5}
    assert schedule_for("thesis", "sgd", 0.01) is None


def test_stopping_rule_is_pylearn2_s_monitor_based():
    s = schedule_for("baldi", "sgd", 0.05)
    flat = [0.5] * 10
    assert not s.plateau_reached(flat)  # the first epoch sets the best: 9 without gain so far
    assert s.plateau_reached([0.5] * 11)
    # a gain > 1e-5 of the best resets the count; a smaller one does not
    assert not s.plateau_reached([0.5] * 6 + [0.5 * (1 - 2e-5)] + [0.5] * 9)
    assert s.plateau_reached([0.5] * 6 + [0.5 * (1 - 0.5e-5)] + [0.5] * 4)


def test_weight_decay_shrinks_weights_not_biases():
    model = torch.nn.Linear(3, 2)
    # a learning rate large enough for the decay to show in float32: one step, factor 0.98
    opt = optimizers.build_torch("sgd", model.parameters(), 1000, momentum=0.9, weight_decay=2e-5)
    assert [g["weight_decay"] for g in opt.param_groups] == [2e-5, 0.0]
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.9]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # nothing but the decay moves a parameter
    opt.step()
    assert torch.allclose(model.weight, before["weight"] * (1 - 1000 * 2e-5), rtol=1e-6, atol=0)
    assert torch.equal(model.bias, before["bias"])
    with pytest.raises(ValueError, match="momentum is an SGD setting"):
        optimizers.build_torch("adam", model.parameters(), momentum=0.9)


# ------------------------------------------------------------------ defaults and what wins


def _parse(monkeypatch, *argv) -> RunConfig:
    seen = []
    monkeypatch.setattr(train, "run_training", seen.append)
    args = ["train", "--data", "d", "--out", "o", *map(str, argv)]
    result = CliRunner().invoke(cli.app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return seen[0]


def test_the_recipe_sets_defaults_and_options_given_win(monkeypatch):
    config = _parse(monkeypatch, "--recipe", "baldi")
    effective = (config.optimizer, config.lr, config.batch_size, config.epochs)
    assert effective == ("sgd", 0.05, 100, 200)
    assert config.until_plateau
    # given explicitly, even at the field's own default, an option wins over the recipe
    given = _parse(
        monkeypatch,
        *("--recipe", "baldi", "--optimizer", "adam", "--batch-size", 1024),
        *("--lr", 0.01, "--epochs", 10, "--no-until-plateau"),
    )
    assert (given.optimizer, given.lr, given.batch_size, given.epochs) == ("adam", 0.01, 1024, 10)
    assert not given.until_plateau
    # a child's argv (bench) keeps them: left out, its recipe would set them again
    argv = to_argv(given)
    assert {"--optimizer", "--batch-size", "--epochs", "--no-until-plateau"} <= set(argv)
    assert _parse(monkeypatch, *argv[4:]) == given
    # the thesis recipe changes nothing
    assert _parse(monkeypatch) == RunConfig(data=Path("d"), out=Path("o"))


@pytest.mark.parametrize("engine", ["keras", "bigdl"])
def test_engines_that_cannot_apply_it_refuse(tmp_path, engine):
    proc = run_cli(
        "train", "--data", tmp_path / "d", "--out", tmp_path / "o", "--recipe", "baldi",
        "--engine", engine,
    )  # fmt: skip
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("higgsbench: error: "), proc.stderr
    assert "--recipe baldi" in lines[0] and f"the {engine} engine cannot apply" in lines[0]
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ applied by the torch engine


def test_torch_applies_the_schedule(toy_dataset, tmp_path):
    run = tmp_path / "baldi"
    record = _train(toy_dataset, run, "--recipe", "baldi", "--epochs", 2)
    # the effective values, as recorded
    effective = (record["optimizer"], record["batch_size"], record["learning_rate"])
    assert effective == ("sgd", 100, 0.05)
    assert record["config"]["until_plateau"] and record["config"]["lr"] == 0.05
    steps = record["steps_per_epoch"]
    assert steps == 10 and record["epochs"] == 2
    schedule = record["schedule"]
    assert schedule["recipe"] == "baldi" and schedule["weight_decay"] == 1e-5
    assert schedule["momentum"] == {"start": 0.9, "end": 0.99, "epochs": 200}
    assert [e["batches"] for e in schedule["epochs"]] == [steps, 2 * steps]
    assert [e["momentum"] for e in schedule["epochs"]] == pytest.approx([0.90045, 0.9009])
    for e in schedule["epochs"]:
        assert e["lr_after"] == pytest.approx(0.05 / 1.0000002 ** e["batches"], rel=1e-12)
    # the optimizer state saved after epoch 2: lr after 20 batches, epoch 2's momentum, decay
    groups = _checkpoint(run)["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([0.05 / 1.0000002**20] * 2, rel=1e-12)
    assert [g["momentum"] for g in groups] == pytest.approx([0.9 + 0.09 * 2 / 200] * 2)
    assert [g["weight_decay"] for g in groups] == [2e-5, 0.0]
    weights = torch.load(run / "model.pt", weights_only=True)
    dims = {name: w.ndim for name, w in weights.items()}
    assert len(groups[0]["params"]) == sum(d >= 2 for d in dims.values()) == 5
    assert len(groups[1]["params"]) == sum(d < 2 for d in dims.values()) == 5
    # the objective the stopping rule watches: validation BCE + 1e-5 · ΣW² of the last weights
    decay = sum(float(w.double().pow(2).sum()) for w in weights.values() if w.ndim >= 2)
    last = record["history"][-1]["val_loss"] + 1e-5 * decay
    assert schedule["epochs"][-1]["val_objective"] == pytest.approx(last, rel=1e-9)
    assert record["plateau"]["test_model"].startswith("weights of the last epoch")


def _tiny_run(schedule: Schedule):
    """A 4 → 8 → 1 network of the recipe's init, its optimizer, 200 rows of noise."""
    spec = network_spec(4, "baldi", width=8, layers=1)
    model = build_torch(spec, torch.Generator().manual_seed(0))
    options = schedule.optimizer_options()
    opt = optimizers.build_torch("sgd", model.parameters(), schedule.lr, **options)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(200, 4, generator=g), (torch.rand(200, generator=g) > 0.5).float()
    return model, opt, DeviceData(x.numpy(), y.numpy(), torch.device("cpu"))


def _fit(model, opt, data, schedule, **kw):
    kw = {"epochs": 2, "until_plateau": True, **kw}
    return fit(
        model, opt, data, data, batch_size=100, seed=1, show_progress=False, schedule=schedule,
        **kw,
    )  # fmt: skip


def test_a_resumed_run_continues_the_schedule(tmp_path):
    schedule = schedule_for("baldi", "sgd", 0.05)
    model, opt, data = _tiny_run(schedule)
    whole, _ = _fit(model, opt, data, schedule)
    broken, broken_opt, _ = _tiny_run(schedule)
    _fit(broken, broken_opt, data, schedule, epochs=1, checkpoint=tmp_path / "c.pt")
    again, again_opt, _ = _tiny_run(schedule)  # a fresh process: weights from the checkpoint
    resumed, _ = _fit(again, again_opt, data, schedule, checkpoint=tmp_path / "c.pt", resume=True)
    assert resumed.steps == whole.steps == 4
    assert resumed.schedule_log == whole.schedule_log
    for a, b in zip(opt.param_groups, again_opt.param_groups, strict=True):
        assert (a["lr"], a["momentum"]) == (b["lr"], b["momentum"])
        assert a["lr"] == schedule.lr_after(4) and a["momentum"] == schedule.momentum_of(2)
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


def test_fit_stops_by_the_recipe_s_rule():
    # learning rate 0: the validation objective never changes, so the first epoch sets the
    # best and the 10 after it gain nothing: 11 epochs, not the cap of 50
    schedule = Schedule(recipe=dataclasses.replace(BALDI, lr_min=0.0), lr=0.0, momentum=True)
    model, opt, data = _tiny_run(schedule)
    state, _ = _fit(model, opt, data, schedule, epochs=50)
    assert len(state.history) == 11
    assert len({e["val_objective"] for e in state.schedule_log}) == 1
    # without the rule it trains to the cap
    state, _ = _fit(model, opt, data, schedule, epochs=12, until_plateau=False)
    assert len(state.history) == 12


def test_the_papers_thousand_epochs_are_one_option_away(monkeypatch, toy_dataset, tmp_path):
    """The authors' repository says the published deep models trained for about 1000 epochs
    (a pylearn2 termination bug) while its scripts may stop near 200: `--epochs 1000
    --no-until-plateau` runs the paper's length, with the recipe's schedule otherwise."""
    config = _parse(monkeypatch, "--recipe", "baldi", "--epochs", 1000, "--no-until-plateau")
    assert (config.epochs, config.until_plateau, config.optimizer) == (1000, False, "sgd")
    validate(dataclasses.replace(config, data=toy_dataset, out=tmp_path / "o"))  # no cap
    schedule = Schedule(BALDI, lr=config.lr, momentum=True)
    assert [schedule.momentum_of(e) for e in (199, 200, 1000)] == pytest.approx(
        [0.9 + 0.09 * 199 / 200, 0.99, 0.99]  # saturated from epoch 200
    )
