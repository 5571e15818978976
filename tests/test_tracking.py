"""Experiment tracking against a real MLflow server: `train --track` and `bench --track` log
there, and what is read back through MLflow's own client matches the run's result.json.

The server is the one `make tracking-up` starts (scripts/tracking-server.sh, full mlflow from
.venv-tracking, made by `make venv-tracking`, which `make test` runs), on a free port with its
SQLite store and artifacts in a temporary folder, and is stopped by its recorded process id.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from higgsbench.common.errors import RunFailed
from tests.conftest import REPO
from tests.helpers import free_port, run_cli

SCRIPT = REPO / "scripts" / "tracking-server.sh"
MLFLOW_SERVER = os.environ.get("HIGGSBENCH_MLFLOW", str(REPO / ".venv-tracking" / "bin" / "mlflow"))


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The URI of a running MLflow server, stopped afterwards by the pid it recorded."""
    if not os.access(MLFLOW_SERVER, os.X_OK):
        pytest.fail(f"{MLFLOW_SERVER}: no MLflow server; `make venv-tracking` makes it")
    state = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    env = {
        **os.environ,
        "TRACKING_DIR": str(state),
        "TRACKING_PORT": str(port),
        "MLFLOW": MLFLOW_SERVER,
    }
    started = subprocess.run(
        ["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=150
    )
    assert started.returncode == 0, started.stdout + started.stderr
    pid = int((state / "server.pid").read_text())
    assert _alive(pid)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stopped = subprocess.run(
            ["bash", str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=60
        )
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert not _alive(pid), f"the server's process group {pid} outlived `stop`"
        assert not (state / "server.pid").exists()
    assert (state / "mlflow.db").exists()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("track-data") / "prepared"
    run_cli(
        "data", "synth", "--events", 5000, "--val-rows", 500, "--test-rows", 500,
        "--seed", 5, "--out", out, check=True,
    )  # fmt: skip
    return out


def _run_named(client: MlflowClient, experiment: str, name: str):
    (exp_id,) = [client.get_experiment_by_name(experiment).experiment_id]
    runs = client.search_runs([exp_id], filter_string=f"tags.`mlflow.runName` = '{name}'")
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def test_a_tracked_run_reads_back_through_mlflow(server, prepared, tmp_path):
    out = tmp_path / "tracked-run"
    env = {"MLFLOW_EXPERIMENT_NAME": "test-train"}
    proc = run_cli(
        "train", "--data", prepared, "--out", out, "--epochs", 2, "--batch-size", 256,
        "--threads", 1, "--seed", 9, "--track", server, env=env, check=True,
    )  # fmt: skip
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("RESULT "), "the RESULT line stays the last line"
    assert not any("View run" in line for line in lines), "MLflow's banner is kept off stdout"
    assert f"tracked: {server}/#/experiments/" in proc.stderr
    record = json.loads((out / "result.json").read_text())

    client = MlflowClient(tracking_uri=server)
    run = _run_named(client, "test-train", out.name)
    assert run.info.status == "FINISHED"
    params = run.data.params
    # the RunConfig, as config.json has it, plus what the run resolved
    config = json.loads((out / "config.json").read_text())
    assert {k: params[k] for k in config} == {
        k: "" if v is None else str(v) for k, v in config.items()
    }
    assert params["epochs"] == "2" and params["batch_size"] == "256"
    assert params["engine"] == "torch" and params["track"] == server
    assert float(params["learning_rate"]) == record["learning_rate"]
    assert run.data.tags["higgsbench.engine"] == "torch"
    assert run.data.tags["higgsbench.generated_data"] == "true"
    assert run.data.tags["mlflow.source.git.commit"] == record["git_sha"]

    # per-epoch series: one value per epoch, step = the epoch, equal to result.json's history
    for key in ("val_auc", "train_loss", "val_loss"):
        series = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        assert [m.step for m in series] == [h["epoch"] for h in record["history"]]
        assert [m.value for m in series] == pytest.approx([h[key] for h in record["history"]])
    assert len(record["history"]) == 2
    seconds = client.get_metric_history(run.info.run_id, "epoch_seconds")
    assert sorted(m.value for m in seconds) == pytest.approx(sorted(record["epoch_seconds"]))
    assert len(client.get_metric_history(run.info.run_id, "epoch_events_per_second")) == 2
    # the final physics metrics
    for key in ("test_auc", "test_accuracy", "fom_max", "significance", "events_per_second"):
        assert run.data.metrics[key] == pytest.approx(record[key]), key

    # artifacts: result.json as written, config.json, the report's plots
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"result.json", "config.json", "plots"} <= top
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert any(p.endswith(".png") for p in plots), plots
    local = client.download_artifacts(run.info.run_id, "result.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == record
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".higgsbench-output", "checkpoint.pt", "config.json", "model.pt", "result.json"]
    ), "the plots are logged, not left in the run directory"


def test_a_server_that_is_down_stops_the_run_before_training(prepared, tmp_path):
    port = free_port()  # nothing listens there
    out = tmp_path / "never"
    started = time.monotonic()
    proc = run_cli(
        "train", "--data", prepared, "--out", out, "--epochs", 2, "--batch-size", 256,
        "--track", f"http://127.0.0.1:{port}",
    )  # fmt: skip
    assert time.monotonic() - started < 30
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("higgsbench: error: --track http://127.0.0.1:")
    assert "no MLflow server answers" in line and "make tracking-up" in line
    assert not out.exists(), "nothing is written for a run that never started"

    # not a URI at all: refused the same way, before anything
    proc = run_cli(
        "train", "--data", prepared, "--out", out, "--track", f"127.0.0.1:{port}",
    )  # fmt: skip
    assert proc.returncode == 2 and "expected an MLflow tracking URI" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()

    # bench: refused before the first child, and no sweep directory made
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "bench", "--data", prepared, "--out", sweep, "--engines", "torch", "--optimizers",
        "adam", "--epochs", 1, "--batch-size", 256, "--track", f"http://127.0.0.1:{port}",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "no MLflow server answers" in proc.stderr.strip().splitlines()[-1]
    assert not sweep.exists()


def test_bench_tags_every_child_with_the_sweep(server, prepared, tmp_path):
    sweep = tmp_path / "sweep-tracked"
    proc = run_cli(
        "bench", "--data", prepared, "--out", sweep, "--engines", "torch",
        "--optimizers", "adam,sgd", "--epochs", 1, "--batch-size", 256, "--threads", 1,
        "--track", server, env={"MLFLOW_EXPERIMENT_NAME": "test-bench"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    client = MlflowClient(tracking_uri=server)
    exp_id = client.get_experiment_by_name("test-bench").experiment_id
    runs = client.search_runs([exp_id], filter_string="tags.`higgsbench.sweep` = 'sweep-tracked'")
    parents = [r for r in runs if r.data.tags.get("higgsbench.kind") == "bench"]
    children = [r for r in runs if r not in parents]
    (parent,) = parents
    assert parent.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"bench.json"}
    assert sorted(r.info.run_name for r in children) == ["torch-n1-adam", "torch-n1-sgd"]
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.params["track"] == server
        assert len(client.get_metric_history(child.info.run_id, "val_auc")) == 1
    bench = json.loads((sweep / "bench.json").read_text())
    assert {r["run_dir"] for r in bench["rows"]} == {"torch-n1-adam", "torch-n1-sgd"}


def test_without_track_mlflow_is_never_imported():
    code = (
        "import sys\n"
        "from higgsbench import cli, run, tracking\n"
        "from higgsbench.sweep import plan, runner, summary\n"
        "assert 'mlflow' not in sys.modules, 'mlflow imported without --track'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_a_missing_client_is_one_line(monkeypatch):
    from higgsbench import tracking
    from higgsbench.common.errors import HiggsbenchError

    # what an environment without it sees
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(HiggsbenchError, match=r"MLflow client is not installed.*\[track\]"):
        tracking._client("http://127.0.0.1:5000")


def test_stop_without_a_server_says_so(tmp_path):
    env = {**os.environ, "TRACKING_DIR": str(tmp_path), "TRACKING_PORT": str(free_port())}
    (tmp_path / "server.pid").write_text("999999\n")  # a stale record: no such process
    proc = subprocess.run(
        ["bash", str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0 and "not running" in proc.stdout
    assert not (tmp_path / "server.pid").exists()


def test_a_logging_failure_after_training_exits_1_and_says_the_result_is_kept(
    monkeypatch, tmp_path
):
    from higgsbench import tracking
    from higgsbench.common.errors import HiggsbenchError
    from higgsbench.core.config import RunConfig

    def server_gone(*args):
        raise ConnectionError("Connection refused")

    monkeypatch.setattr(tracking, "_log_run", server_gone)
    config = RunConfig(data=tmp_path, out=tmp_path / "run", track="http://127.0.0.1:1")
    with pytest.raises(HiggsbenchError) as info:
        tracking.log_run(config, {}, "0")
    assert info.value.exit_status == 1  # the run failed at its end: not bad input (2)
    assert isinstance(info.value, RunFailed)
    assert "result.json is written" in str(info.value) and "Connection refused" in str(info.value)


def test_a_password_in_the_tracking_uri_is_used_and_never_shown_or_stored(
    server, prepared, tmp_path
):
    """`--track http://user:password@host`: the run is logged (the password goes to MLflow's
    own variables), and the password is in no output, config.json, result.json or MLflow
    parameter."""
    password = "pa55-W0rd-xyz"
    with_password = server.replace("http://", f"http://ana:{password}@")
    out = tmp_path / "run-with-password"
    env = {"MLFLOW_EXPERIMENT_NAME": "test-password"}
    proc = run_cli(
        "train", "--data", prepared, "--out", out, "--epochs", 1, "--batch-size", 256,
        "--threads", 1, "--track", with_password, env=env, check=True,
    )  # fmt: skip
    assert password not in proc.stdout + proc.stderr
    for name in ("config.json", "result.json"):
        text = (out / name).read_text()
        assert password not in text and "ana:" not in text, name
    assert json.loads((out / "config.json").read_text())["track"] == server
    run = _run_named(MlflowClient(tracking_uri=server), "test-password", out.name)
    assert password not in json.dumps({**run.data.params, **run.data.tags})


def test_a_password_in_an_unreachable_tracking_uri_is_masked_in_the_error(prepared, tmp_path):
    port = free_port()
    proc = run_cli(
        "train", "--data", prepared, "--out", tmp_path / "r",
        "--track", f"http://ana:s3cr3t-pw@127.0.0.1:{port}",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    assert "s3cr3t-pw" not in line and "http://ana:***@127.0.0.1" not in line, line
    assert f"127.0.0.1:{port}" in line and "no MLflow server answers" in line
    assert "Name or service not known" not in line, "the user part was taken for a host"
