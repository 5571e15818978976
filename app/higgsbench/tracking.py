"""Experiment tracking: `train --track URI` and `bench --track URI` log to an MLflow server.

The driver logs a run once it is over, from its result record, so no engine (torch in this
process, Spark ranks, BigDL) knows about MLflow. What one run logs:

- parameters: the RunConfig as `config.json` has it, the learning rate used and the network;
- per-epoch metrics (step = epoch): train_loss, val_loss, val_auc (result.json's history),
  epoch_seconds and epoch_events_per_second, timed at the epoch's end;
- final metrics: test_auc, test_accuracy, fom_max, fom_cut, significance, significance_cut,
  events_per_second, epoch_seconds_median, startup_seconds, gflops, fraction_of_peak;
- tags: engine, device, hosts, generated or real data, the commit, and for a `bench` child the
  sweep (higgsbench.sweep = the bench directory's name) and its parent run;
- artifacts: result.json, config.json and the `report` plots (under plots/).

The server is checked before training (`check`): a run whose server is down or whose URI is
not one stops with one line and leaves nothing behind. mlflow is imported only here and only
with --track: environments without it (the BigDL image) run everything else unchanged.
The experiment is $MLFLOW_EXPERIMENT_NAME (MLflow's own variable), else "higgsbench".
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import sys
import tempfile
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

from higgsbench.common import limits
from higgsbench.common.errors import HiggsbenchError, RunFailed, UsageError
from higgsbench.common.redact import split_credentials
from higgsbench.core.config import PHYSICS_KEYS, RunConfig

DEFAULT_EXPERIMENT = "higgsbench"
# What `bench` tells each child: the sweep's name and its MLflow parent run.
SWEEP_ENV = "HIGGSBENCH_SWEEP"
PARENT_ENV = "HIGGSBENCH_TRACK_PARENT"
SWEEP_TAG = "higgsbench.sweep"
# MLflow's client reads basic-authentication credentials from these
USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"
# seconds: a server that does not answer a request by then is down. Generous, as MLflow's own
# client is: on a small machine busy with a sweep a healthy server can take seconds, while a
# refused connection (no server) still fails at once.
REQUEST_TIMEOUT = 30
SCHEMES = ("http", "https")  # a server: MLflow 3 keeps its file store in maintenance mode

FINAL_METRICS = (
    *PHYSICS_KEYS,
    "events_per_second",
    "epoch_seconds_median",
    "startup_seconds",
    "gflops",
    "fraction_of_peak",
)
HISTORY_METRICS = ("train_loss", "val_loss", "val_auc")


def experiment_name() -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


def _client(uri: str):
    """An MLflow client of the server ``uri``, or one line saying how to get the library."""
    # A server that went away must not hold a finished run for minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(REQUEST_TIMEOUT))
    # stdout is the run's RESULT line; the run's address goes to stderr (run.py)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UsageError(
            "--track: the MLflow client is not installed in this environment "
            "(pip install 'higgsbench[track]', or mlflow-skinny)"
        ) from None
    return MlflowClient(tracking_uri=uri)


def credentials_to_environment(uri: str) -> str:
    """A tracking URI with a user:password part, as servers behind basic authentication are
    often given: the two go to MLflow's own variables (MLFLOW_TRACKING_USERNAME and
    _PASSWORD, which every child inherits), and the URI without them is returned, so that
    the password is on no child's command line and in no message, config.json or record."""
    bare, user, password = split_credentials(uri)
    if user is not None:
        os.environ[USERNAME_ENV] = user
    if password is not None:
        os.environ[PASSWORD_ENV] = password
    return bare


def _health_request(uri: str) -> urllib.request.Request:
    """GET /health, with the basic authentication MLflow's client will use."""
    request = urllib.request.Request(uri.rstrip("/") + "/health")
    user, password = os.environ.get(USERNAME_ENV), os.environ.get(PASSWORD_ENV)
    if user is not None or password is not None:
        pair = f"{user or ''}:{password or ''}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
    return request


def check(uri: str) -> str:
    """Before any training: refuse a URI that is not a tracking store, a server that does not
    answer, or a missing client; return the experiment's id (made if new)."""
    limits.url(
        "--track",
        uri,
        SCHEMES,
        "an MLflow tracking URI such as http://127.0.0.1:5000 (`make tracking-up` starts one)",
    )
    uri = credentials_to_environment(uri)
    client = _client(uri)  # a missing library is said before the server is asked
    health = _health_request(uri)
    try:
        with urllib.request.urlopen(health, timeout=REQUEST_TIMEOUT) as reply:
            status = reply.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UsageError(
            f"--track {uri}: no MLflow server answers ({reason}); start one "
            "(`make tracking-up`) or drop --track"
        ) from None
    if status != 200:
        raise UsageError(f"--track {uri}: {health.full_url} answered HTTP {status}, not OK")
    try:
        name = experiment_name()
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            return client.create_experiment(name)
        if experiment.lifecycle_stage != "active":
            raise UsageError(
                f"--track {uri}: experiment {name!r} is deleted; restore it or set "
                "MLFLOW_EXPERIMENT_NAME to another name"
            )
        return experiment.experiment_id
    except HiggsbenchError:
        raise
    except Exception as exc:
        raise UsageError(f"--track {uri}: {_one_line(exc)}") from None


def log_run(config: RunConfig, record: dict, experiment_id: str) -> str:
    """Log a finished run (its result record, its directory's files) to ``config.track``;
    return the MLflow run id. A failure here is after training: result.json stays, and the
    error (exit 1) says so."""
    try:
        return _log_run(config, record, experiment_id)
    except HiggsbenchError:
        raise
    except Exception as exc:
        raise RunFailed(
            f"--track {config.track}: the run finished and {config.out / 'result.json'} is "
            f"written, but logging it failed: {_one_line(exc)}"
        ) from None


def _log_run(config: RunConfig, record: dict, experiment_id: str) -> str:
    client = _client(config.track)
    from mlflow.entities import Metric, Param

    finished_ms = _finished_ms(record)
    history = record.get("history", [])
    total = (history[-1]["wall_seconds"] if history else 0.0) + record["startup_seconds"]
    start_ms = finished_ms - int(1000 * total)
    tags = {
        "mlflow.runName": config.out.name,
        "mlflow.source.git.commit": record.get("git_sha", "unknown"),
        "higgsbench.engine": record["engine"],
        "higgsbench.device": record["device"],
        "higgsbench.hosts": ",".join(record.get("hosts", [])),
        "higgsbench.generated_data": str(bool(record.get("generated_data"))).lower(),
        "higgsbench.run_dir": str(config.out.resolve()),
        "higgsbench.version": record.get("versions", {}).get("higgsbench", "unknown"),
    }
    if os.environ.get(SWEEP_ENV):
        tags[SWEEP_TAG] = os.environ[SWEEP_ENV]
    if os.environ.get(PARENT_ENV):
        tags["mlflow.parentRunId"] = os.environ[PARENT_ENV]
    run = client.create_run(experiment_id, start_time=start_ms, tags=tags)
    run_id = run.info.run_id
    try:
        params = {k: _param(v) for k, v in config.to_dict().items()}
        params["learning_rate"] = _param(record.get("learning_rate"))
        params["network"] = json.dumps(record.get("network"), separators=(",", ":"))
        metrics = []
        for h in history:
            at = start_ms + int(1000 * (record["startup_seconds"] + h["wall_seconds"]))
            step = int(h["epoch"])
            values = {k: h[k] for k in HISTORY_METRICS}
            values["epoch_seconds"] = h["seconds"]
            if h["seconds"] > 0:
                values["epoch_events_per_second"] = record["train_rows_per_epoch"] / h["seconds"]
            metrics += [Metric(k, float(v), at, step) for k, v in values.items() if _finite(v)]
        metrics += [
            Metric(k, float(record[k]), finished_ms, 0)
            for k in FINAL_METRICS
            if _finite(record.get(k))
        ]
        for i in range(0, max(len(metrics), 1), 1000):  # MLflow takes 1000 metrics a call
            client.log_batch(
                run_id,
                metrics=metrics[i : i + 1000],
                params=[Param(k, v) for k, v in params.items()] if i == 0 else [],
            )
        for name in ("result.json", "config.json"):
            if (config.out / name).exists():
                client.log_artifact(run_id, str(config.out / name))
        _log_plots(client, run_id, config.out)
    except BaseException:
        with contextlib.suppress(Exception):  # the server may be what failed
            client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED", end_time=finished_ms)
    return run_id


def _log_plots(client, run_id: str, run_dir: Path) -> None:
    """The plots `higgsbench report RUN_DIR` draws, made in a scratch directory (the run
    directory stays as `train` left it) and logged under plots/."""
    from higgsbench.report import write_report

    with tempfile.TemporaryDirectory(prefix="higgsbench-plots-") as scratch:
        try:
            write_report([run_dir], Path(scratch))
        except Exception as exc:  # a plot must not cost the run its record on the server
            print(
                f"higgsbench: warning: --track: no plots logged ({_one_line(exc)})", file=sys.stderr
            )
            return
        client.log_artifacts(run_id, scratch, artifact_path="plots")


# ---------------------------------------------------------------- bench: the sweep's parent run


def start_sweep(uri: str, sweep: str, plan: dict) -> tuple[str, dict]:
    """The parent run of a `bench` sweep; returns its id and the environment its children
    need (the sweep's name and the parent run's id)."""
    experiment_id = check(uri)
    client = _client(uri)
    try:
        run = client.create_run(
            experiment_id,
            tags={"mlflow.runName": sweep, SWEEP_TAG: sweep, "higgsbench.kind": "bench"},
        )
        from mlflow.entities import Param

        client.log_batch(
            run.info.run_id,
            params=[Param(k, _param(v)) for k, v in plan.items() if k != "python"],
        )
    except Exception as exc:
        raise UsageError(f"--track {uri}: {_one_line(exc)}") from None
    return run.info.run_id, {SWEEP_ENV: sweep, PARENT_ENV: run.info.run_id}


def finish_sweep(uri: str, run_id: str, bench_json: Path | None, status: str) -> None:
    """Log bench.json (when the sweep wrote one) to the sweep's parent run and close it with
    ``status``: FINISHED, FAILED (a run failed) or KILLED (the sweep was interrupted)."""
    client = _client(uri)
    try:
        if bench_json is not None:
            client.log_artifact(run_id, str(bench_json))
        client.set_terminated(run_id, status)
    except Exception as exc:
        print(
            f"higgsbench: warning: --track {uri}: the sweep's run not closed ({_one_line(exc)})",
            file=sys.stderr,
        )


def _param(value) -> str:
    text = "" if value is None else str(value)
    return text[:6000]  # MLflow's limit on a parameter's value


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _finished_ms(record: dict) -> int:
    try:
        return int(1000 * datetime.fromisoformat(record["finished"]).timestamp())
    except (KeyError, TypeError, ValueError):
        return int(1000 * datetime.now().timestamp())


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
