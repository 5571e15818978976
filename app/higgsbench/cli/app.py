"""The command groups of `higgsbench`, their exit statuses and its --version; the commands
register themselves on them (cli/data.py, train.py, bench.py, cluster.py, report.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from higgsbench import __version__
from higgsbench.common.errors import RunFailed, UsageError
from higgsbench.common.signals import EXIT_INTERRUPTED, EXIT_TERMINATED

# Exit statuses, one meaning each (the top-level --help says them; tests/test_cli.py checks).
EXIT_FAILED = RunFailed.exit_status  # a run failed (`bench`: any of its runs), or a bug of ours
EXIT_USAGE = UsageError.exit_status  # bad input or usage: the message names what to fix

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

cluster_app = typer.Typer(
    help="A local Spark standalone cluster from the pip pyspark (no Docker).", no_args_is_help=True
)
app.add_typer(cluster_app, name="cluster")


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
