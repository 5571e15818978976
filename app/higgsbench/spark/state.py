"""The local cluster's saved state: its directory (marked by `up`, holding the cluster's
process token), cluster.json, and which cluster, if any, serves a master URL. Read by the
cluster's commands (spark/cluster.py), by every driver for the secret (spark/security.py)
and by the Spark engine for the master's web UI."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from higgsbench.common.atomic import write_text_atomic
from higgsbench.common.errors import HiggsbenchError, UsageError
from higgsbench.common.shapes import read_record

DEFAULT_STATE_DIR = Path(os.environ.get("HIGGSBENCH_STATE_DIR", ".state/cluster"))
# Written by `up` before anything else, holding the cluster's process token: a directory
# without it is not ours to clear or to stop processes for.
MARKER = ".higgsbench-cluster"
TOKEN_ENV = "HIGGSBENCH_CLUSTER_TOKEN"

# cluster.json as `up` writes it (ClusterState's fields): what load() accepts
STATE_SHAPE = {
    "master_url": str,
    "ui_url": str,
    "workers": int,
    "cores": int,
    "memory": str,
    "state_dir": str,
    "secret_file": str,
    "worker_ui_ports": [int],
    "python": str,
    "started": (int, float),
}


@dataclass
class ClusterState:
    master_url: str
    ui_url: str
    workers: int
    cores: int
    memory: str
    state_dir: str
    secret_file: str
    worker_ui_ports: list[int]
    python: str
    started: float
    rpc_encryption: bool = True

    def save(self) -> None:
        write_text_atomic(
            Path(self.state_dir) / "cluster.json", json.dumps(asdict(self), indent=2) + "\n"
        )

    @classmethod
    def load(cls, state_dir: Path) -> ClusterState:
        """The state `up` wrote; a hand-edited or damaged file is refused naming the key."""
        path = Path(state_dir) / "cluster.json"
        if not path.exists():
            raise UsageError(
                f"no local cluster recorded in {state_dir} (start one with `higgsbench cluster up`)"
            )
        record = read_record(path, STATE_SHAPE, "the state of `higgsbench cluster up`")
        unknown = sorted(set(record) - {f.name for f in fields(cls)})
        if unknown:
            raise UsageError(
                f"{path}: unknown key {unknown[0]!r}; it is written by `higgsbench cluster up`: "
                "start the cluster again rather than edit it"
            )
        return cls(**record)


def local_cluster(master: str) -> ClusterState | None:
    """The local cluster of $HIGGSBENCH_STATE_DIR (or the default) when it serves ``master``."""
    state_dir = Path(os.environ.get("HIGGSBENCH_STATE_DIR", DEFAULT_STATE_DIR))
    try:
        state = ClusterState.load(state_dir)
    except (HiggsbenchError, OSError):
        return None
    return state if state.master_url == master else None


def is_cluster_dir(state_dir: Path) -> bool:
    return (Path(state_dir) / MARKER).is_file()


def cluster_token(state_dir: Path) -> str:
    return (Path(state_dir) / MARKER).read_text().strip()
