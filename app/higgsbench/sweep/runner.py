"""Running a sweep: one child `higgsbench train` per run, each in a fresh interpreter (one
run's threads, caches or JIT state cannot colour the next; the BigDL engine even needs another
virtual environment), its RESULT line collected and its output kept in RUN/train.log; then
bench.json (sweep/summary.py).

The runner owns the child processes: a sweep stopped by Ctrl-C or SIGTERM stops its child the
same way and kills what is left of it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from higgsbench.common.errors import HiggsbenchError, RunFailed, UsageError
from higgsbench.common.paths import claim_output_dir
from higgsbench.common.progress import progress_bar
from higgsbench.common.signals import Terminated
from higgsbench.records.result import parse_result_line, write_json_atomic
from higgsbench.sweep.plan import BenchPlan, child_command, run_name
from higgsbench.sweep.summary import summarise

# How long a stopped child run may take to clean up (a Spark driver and its ranks) before
# what is left of it is killed.
CHILD_GRACE_SECONDS = 30.0


def run_bench(plan: BenchPlan, echo=print) -> dict:
    if plan.out.exists() and any(plan.out.iterdir()):
        raise UsageError(f"{plan.out}: exists and is not empty; choose another --out")
    sweep_env, parent = {}, None
    if plan.base.track:  # the sweep's parent run; each child is tagged with the sweep and logged
        from higgsbench import tracking

        parent, sweep_env = tracking.start_sweep(
            plan.base.track, plan.out.resolve().name, plan.to_dict()
        )
    try:
        bench = _sweep(plan, echo, sweep_env)
    except BaseException:
        if parent is not None:
            tracking.finish_sweep(plan.base.track, parent, None, "KILLED")
        raise
    if parent is not None:
        status = "FAILED" if bench["failures"] else "FINISHED"
        tracking.finish_sweep(plan.base.track, parent, plan.out / "bench.json", status)
    return bench


def _sweep(plan: BenchPlan, echo, sweep_env: dict) -> dict:
    claim_output_dir(plan.out, "--out", "bench")
    records, failures = [], []
    runs = [(run, k) for run in plan.runs() for k in range(1, plan.repeat + 1)]
    # the ETA comes from the whole sweep so far: one run takes minutes, not seconds
    with progress_bar(
        "bench", len(runs), unit="runs", show=plan.progress, eta_window=7 * 24 * 3600
    ) as bar:
        for i, (run, k) in enumerate(runs, 1):
            name = run_name(run, k, plan.repeat)
            bar.describe(f"bench [{i}/{len(runs)}] {name}")
            echo(f"[{i}/{len(runs)}] {name}")
            started = time.perf_counter()
            try:
                record = _train(plan, run, plan.out / name, sweep_env, echo)
            except HiggsbenchError as exc:
                repeat = {"repeat": k} if plan.repeat > 1 else {}
                failures.append({**run, **repeat, "error": str(exc)})
                echo(f"  failed: {exc}")
                bar.advance()
                continue
            record["run_dir"] = name
            records.append(record)
            echo(
                f"  epoch {record['epoch_seconds_median']:.3f} s, "
                f"{record['events_per_second']:,.0f} events/s, test AUC {record['test_auc']:.4f} "
                f"({time.perf_counter() - started:.0f} s with start-up)"
            )
            bar.advance()
    bench = summarise(plan, records, failures)
    write_json_atomic(plan.out / "bench.json", bench)
    return bench


def _train(plan: BenchPlan, run: dict, run_dir: Path, env: dict | None = None, echo=print) -> dict:
    """One child `higgsbench train`: its stderr goes to RUN_DIR/train.log (and, --verbose,
    to ``echo`` line by line as it comes), its stdout's RESULT line is the record."""
    args, child_env = child_command(plan, run, run_dir, env or {})
    claim_output_dir(run_dir, "--out", "run")  # the child's run directory, marked as ours
    log = run_dir / "train.log"
    with open(log, "w") as f:
        # In a session of its own: a terminal's Ctrl-C reaches only this process, which
        # passes it on (as it passes on SIGTERM), and whatever the child leaves is found by
        # its process group.
        proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **child_env},
            start_new_session=True,
        )
        stdout: list[str] = []

        def relay() -> None:
            for line in proc.stderr:
                f.write(line)
                f.flush()
                if plan.verbose:
                    echo(f"  {run_dir.name} | {line.rstrip()}")

        readers = [
            threading.Thread(target=relay, daemon=True),
            threading.Thread(target=lambda: stdout.append(proc.stdout.read()), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            proc.wait(timeout=plan.timeout)
        except subprocess.TimeoutExpired:
            _stop(proc, signal.SIGTERM)
            raise RunFailed(
                f"still running after {plan.timeout:.0f} s: stopped (log: {log})"
            ) from None
        except KeyboardInterrupt as exc:  # the child is stopped the same way, and cleans up
            _stop(proc, signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
            raise
        finally:
            for reader in readers:
                reader.join()
        f.write("".join(stdout))
    if proc.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise RunFailed(f"exit {proc.returncode}: {tail[0]} (log: {log})")
    return parse_result_line("".join(stdout))


def _stop(proc: subprocess.Popen, signum: int, grace: float = CHILD_GRACE_SECONDS) -> None:
    """Stop a child run with ``signum``, give it ``grace`` seconds to clean up after itself,
    then kill what is left of its process group (which only the child and what it started
    belong to: it was started in a session of its own)."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signum)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
