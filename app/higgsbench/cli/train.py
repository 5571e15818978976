"""`higgsbench train`: one run; each option is named as its RunConfig field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from higgsbench.cli.app import app
from higgsbench.cli.options import (
    Check,
    Device,
    Engine,
    Features,
    Optimizer,
    Precision,
    Progress,
    Recipe,
    Track,
)


@app.command("train")
def train(
    data: Annotated[Path, typer.Option(help="Prepared dataset directory.", rich_help_panel="Data")],
    out: Annotated[
        Path,
        typer.Option(
            help="Run directory for result.json, model, checkpoint.", rich_help_panel="Output"
        ),
    ],
    engine: Annotated[
        Engine, typer.Option(help="Training engine.", rich_help_panel="Model")
    ] = "torch",
    # None marks an option not given: the recipe's default, else RunConfig's (_run_config)
    optimizer: Annotated[
        Optimizer | None,
        typer.Option(
            help="Optimizer, as in the thesis.",
            case_sensitive=False,
            show_default="adam; recipe baldi: sgd",
            rich_help_panel="Training",
        ),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            help="Learning rate (the first one, with a recipe's schedule; baldi's: 0.05).",
            show_default="the recipe's or the optimizer's own",
            rich_help_panel="Training",
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            help="Epochs (the cap, with --until-plateau).",
            show_default="10; recipe baldi: 200",
            rich_help_panel="Training",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Global mini-batch size.",
            show_default="1024; recipe baldi: 100",
            rich_help_panel="Training",
        ),
    ] = None,
    features: Annotated[
        Features,
        typer.Option(help="Feature set: low (21), high (7) or all (28).", rich_help_panel="Data"),
    ] = "all",
    seed: Annotated[
        int, typer.Option(help="Random seed for weights and shuffling.", rich_help_panel="Training")
    ] = 42,
    recipe: Annotated[
        Recipe,
        typer.Option(
            help="thesis (3×300 tanh) or baldi: Baldi et al.'s network (4×300 tanh, their "
            "init) and training (SGD, batch 100, lr 0.05 ÷ 1.0000002 per batch, momentum "
            "0.9→0.99 over 200 epochs, weight decay 1e-5, their stopping rule, ≤ 200 epochs); "
            "options given explicitly win (torch and spark engines).",
            rich_help_panel="Model",
        ),
    ] = "thesis",
    layers: Annotated[
        int | None,
        typer.Option(help="Hidden layers.", show_default="the recipe's", rich_help_panel="Model"),
    ] = None,
    width: Annotated[
        int | None,
        typer.Option(
            help="Units per hidden layer.", show_default="the recipe's", rich_help_panel="Model"
        ),
    ] = None,
    device: Device = "cpu",
    threads: Annotated[
        int | None,
        typer.Option(
            help="CPU threads.", show_default="all cores available", rich_help_panel="Hardware"
        ),
    ] = None,
    precision: Annotated[
        Precision,
        typer.Option(help="Matrix arithmetic: fp32, tf32 or bf16.", rich_help_panel="Hardware"),
    ] = "fp32",
    cuda_graphs: Annotated[
        bool,
        typer.Option(
            "--cuda-graphs/--no-cuda-graphs",
            help="Replay steps from a CUDA graph.",
            rich_help_panel="Hardware",
        ),
    ] = True,
    resume: Annotated[
        bool, typer.Option(help="Continue from OUT/checkpoint.pt.", rich_help_panel="Training")
    ] = False,
    until_plateau: Annotated[
        bool | None,
        typer.Option(
            "--until-plateau/--no-until-plateau",
            help="Stop when validation AUC gains < 1e-4 over 5 epochs; test the best epoch "
            "(recipe baldi: its own rule, on by default).",
            show_default="off; recipe baldi: on",
            rich_help_panel="Training",
        ),
    ] = None,
    max_train_rows: Annotated[
        int | None,
        typer.Option(
            help="Train on only the first N training rows.",
            show_default="all",
            rich_help_panel="Data",
        ),
    ] = None,
    master: Annotated[
        str | None,
        typer.Option(
            help="Spark master URL spark://HOST:PORT (engine spark, bigdl).",
            rich_help_panel="Cluster",
        ),
    ] = None,
    nodes: Annotated[
        int,
        typer.Option(help="Spark workers to train on, one rank each.", rich_help_panel="Cluster"),
    ] = 1,
    cores_per_node: Annotated[
        int | None,
        typer.Option(
            help="Cores per rank.", show_default="the worker's cores", rich_help_panel="Cluster"
        ),
    ] = None,
    worker_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds to wait for executors, and for a silent rank before failing.",
            rich_help_panel="Cluster",
        ),
    ] = 120.0,
    track: Track = None,
    progress: Progress = True,
    check: Check = False,
):
    """Train on a prepared dataset; write OUT/result.json and print it as `RESULT {…}`."""
    # Each parameter is named as its RunConfig field: a new option is one new field.
    from higgsbench.run import run_training

    track = track_uri(track)
    config = _run_config(locals())
    if check:
        from higgsbench.core.checks import validate

        validate(config)
        typer.echo(f"checked: the run's settings, {config.data} and {config.out}; nothing run")
        return
    run_training(config)


def track_uri(uri: str | None) -> str | None:
    """--track without its user:password part, which goes to MLflow's variables instead
    (tracking.credentials_to_environment): no config.json, record or child's command line
    holds the password."""
    if not uri:
        return uri
    from higgsbench.tracking import credentials_to_environment

    return credentials_to_environment(uri)


def _run_config(options: dict):
    """The RunConfig of `train`'s options. An option left out (None) takes its recipe's
    default (recipes.py), else the field's; an option given wins over the recipe."""
    import dataclasses

    from higgsbench.core.config import RunConfig
    from higgsbench.core.recipes import apply_defaults

    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    given = {name for name, value in options.items() if value is not None}
    filled = {
        name: fields[name].default if options[name] is None else options[name]
        for name in fields
        if name in options
    }
    return apply_defaults(RunConfig.from_options(filled), given)
