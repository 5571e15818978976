"""`higgsbench bench`: a sweep, or the summary of one read back (--from)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from higgsbench.cli.app import app
from higgsbench.cli.options import Check, Device, Features, Precision, completer, csv_list, integers
from higgsbench.cli.train import track_uri
from higgsbench.common.errors import UsageError
from higgsbench.core.optimizers import OPTIMIZERS
from higgsbench.engines import ENGINES


def _interpreters(items: list[str]) -> dict[str, str]:
    """--python ENGINE=INTERPRETER, repeated: {engine: interpreter}."""
    interpreters = {}
    for item in items:
        engine, _, interp = item.partition("=")
        if not interp:
            raise UsageError(f"--python {item!r}: expected ENGINE=INTERPRETER")
        interpreters[engine] = interp
    return interpreters


def _plain(text: str) -> None:
    typer.echo(text, err=True)


def _stamped(text: str) -> None:
    """--verbose: every line of a sweep that may run for hours says when it was written."""
    from datetime import datetime

    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    for line in text.splitlines() or [""]:
        typer.echo(f"{stamp} {line}", err=True)


@app.command("bench")
def bench(
    data: Annotated[
        Path | None,
        typer.Option(
            help="Prepared dataset directory.",
            show_default="none: needed without --from",
            rich_help_panel="Data",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Directory for bench.json, plots and every run (new or empty).",
            show_default="--from's directory; needed without --from",
            rich_help_panel="Output",
        ),
    ] = None,
    engines: Annotated[
        str,
        typer.Option(
            help=f"Engines, one or comma-separated, from: {','.join(ENGINES)}.",
            metavar="<engine[,engine…]>",
            autocompletion=completer(ENGINES),
            rich_help_panel="Model",
        ),
    ] = "torch",
    optimizers: Annotated[
        str,
        typer.Option(
            help=f"Optimizers, one or comma-separated, from: {','.join(OPTIMIZERS)}.",
            metavar="<optimizer[,optimizer…]>",
            autocompletion=completer(OPTIMIZERS),
            rich_help_panel="Training",
        ),
    ] = ",".join(OPTIMIZERS),
    nodes: Annotated[
        str,
        typer.Option(help="Node counts for cluster engines, e.g. 1,2,4", rich_help_panel="Cluster"),
    ] = "1",
    epochs: Annotated[
        int,
        typer.Option(
            help="Epochs per run (the median epoch is quoted).", rich_help_panel="Training"
        ),
    ] = 2,
    repeat: Annotated[
        int,
        typer.Option(
            help="Run every configuration this many times (the median over repeats is quoted, "
            "with the min–max), e.g. 3 for a sweep whose numbers are quoted.",
            rich_help_panel="Training",
        ),
    ] = 1,
    batch_size: Annotated[
        int, typer.Option(help="Global mini-batch size.", rich_help_panel="Training")
    ] = 4096,
    features: Annotated[
        Features,
        typer.Option(help="Feature set: low (21), high (7) or all (28).", rich_help_panel="Data"),
    ] = "all",
    seed: Annotated[int, typer.Option(help="Random seed.", rich_help_panel="Training")] = 42,
    device: Device = "cpu",
    precision: Annotated[
        Precision,
        typer.Option(help="Matrix arithmetic: fp32, tf32 or bf16.", rich_help_panel="Hardware"),
    ] = "fp32",
    threads: Annotated[
        int | None,
        typer.Option(
            help="Threads of single-process engines.",
            show_default="all cores",
            rich_help_panel="Hardware",
        ),
    ] = None,
    master: Annotated[
        str | None,
        typer.Option(
            help="Spark master URL for cluster engines.",
            show_default="none: spark needs one, bigdl runs locally",
            rich_help_panel="Cluster",
        ),
    ] = None,
    cores_per_node: Annotated[
        int | None,
        typer.Option(
            help="Cores per Spark rank.",
            show_default="the worker's cores",
            rich_help_panel="Cluster",
        ),
    ] = None,
    until_plateau: Annotated[
        bool,
        typer.Option(
            help="Train each run until validation AUC plateaus (cap: --epochs).",
            rich_help_panel="Training",
        ),
    ] = False,
    max_train_rows: Annotated[
        int | None,
        typer.Option(
            help="Use the first N training rows.", show_default="all", rich_help_panel="Data"
        ),
    ] = None,
    against: Annotated[
        Path | None,
        typer.Option(
            help="A cluster bench.json: say how many of its CPU cores this GPU equals.",
            rich_help_panel="Cluster",
        ),
    ] = None,
    python: Annotated[
        list[str] | None,
        typer.Option(
            help="ENGINE=INTERPRETER, e.g. bigdl=.venv-bigdl/bin/python (repeatable).",
            rich_help_panel="Hardware",
        ),
    ] = None,
    predict: Annotated[
        str | None,
        typer.Option(
            help="Predict epoch time for these node counts, e.g. 1,2,4,8,16,32,64.",
            rich_help_panel="Cluster",
        ),
    ] = None,
    bandwidth: Annotated[
        str, typer.Option(help="Network for --predict, e.g. 10Gbit.", rich_help_panel="Cluster")
    ] = "10Gbit",
    predict_cores: Annotated[
        int | None,
        typer.Option(
            help="Cores per node for --predict.",
            show_default="as measured",
            rich_help_panel="Cluster",
        ),
    ] = None,
    from_bench: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Use this bench.json instead of running a sweep.",
            rich_help_panel="Output",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            help="With --from: write into an --out that is not empty and was not made by "
            "higgsbench (its files of the same names are replaced).",
            rich_help_panel="Output",
        ),
    ] = False,
    track: Annotated[
        str | None,
        typer.Option(
            help="Log every run to this MLflow tracking server (as `train --track`), tagged "
            "higgsbench.sweep=OUT's name under one parent run holding bench.json; checked "
            "before the first run.",
            show_default="no tracking",
            metavar="URI",
            rich_help_panel="Output",
        ),
    ] = None,
    progress: Annotated[
        bool,
        typer.Option(
            "--progress/--no-progress",
            help="Show a bar over the sweep: which run of how many, and the time left.",
            rich_help_panel="Output",
        ),
    ] = True,
    check: Check = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Timestamp every line, and stream each run's own output (Spark, warnings) "
            "as it comes, prefixed with the run's name; it is in RUN/train.log either way.",
            rich_help_panel="Output",
        ),
    ] = False,
):
    """Sweep engines × nodes × optimizers; write bench.json and plots; print one RESULT line."""
    from higgsbench.common.limits import at_least
    from higgsbench.records.bench import read_bench
    from higgsbench.sweep.plan import BenchPlan
    from higgsbench.sweep.runner import run_bench
    from higgsbench.sweep.summary import finish_bench

    node_counts = integers("--nodes", nodes)
    predict_counts = integers("--predict", predict) if predict else None
    at_least("--predict-cores", predict_cores)
    say = _stamped if verbose else _plain
    # Both files are read before a sweep that may take hours, not after it.
    cluster = read_bench(against, "--against") if against is not None else None
    if from_bench is not None:
        out = from_bench.parent if out is None else out
        result = read_bench(from_bench, "--from")
    else:
        if data is None or out is None:
            raise UsageError("bench needs --data and --out (or --from BENCH_JSON)")
        if force:
            raise UsageError("--force is for --from's --out: a sweep's must be new or empty")
        plan = BenchPlan.of(
            data=data,
            out=out,
            epochs=epochs,
            batch_size=batch_size,
            features=features,
            seed=seed,
            device=device,
            precision=precision,
            threads=threads,
            master=master,
            cores_per_node=cores_per_node,
            until_plateau=until_plateau,
            max_train_rows=max_train_rows,
            track=track_uri(track),
            engines=csv_list(engines),
            optimizers=[name.lower() for name in csv_list(optimizers)],  # as train takes them
            nodes=node_counts,
            repeat=repeat,
            python=_interpreters(python or []),
            progress=progress,
            verbose=verbose,
        )
        plan.check()
        if check:
            typer.echo(f"checked: {len(plan.runs()) * repeat} runs, nothing was run")
            return
        result = run_bench(plan, echo=say)
    summary = finish_bench(
        result,
        out,
        runs_dir=from_bench.parent if from_bench else out,
        predict=predict_counts,
        bandwidth=bandwidth,
        predict_cores=predict_cores,
        against=cluster,
        force=force,
        echo=say,
    )
    typer.echo(summary)
    if result["failures"]:
        raise typer.Exit(1)
