"""The `higgsbench` command line: data, train, report, bench and the local Spark cluster.

Each command is a thin layer over a module: it turns options into a call and turns a
HiggsbenchError, or a usage error, into a one-line message and the exit status the top-level
--help documents (EXIT_CODES).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from higgsbench import __version__
from higgsbench.engines import ENGINES
from higgsbench.errors import HiggsbenchError
from higgsbench.features import FEATURE_SETS
from higgsbench.hardware import PRECISIONS
from higgsbench.network import PRESETS
from higgsbench.optimizers import OPTIMIZERS
from higgsbench.redact import redact_text
from higgsbench.signals import EXIT_INTERRUPTED, EXIT_TERMINATED, how_stopped

# Exit statuses, one meaning each (the top-level --help says them; tests/test_cli.py checks).
EXIT_FAILED = 1  # a run failed (`bench`: at least one of its runs), or a bug of ours
EXIT_USAGE = 2  # bad input or usage: the message names the option, file or setting to fix

EXIT_CODES = f"""Exit status:
  0    done
  {EXIT_FAILED}    a run failed (bench: any of its runs, log named) or an internal error
  {EXIT_USAGE}    bad input, usage or setting: the one line on stderr names it
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
  {EXIT_TERMINATED}  terminated (SIGTERM: kill, a batch system's time limit, docker stop)"""

app = typer.Typer(
    help="Train and benchmark deep networks that separate Higgs-like signal from tt̄ background "
    "(UCI HIGGS) on one CPU, one GPU or a Spark standalone cluster.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(
    help="Get HIGGS, prepare it for training, or generate toy events.", no_args_is_help=True
)
app.add_typer(data_app, name="data")

Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]
Track = Annotated[
    str | None,
    typer.Option(
        help="Log parameters, per-epoch metrics, results and plots to this MLflow tracking "
        "server, e.g. http://127.0.0.1:5000 (`make tracking-up`); checked before training.",
        show_default="no tracking",
        metavar="URI",
    ),
]

# Fixed choices: --help lists them, shell completion offers them, anything else is refused
# (exit 2) before a run starts. One list each, where the code that uses them keeps it.
Engine = Literal[tuple(ENGINES)]
Optimizer = Literal[OPTIMIZERS]
Features = Literal[tuple(FEATURE_SETS)]
Precision = Literal[PRECISIONS]
Recipe = Literal[tuple(PRESETS)]
DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?")


def _device(text: str) -> str:
    """--device: cpu, cuda or cuda:N (the GPU's index), the forms torch accepts."""
    if not DEVICE.fullmatch(text):
        raise typer.BadParameter(f"{text!r} is not one of 'cpu', 'cuda', 'cuda:N'.")
    return text


def _complete_device(incomplete: str) -> list[str]:
    return [
        d for d in ("cpu", "cuda", *(f"cuda:{i}" for i in range(8))) if d.startswith(incomplete)
    ]


Device = Annotated[
    str,
    typer.Option(
        help="cpu, cuda or cuda:N (torch and keras engines).",
        parser=_device,
        metavar="<cpu|cuda|cuda:N>",
        autocompletion=_complete_device,
    ),
]


def _completer(choices):
    """Completion for a comma-separated list: the names of ``choices`` not given yet, after
    what is typed so far."""

    def complete(incomplete: str) -> list[str]:
        done, _, last = incomplete.rpartition(",")
        given = set(done.split(",")) if done else set()
        prefix = f"{done}," if done else ""
        return [prefix + c for c in choices if c.startswith(last) and c not in given]

    return complete


def _version(value: bool):
    if value:
        typer.echo(f"higgsbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
):
    pass


# ---------------------------------------------------------------- data


@data_app.command("fetch")
def data_fetch(
    out: Annotated[Path, typer.Option(help="Where to write the file.")] = Path("data/HIGGS.csv.gz"),
    rows: Annotated[
        int | None,
        typer.Option(help="Keep only the first N rows (streamed: stops the download early)."),
    ] = None,
    url: Annotated[
        list[str] | None,
        typer.Option(
            help="Download address; repeat it for fallbacks, tried in order when one answers "
            "404/410 or is not data (default: UCI's higgs.zip, then its legacy HIGGS.csv.gz)."
        ),
    ] = None,
    retries: Annotated[int, typer.Option(help="Automatic resumes after a cut connection.")] = 5,
    force: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
    progress: Progress = True,
):
    """Download HIGGS (2.6 GB) from UCI: resumable, size-checked, sha256 beside it.

    UCI serves higgs.zip, a zip holding HIGGS.csv.gz; its legacy .../00280/HIGGS.csv.gz address
    is tried when that one answers 404 or 410. What arrives is told from its first bytes: an
    HTML page, or anything else that is not data, is an error and nothing is saved.

    OUT's name says what is kept: *.csv.gz (the default) the gzip-compressed CSV, so a served
    zip is unpacked and then removed; *.csv plain CSV; *.zip the zip as UCI serves it.
    The download goes to SERVED_NAME.part beside OUT (higgs.zip.part) and a cut one is resumed
    from there with a Range request, --retries times, or by running the command again.
    An OUT that exists already is refused unless --force.

    --rows N streams through the zip and the gzip inside it and stops after N rows; a stream
    cut before them is an error, never a short file.
    """
    from higgsbench.data.fetch import fetch

    info = fetch(url or None, out, rows=rows, retries=retries, show_progress=progress, force=force)
    typer.echo(json.dumps(info))


@data_app.command("prepare")
def data_prepare(
    src: Annotated[
        Path, typer.Argument(help="UCI-format HIGGS CSV: plain, gzip, or a zip holding one.")
    ],
    out: Annotated[Path, typer.Option(help="Directory for train/val/test Parquet + stats.json.")],
    rows: Annotated[int | None, typer.Option(help="Use only the first N rows.")] = None,
    val_rows: Annotated[
        int, typer.Option(help="Validation rows, taken before the test rows (≤ 10 % of the input).")
    ] = 500_000,
    test_rows: Annotated[
        int, typer.Option(help="Test rows, the last of the file (≤ 10 % of the input).")
    ] = 500_000,
    force: Annotated[bool, typer.Option(help="Replace OUT if it is a prepared dataset.")] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="An input of 11,000,000 rows must start with UCI's first rows.",
        ),
    ] = True,
    progress: Progress = True,
):
    """Split a HIGGS CSV into Parquet train/val/test sets, streaming in bounded memory.

    SRC may be plain CSV, gzip-compressed CSV, or a zip holding one (UCI's higgs.zip), told
    from its first bytes, not its name. An input with as many rows as UCI's HIGGS file
    (11,000,000) is checked against the published first rows and its row count reported.
    """
    from higgsbench.checks import no_link_loop
    from higgsbench.data.integrity import summary
    from higgsbench.data.prepare import prepare

    no_link_loop(src)  # before the check that OUT is not SRC resolves its links
    stats = prepare(
        src, out, rows, val_rows, test_rows, force=force, show_progress=progress, verify=verify
    )
    typer.echo(f"wrote {out}: rows {json.dumps(stats['rows'])} from {stats['source']}")
    if line := summary(stats["integrity"]):
        typer.echo(line)


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option(help="Directory for train/val/test Parquet + stats.json.")],
    events: Annotated[int, typer.Option(help="Number of events to generate.")] = 200_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same events).")] = 42,
    val_rows: Annotated[int, typer.Option(help="Validation rows (≤ 10 % of events).")] = 500_000,
    test_rows: Annotated[int, typer.Option(help="Test rows (≤ 10 % of events).")] = 500_000,
    jobs: Annotated[int, typer.Option(help="Processes generating in parallel.")] = 1,
    force: Annotated[bool, typer.Option(help="Replace OUT if it is a prepared dataset.")] = False,
    progress: Progress = True,
):
    """Generate toy Monte Carlo events (H⁰ → W H± → W W h⁰ vs tt̄), labelled generated."""
    from higgsbench.checks import seed as check_seed
    from higgsbench.data.prepare import synth

    check_seed("--seed", seed)
    stats = synth(events, out, seed, val_rows, test_rows, jobs, force, show_progress=progress)
    typer.echo(f"wrote {out}: GENERATED toy events, rows {json.dumps(stats['rows'])}")


@data_app.command("compare")
def data_compare(
    a: Annotated[Path, typer.Argument(help="A prepared dataset, or a UCI-format HIGGS CSV.")],
    b: Annotated[Path, typer.Argument(help="The dataset to compare A with (same kinds).")],
    out: Annotated[
        Path, typer.Option(help="Directory for compare.md/.json/.png (new, empty or higgsbench's).")
    ],
    max_rows: Annotated[int, typer.Option(help="Read at most N events of each.")] = 200_000,
    train_rows: Annotated[
        int, typer.Option(help="Boosted-trees training rows of each (the rest test).")
    ] = 8_000,
    force: Annotated[
        bool, typer.Option(help="Write into a non-empty OUT that higgsbench did not make.")
    ] = False,
):
    """Compare two datasets: per-feature histograms, KS table, boosted-trees AUC.

    Raw (unstandardised) features are compared: the two-sample Kolmogorov–Smirnov statistic
    per feature over all events and within each class, and the test AUC of gradient-boosted
    trees (fixed seed) on the low-level, high-level and all features of each.
    """
    from higgsbench.data.compare import compare

    result = compare(a, b, out, max_rows=max_rows, train_rows=train_rows, force=force)
    s = result["ks_summary"]["all"]
    auc = {k: result["boosted_trees"][k]["auc"] for k in ("a", "b")}
    generated = (
        " (GENERATED data involved)" if result["a"]["generated"] or result["b"]["generated"] else ""
    )
    typer.echo(
        f"wrote {out}/compare.md{generated}: KS median {s['median']:.3f}, max {s['max']:.3f} "
        f"({s['worst']}); AUC low/high/all A "
        + "/".join(f"{auc['a'][k]:.3f}" for k in ("low", "high", "all"))
        + " B "
        + "/".join(f"{auc['b'][k]:.3f}" for k in ("low", "high", "all"))
    )


# ---------------------------------------------------------------- train


@app.command("train")
def train(
    data: Annotated[Path, typer.Option(help="Prepared dataset directory.")],
    out: Annotated[Path, typer.Option(help="Run directory for result.json, model, checkpoint.")],
    engine: Annotated[Engine, typer.Option(help="Training engine.")] = "torch",
    # None marks an option not given: the recipe's default, else RunConfig's (_run_config)
    optimizer: Annotated[
        Optimizer | None,
        typer.Option(
            help="Optimizer, as in the thesis.",
            case_sensitive=False,
            show_default="adam; recipe baldi: sgd",
        ),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            help="Learning rate (the first one, with a recipe's schedule; baldi's: 0.05).",
            show_default="the recipe's or the optimizer's own",
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            help="Epochs (the cap, with --until-plateau).", show_default="10; recipe baldi: 200"
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Global mini-batch size.", show_default="1024; recipe baldi: 100"),
    ] = None,
    features: Annotated[
        Features, typer.Option(help="Feature set: low (21), high (7) or all (28).")
    ] = "all",
    seed: Annotated[int, typer.Option(help="Random seed for weights and shuffling.")] = 42,
    recipe: Annotated[
        Recipe,
        typer.Option(
            help="thesis (3×300 tanh) or baldi: Baldi et al.'s network (4×300 tanh, their "
            "init) and training (SGD, batch 100, lr 0.05 ÷ 1.0000002 per batch, momentum "
            "0.9→0.99 over 200 epochs, weight decay 1e-5, their stopping rule, ≤ 200 epochs); "
            "options given explicitly win (torch and spark engines)."
        ),
    ] = "thesis",
    layers: Annotated[
        int | None, typer.Option(help="Hidden layers.", show_default="the recipe's")
    ] = None,
    width: Annotated[
        int | None, typer.Option(help="Units per hidden layer.", show_default="the recipe's")
    ] = None,
    device: Device = "cpu",
    threads: Annotated[
        int | None, typer.Option(help="CPU threads.", show_default="all cores available")
    ] = None,
    precision: Annotated[
        Precision, typer.Option(help="Matrix arithmetic: fp32, tf32 or bf16.")
    ] = "fp32",
    cuda_graphs: Annotated[
        bool, typer.Option("--cuda-graphs/--no-cuda-graphs", help="Replay steps from a CUDA graph.")
    ] = True,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.pt.")] = False,
    until_plateau: Annotated[
        bool | None,
        typer.Option(
            "--until-plateau/--no-until-plateau",
            help="Stop when validation AUC gains < 1e-4 over 5 epochs; test the best epoch "
            "(recipe baldi: its own rule, on by default).",
            show_default="off; recipe baldi: on",
        ),
    ] = None,
    max_train_rows: Annotated[
        int | None,
        typer.Option(help="Train on only the first N training rows.", show_default="all"),
    ] = None,
    master: Annotated[
        str | None, typer.Option(help="Spark master URL spark://HOST:PORT (engine spark, bigdl).")
    ] = None,
    nodes: Annotated[int, typer.Option(help="Spark workers to train on, one rank each.")] = 1,
    cores_per_node: Annotated[
        int | None, typer.Option(help="Cores per rank.", show_default="the worker's cores")
    ] = None,
    worker_timeout: Annotated[
        float,
        typer.Option(help="Seconds to wait for executors, and for a silent rank before failing."),
    ] = 120.0,
    track: Track = None,
    progress: Progress = True,
):
    """Train on a prepared dataset; write OUT/result.json and print it as `RESULT {…}`."""
    # Each parameter is named as its RunConfig field: a new option is one new field.
    from higgsbench.train import run_training

    track = _track_uri(track)
    run_training(_run_config(locals()))


def _track_uri(uri: str | None) -> str | None:
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

    from higgsbench.contract import RunConfig
    from higgsbench.recipes import apply_defaults

    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    given = {name for name, value in options.items() if value is not None}
    filled = {
        name: fields[name].default if options[name] is None else options[name]
        for name in fields
        if name in options
    }
    return apply_defaults(RunConfig.from_options(filled), given)


# ---------------------------------------------------------------- bench


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _integers(option: str, text: str) -> list[int]:
    try:
        return [int(n) for n in _csv(text)]
    except ValueError:
        raise HiggsbenchError(f"{option} {text!r}: expected integers like 1,2,4") from None


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
            help="Prepared dataset directory.", show_default="none: needed without --from"
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Directory for bench.json, plots and every run (new or empty).",
            show_default="--from's directory; needed without --from",
        ),
    ] = None,
    engines: Annotated[
        str,
        typer.Option(
            help=f"Engines, one or comma-separated, from: {','.join(ENGINES)}.",
            metavar="<engine[,engine…]>",
            autocompletion=_completer(ENGINES),
        ),
    ] = "torch",
    optimizers: Annotated[
        str,
        typer.Option(
            help=f"Optimizers, one or comma-separated, from: {','.join(OPTIMIZERS)}.",
            metavar="<optimizer[,optimizer…]>",
            autocompletion=_completer(OPTIMIZERS),
        ),
    ] = ",".join(OPTIMIZERS),
    nodes: Annotated[str, typer.Option(help="Node counts for cluster engines, e.g. 1,2,4")] = "1",
    epochs: Annotated[int, typer.Option(help="Epochs per run (the median epoch is quoted).")] = 2,
    repeat: Annotated[
        int,
        typer.Option(
            help="Run every configuration this many times (the median over repeats is quoted, "
            "with the min–max), e.g. 3 for a sweep whose numbers are quoted."
        ),
    ] = 1,
    batch_size: Annotated[int, typer.Option(help="Global mini-batch size.")] = 4096,
    features: Annotated[
        Features, typer.Option(help="Feature set: low (21), high (7) or all (28).")
    ] = "all",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    device: Device = "cpu",
    precision: Annotated[
        Precision, typer.Option(help="Matrix arithmetic: fp32, tf32 or bf16.")
    ] = "fp32",
    threads: Annotated[
        int | None,
        typer.Option(help="Threads of single-process engines.", show_default="all cores"),
    ] = None,
    master: Annotated[
        str | None,
        typer.Option(
            help="Spark master URL for cluster engines.",
            show_default="none: spark needs one, bigdl runs locally",
        ),
    ] = None,
    cores_per_node: Annotated[
        int | None,
        typer.Option(help="Cores per Spark rank.", show_default="the worker's cores"),
    ] = None,
    until_plateau: Annotated[
        bool, typer.Option(help="Train each run until validation AUC plateaus (cap: --epochs).")
    ] = False,
    max_train_rows: Annotated[
        int | None, typer.Option(help="Use the first N training rows.", show_default="all")
    ] = None,
    against: Annotated[
        Path | None,
        typer.Option(help="A cluster bench.json: say how many of its CPU cores this GPU equals."),
    ] = None,
    python: Annotated[
        list[str] | None,
        typer.Option(help="ENGINE=INTERPRETER, e.g. bigdl=.venv-bigdl/bin/python (repeatable)."),
    ] = None,
    predict: Annotated[
        str | None,
        typer.Option(help="Predict epoch time for these node counts, e.g. 1,2,4,8,16,32,64."),
    ] = None,
    bandwidth: Annotated[str, typer.Option(help="Network for --predict, e.g. 10Gbit.")] = "10Gbit",
    predict_cores: Annotated[
        int | None,
        typer.Option(help="Cores per node for --predict.", show_default="as measured"),
    ] = None,
    from_bench: Annotated[
        Path | None,
        typer.Option("--from", help="Use this bench.json instead of running a sweep."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            help="With --from: write into an --out that is not empty and was not made by "
            "higgsbench (its files of the same names are replaced)."
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
        ),
    ] = None,
    progress: Annotated[
        bool,
        typer.Option(
            "--progress/--no-progress",
            help="Show a bar over the sweep: which run of how many, and the time left.",
        ),
    ] = True,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Timestamp every line, and stream each run's own output (Spark, warnings) "
            "as it comes, prefixed with the run's name; it is in RUN/train.log either way.",
        ),
    ] = False,
):
    """Sweep engines × nodes × optimizers; write bench.json and plots; print one RESULT line."""
    from higgsbench.bench import BenchPlan, finish_bench, read_bench, run_bench
    from higgsbench.checks import at_least

    node_counts = _integers("--nodes", nodes)
    predict_counts = _integers("--predict", predict) if predict else None
    interpreters = {}
    for item in python or []:
        engine, _, interp = item.partition("=")
        if not interp:
            raise HiggsbenchError(f"--python {item!r}: expected ENGINE=INTERPRETER")
        interpreters[engine] = interp
    plan = BenchPlan(
        data=data,
        out=out,
        engines=_csv(engines),
        optimizers=[name.lower() for name in _csv(optimizers)],  # as train takes them
        nodes=node_counts,
        epochs=epochs,
        repeat=repeat,
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
        python=interpreters,
        track=_track_uri(track),
        progress=progress,
        verbose=verbose,
    )
    plan.check()
    say = _stamped if verbose else _plain
    at_least("--predict-cores", predict_cores)
    # Both files are read before a sweep that may take hours, not after it.
    cluster = read_bench(against, "--against") if against is not None else None
    if from_bench is not None:
        out = from_bench.parent if out is None else out
        result = read_bench(from_bench, "--from")
    else:
        if data is None or out is None:
            raise HiggsbenchError("bench needs --data and --out (or --from BENCH_JSON)")
        if force:
            raise HiggsbenchError("--force is for --from's --out: a sweep's must be new or empty")
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


# ---------------------------------------------------------------- cluster

cluster_app = typer.Typer(
    help="A local Spark standalone cluster from the pip pyspark (no Docker).", no_args_is_help=True
)
app.add_typer(cluster_app, name="cluster")
StateDir = Annotated[
    Path, typer.Option(help="Where the cluster keeps state, logs, pids and its secret.")
]


@cluster_app.command("up")
def cluster_up(
    workers: Annotated[int, typer.Option(help="Number of workers.")] = 2,
    cores: Annotated[int, typer.Option(help="Cores per worker.")] = 1,
    memory: Annotated[str, typer.Option(help="Memory per worker, e.g. 2g.")] = "2g",
    state_dir: StateDir = Path(".state/cluster"),
    rpc_encryption: Annotated[
        bool,
        typer.Option(
            "--rpc-encryption/--no-rpc-encryption",
            help="Encrypt Spark RPC (AES); turn it off only to measure what it costs.",
        ),
    ] = True,
):
    """Start a master and N workers on 127.0.0.1 with RPC authentication and encryption.

    STATE_DIR must be new, empty, or the state of an earlier `cluster up` (it is marked); only
    what `up` wrote there is replaced.
    """
    from higgsbench import cluster

    state = cluster.up(workers, cores, memory, state_dir, rpc_encryption=rpc_encryption)
    typer.echo(f"master  {state.master_url}")
    typer.echo(f"web UI  {state.ui_url}")
    typer.echo(f"workers {state.workers} × {state.cores} cores, {state.memory}")
    typer.echo(f"secret  {state.secret_file} (mode 0600)")
    if not state.rpc_encryption:
        typer.echo("WARNING: RPC encryption is off (--no-rpc-encryption)", err=True)


@cluster_app.command("status")
def cluster_status(
    state_dir: StateDir = Path(".state/cluster"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """Alive workers, their cores, and the master URL."""
    from higgsbench import cluster

    info = cluster.status(state_dir)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(f"master  {info['master_url']} ({'up' if info['master_up'] else 'DOWN'})")
    typer.echo(f"web UI  {info['ui_url']}")
    typer.echo(f"alive   {info['alive_workers']} workers, {info['cores']} cores")
    for w in info["workers"]:
        typer.echo(f"  {w['id']}  {w['state']:6s} {w['cores']} cores {w['memory_mb']} MB")


@cluster_app.command("down")
def cluster_down(state_dir: StateDir = Path(".state/cluster")):
    """Stop the master and workers and make sure no process of theirs is left.

    Only processes proven to be this cluster's are signalled: they carry the token `up` gave
    the daemons, or (where that cannot be read) they are the JVM of a pid file's Spark class
    started after the cluster. A pid file left by a crash or a reboot that now names another
    process is ignored; one that holds no process id is refused, naming it.
    """
    from higgsbench import cluster

    stopped = cluster.down(state_dir)
    typer.echo(f"cluster stopped: {stopped} process{'' if stopped == 1 else 'es'}")


# ---------------------------------------------------------------- report


@app.command("report")
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run directories holding result.json.")],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Directory for plots and report.md (new, empty or higgsbench's).",
            show_default="the first run's directory",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Write into a non-empty OUT that higgsbench did not make.")
    ] = False,
):
    """Plots (loss and AUC per epoch, ROC, output histograms, FOM against cut) and report.md."""
    from higgsbench.report import write_report

    path = write_report(runs, out, force=force)
    typer.echo(f"wrote {path}")


def main() -> None:
    """The one error boundary: whatever the input, one line on stderr, never a traceback.
    A problem the user can fix (a bad option, choice, file or setting) exits 2 naming it; a
    sweep with a failed run exits 1, and so does a bug of ours (HIGGSBENCH_DEBUG=1 shows its
    traceback); Ctrl-C exits 130 and SIGTERM 143, after the same clean-up. EXIT_CODES, in
    the top-level --help, says the same."""
    debug = os.environ.get("HIGGSBENCH_DEBUG", "") not in ("", "0")
    try:
        # Not standalone: typer's usage errors reach this boundary and are worded like ours.
        # The program name is fixed so that `python -m higgsbench` completes as the script.
        status = app(prog_name="higgsbench", standalone_mode=False)
    except typer.TyperException as exc:  # a usage error: unknown option, bad choice or value
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(EXIT_USAGE)  # the help is printed already
        _fail(f"error: {_usage_error(exc)}", exc.exit_code)
    except HiggsbenchError as exc:
        _fail(f"error: {exc}", getattr(exc, "exit_code", EXIT_USAGE))
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (signals.Terminated)
        _fail(*how_stopped(exc))
    except typer.Abort:  # typer turns EOF on a prompt into Abort
        _fail("interrupted", EXIT_INTERRUPTED)
    except OSError as exc:
        # A file system refusal (permissions, a read-only or full disk, a file where a
        # directory should be): the system's words and the path are what the user needs.
        if debug:
            raise
        _fail(f"error: {_os_error(exc)}", EXIT_USAGE)
    except Exception as exc:
        if debug:
            raise
        _fail(
            f"internal error: {type(exc).__name__}: {exc}; please report it "
            "(set HIGGSBENCH_DEBUG=1 for the traceback)",
            EXIT_FAILED,
        )
    # typer returns what typer.Exit carried, and 130 for a Ctrl-C it caught itself
    if status == EXIT_INTERRUPTED:
        _fail(*how_stopped())
    sys.exit(status if isinstance(status, int) else 0)


def _usage_error(exc: typer.TyperException) -> str:
    message = exc.format_message().replace("Value error, ", "").rstrip(".")
    ctx = getattr(exc, "ctx", None)
    return f"{message} (see `{ctx.command_path} --help`)" if ctx is not None else message


def _os_error(exc: OSError) -> str:
    if not exc.strerror:
        return str(exc)
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{exc.strerror}: {' -> '.join(paths)}" if paths else exc.strerror


def _fail(message: str, status: int) -> None:
    # One line, whatever the message holds: a log reader greps for "higgsbench: error". No
    # secret of an address in it, whichever module worded it.
    print(f"higgsbench: {redact_text(' '.join(message.split()))}", file=sys.stderr)
    sys.exit(status)
