"""Helpers for tests: run the command line as a user would."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path


def free_ports(n: int) -> list[int]:
    """n distinct TCP ports on loopback that nothing listens on now (all bound at once, so
    none is handed out twice)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    return free_ports(1)[0]


# coverage.py's `patch = subprocess` starts a tracer in every Python process of the venv that
# inherits these (a1_coverage.pth): ~0.1 s each
COVERAGE_STARTERS = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")


def tool_env(**extra: str) -> dict[str, str]:
    """The environment for a tool that runs none of the package's code (Ansible, whose every
    module on the control host is a fresh Python process of the venv): without coverage's
    start-up, which measured nothing there and cost hundreds of processes a tenth of a second
    each."""
    env = {k: v for k, v in os.environ.items() if k not in COVERAGE_STARTERS}
    return {**env, **extra}


def run_cli(
    *args: str,
    check: bool = False,
    timeout: float = 600,
    env: dict | None = None,
    python: str | Path = sys.executable,
):
    """Run `python -m higgsbench ARGS…` as a user would (with this interpreter unless `python`
    names another environment's); return the CompletedProcess."""
    full_env = {**os.environ, "HIGGSBENCH_PROGRESS": "0", **(env or {})}
    proc = subprocess.run(
        [str(python), "-m", "higgsbench", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"higgsbench {' '.join(map(str, args))} exited {proc.returncode}:\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def refused(proc, *names) -> str:
    """The one line of a refusal: exit 2, a single line on stderr that starts
    "higgsbench: error: " and names each of ``names``, no traceback; return the line."""
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("higgsbench: error: "), proc.stderr
    for name in names:
        assert str(name) in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    return lines[0]


def venv_tool(name: str) -> str | None:
    """A command-line tool installed by a pip dependency: beside this interpreter first, since the
    virtual environment's bin/ is not on PATH when pytest is started as .venv/bin/pytest."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


DOCKER = os.environ.get("DOCKER", "docker")


def run_checked(cmd, *, timeout: float = 600, check: bool = True, **kw):
    """Run an infrastructure command (docker, ansible…), capturing its output; with ``check``,
    a non-zero exit fails the test showing the command and the end of what it printed."""
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n"
            f"{proc.stdout[-8000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def docker(*args, **kw):
    return run_checked([DOCKER, *args], **kw)


def fake_run_record(**fields) -> dict:
    """A result.json record of a run that never happened: every key that `report`, `bench
    --from` and the scaling model read, with plausible values; ``fields`` override them."""
    seconds = fields.get("epoch_seconds_median", 1.0)
    rows = fields.get("train_rows_per_epoch", 409_600)
    record = {
        "engine": "spark",
        "device": "cpu",
        "nodes": 1,
        "cores_per_node": 4,
        "optimizer": "adam",
        "batch_size": 4096,
        "epochs": 2,
        "features": "all",
        "layers": 3,
        "width": 300,
        "train_rows": rows,
        "train_rows_per_epoch": rows,
        "test_rows": 1000,
        "startup_seconds": 1.0,
        "epoch_seconds": [seconds, seconds],
        "epoch_seconds_median": seconds,
        "events_per_second": rows / seconds,
        "test_auc": 0.8,
        "test_accuracy": 0.7,
        "fom_max": 5.0,
        "fom_cut": 0.7,
        "significance": 4.0,
        "history": [{"epoch": 1, "train_loss": 0.6, "val_loss": 0.6, "val_auc": 0.8}],
        "versions": {},
        "git_sha": "0" * 40,
        "hosts": ["here"],
    }
    record.update(fields)
    return record


def write_fake_bench(folder: Path, records: list[dict], **fields) -> Path:
    """FOLDER/bench.json of a sweep that never ran, and FOLDER/<run_dir>/result.json for each
    of ``records`` (from fake_run_record; run_dir is named after engine, nodes, optimizer)."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for record in records:
        run_dir = f"{record['engine']}-n{record['nodes']}-{record['optimizer']}"
        (folder / run_dir).mkdir()
        (folder / run_dir / "result.json").write_text(json.dumps(record))
        rows.append(
            {
                **{k: record[k] for k in ("engine", "nodes", "cores_per_node", "optimizer")},
                **{k: record[k] for k in ("device", "events_per_second", "test_auc")},
                "epoch_seconds": record["epoch_seconds_median"],
                "run_dir": run_dir,
            }
        )
    bench = {
        "format": "higgsbench-bench/1",
        "generated_data": True,
        "machine": {"processor": "x"},
        "failures": [],
        "rows": rows,
        **fields,
    }
    (folder / "bench.json").write_text(json.dumps(bench))
    return folder / "bench.json"


def fake_report_record(**fields) -> dict:
    """fake_run_record with the curves `report` draws: a ROC, output histograms of 10 bins,
    FOM and significance against the cut; ``fields`` override them."""
    edges = [i / 10 for i in range(11)]
    signal = [0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.2, 1.5, 1.8, 2.2]
    record = fake_run_record(
        gflops=1.0,
        curves={
            "roc": {"fpr": [0.0, 0.01, 0.1, 0.3, 1.0], "tpr": [0.0, 0.2, 0.5, 0.8, 1.0]},
            "histograms": {"edges": edges, "signal": signal, "background": signal[::-1]},
            "fom": {"cut": [0.1, 0.5, 0.9], "fom": [1.0, 2.0, 1.5], "significance": [1, 2, 1]},
        },
    )
    record.update(fields)
    return record


class FakeClock:
    """A perf_counter that moves only when the test moves it, so what a measurement timed by
    it must report follows by hand."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def install(self, monkeypatch, module) -> None:
        """Time ``module``'s measurements by this clock (the module imports ``time``)."""
        from types import SimpleNamespace

        monkeypatch.setattr(module, "time", SimpleNamespace(perf_counter=self.perf_counter))


def product_taking(clock: FakeClock, seconds: float, product, operands: list):
    """``product`` as if each call took ``seconds`` on ``clock``; every call's operand shape and
    dtype are appended to ``operands``."""

    def timed(x, y):
        operands.append((tuple(x.shape), tuple(y.shape), x.dtype, y.dtype))
        clock.now += seconds
        return product(x, y)

    return timed


SEED_SPREAD = Path(__file__).with_name("seed_spread.json")


def auc_tolerance(setting: str) -> float:
    """How far a distributed engine's test AUC may be from one torch process's on the same
    rows, batch and seed: 4·√2 times the seed-to-seed standard deviation of torch's AUC in
    ``setting``, measured by scripts/seed-spread.py and kept in tests/seed_spread.json."""
    import json

    return json.loads(SEED_SPREAD.read_text())["settings"][setting]["tolerance"]
