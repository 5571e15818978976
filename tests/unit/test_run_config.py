"""A run is described once: RunConfig's fields are the `train` options, `bench` passes a run to
its child with to_argv, and the Spark ranks receive the whole configuration as a dict."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from higgsbench import cli
from higgsbench import run as train
from higgsbench.core.config import RunConfig, to_argv
from higgsbench.core.network import network_spec
from higgsbench.engines.spark import engine as spark_engine
from higgsbench.engines.spark import rank as spark_rank
from higgsbench.sweep.plan import BenchPlan


def _parse(monkeypatch, argv: list[str]) -> RunConfig:
    """The RunConfig `higgsbench train ARGV…` would run, without running it."""
    seen = []
    monkeypatch.setattr(train, "run_training", seen.append)
    result = CliRunner().invoke(cli.app, ["train", *argv], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (config,) = seen
    return config


def _choices(name: str) -> list[str]:
    """The values `train --NAME` offers, for an option of fixed choices (none for others)."""
    command = typer.main.get_command(cli.app).commands["train"]
    ctx = command.make_context("train", ["--data", "d", "--out", "o"], resilient_parsing=True)
    (param,) = [p for p in command.params if p.name == name]
    return [item.value for item in param.shell_complete(ctx, "")]


def _not_default(f: dataclasses.Field):
    """A value of the field's type that is not its default, chosen from its annotation alone
    (or, for an option of fixed choices, from its choices), so that a field added later is
    walked too."""
    kind = f.type.replace(" | None", "")
    if kind == "str" and _choices(f.name):
        return next(c for c in _choices(f.name) if c != f.default)
    value = {
        "Path": Path(f"/somewhere/{f.name}"),
        "str": f"{f.name}-x",
        "int": 7,
        "float": 33.5,
        "bool": not f.default,
    }[kind]
    assert value != f.default
    return value


def test_every_field_survives_the_command_line_and_to_argv(monkeypatch):
    config = RunConfig(**{f.name: _not_default(f) for f in dataclasses.fields(RunConfig)})
    argv = to_argv(config)
    for f in dataclasses.fields(RunConfig):
        option = "--" + f.name.replace("_", "-")
        assert option in argv or f"--no-{option[2:]}" in argv, f"to_argv drops {f.name}"
    parsed = _parse(monkeypatch, argv)
    assert parsed == config
    assert to_argv(parsed) == argv
    assert parsed.to_dict() == {
        k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()
    }


def test_defaults_need_no_options_and_match_the_command_line(monkeypatch):
    config = RunConfig(data=Path("d"), out=Path("o"))
    assert to_argv(config) == ["--data", "d", "--out", "o"]
    assert _parse(monkeypatch, to_argv(config)) == config


def test_every_train_option_is_a_field():
    """Besides --check, which validates the run instead of running it."""
    options = set(inspect.signature(cli.train.train).parameters)
    assert options == {f.name for f in dataclasses.fields(RunConfig)} | {"check"}


@pytest.mark.parametrize(
    "engine, extra, expected",
    [
        ("torch", {"threads": 3}, {"--threads": "3"}),  # torch: the default engine
        (
            "spark",
            {"nodes": [1, 2], "master": "spark://m:7077", "cores_per_node": 2},
            {
                "--engine": "spark",
                "--nodes": "2",
                "--master": "spark://m:7077",
                "--cores-per-node": "2",
            },
        ),
    ],
)
def test_a_bench_child_gets_its_run_through_to_argv(monkeypatch, engine, extra, expected):
    plan = BenchPlan.of(
        data=Path("prepared"),
        out=Path("bench"),
        engines=[engine],
        optimizers=["sgd"],
        epochs=3,
        batch_size=4096,
        until_plateau=True,
        max_train_rows=500,
        **extra,
    )
    run = plan.runs()[-1]
    config = plan.config_for(run, Path("bench/run"))
    argv = to_argv(config)
    assert _parse(monkeypatch, argv) == config
    given = {
        option: value if value is not None and not value.startswith("--") else None
        for option, value in zip(argv, [*argv[1:], None], strict=True)
        if option.startswith("--")
    }
    assert given == {
        "--data": "prepared",
        "--out": str(Path("bench/run")),
        "--optimizer": "sgd",
        "--epochs": "3",
        "--batch-size": "4096",
        "--until-plateau": None,
        "--max-train-rows": "500",
        "--no-progress": None,
        **expected,
    }


def test_worker_timeout_reaches_the_spark_ranks(monkeypatch, tmp_path):
    config = _parse(
        monkeypatch,
        ["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--worker-timeout", "33"],
    )
    job = spark_engine.rank_job(config, network_spec(28, "thesis"), cores=2)
    assert job["worker_timeout"] == 33
    assert {f.name for f in dataclasses.fields(RunConfig)} <= set(job)
    assert job["checkpoint"] == str((tmp_path / "run" / "checkpoint.pt").resolve())
    # every key a rank reads (rank_main and what it calls) is one the driver sends
    tree = ast.parse(inspect.getsource(spark_rank))
    read = {
        node.slice.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == "job"
        and isinstance(node.slice, ast.Constant)
    }
    assert {"worker_timeout", "batch_size", "checkpoint"} <= read
    assert read <= set(job), f"a rank reads keys the driver does not send: {read - set(job)}"


def test_the_sweeps_child_command_runs_the_config_of_its_run(monkeypatch, tmp_path):
    """child_command is the run's RunConfig as argv, with the interpreter --python names for
    its engine, and the sweep's environment plus no progress bars; nothing else."""
    from higgsbench.sweep.plan import child_command

    plan = BenchPlan.of(
        data=tmp_path / "d", out=tmp_path / "sweep", engines=["spark", "bigdl"],
        optimizers=["sgd"], nodes=[1, 2], epochs=3, batch_size=512, seed=9,
        master="spark://127.0.0.1:7077", cores_per_node=1, python={"bigdl": "/opt/bigdl/python"},
    )  # fmt: skip
    spark = {"engine": "spark", "nodes": 2, "optimizer": "sgd"}
    argv, env = child_command(plan, spark, tmp_path / "sweep" / "r", {"HIGGSBENCH_SWEEP": "s"})
    assert argv[:4] == [sys.executable, "-m", "higgsbench", "train"]
    assert _parse(monkeypatch, argv[4:]) == plan.config_for(spark, tmp_path / "sweep" / "r")
    assert env == {"HIGGSBENCH_SWEEP": "s", "HIGGSBENCH_PROGRESS": "0"}
    bigdl = {"engine": "bigdl", "nodes": 1, "optimizer": "sgd"}
    argv, _ = child_command(plan, bigdl, tmp_path / "r2", {})
    assert argv[0] == "/opt/bigdl/python"
    assert _parse(monkeypatch, argv[4:]).engine == "bigdl"


def test_every_field_reaches_the_sweeps_children(monkeypatch, tmp_path):
    """A new RunConfig field is a `bench` setting too: given to the sweep's base, it reaches
    each child's command line unchanged, unless the sweep chooses it per run."""
    from higgsbench.sweep.plan import child_command

    base = RunConfig(**{f.name: _not_default(f) for f in dataclasses.fields(RunConfig)})
    plan = BenchPlan(base=base, engines=["torch"], optimizers=["sgd"])
    run = {"engine": "torch", "nodes": 1, "optimizer": "sgd"}
    argv, _ = child_command(plan, run, tmp_path / "r", {})
    parsed = _parse(monkeypatch, argv[4:])
    chosen_per_run = {"out", "engine", "optimizer", "nodes", "master", "progress"}
    chosen_per_run |= {"cores_per_node"}  # a single-process child with --threads given
    for f in dataclasses.fields(RunConfig):
        if f.name not in chosen_per_run:
            assert getattr(parsed, f.name) == getattr(base, f.name), f.name
    assert (parsed.engine, parsed.optimizer, parsed.out) == ("torch", "sgd", tmp_path / "r")
