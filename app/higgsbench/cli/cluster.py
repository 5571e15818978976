"""`higgsbench cluster up|status|down`: the local Spark standalone cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from higgsbench.cli.app import cluster_app

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
    from higgsbench.spark import cluster

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
    from higgsbench.spark import cluster

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
    from higgsbench.spark import cluster

    stopped = cluster.down(state_dir)
    typer.echo(f"cluster stopped: {stopped} process{'' if stopped == 1 else 'es'}")
