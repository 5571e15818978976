"""SIGTERM is handled as Ctrl-C is, in every command: one line, exit 143, and the same
clean-up — children stopped, temporary files and unfinished run directories removed, the
Spark driver's secret file deleted. An interruption at any moment, imports included, ends
in one line, never an abort or a traceback."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from higgsbench.common import signals


def _start(*args, env: dict | None = None) -> subprocess.Popen:
    """`higgsbench ARGS…` in the background, as a user's shell starts it (SIGINT not ignored)."""
    return subprocess.Popen(
        [sys.executable, "-m", "higgsbench", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HIGGSBENCH_PROGRESS": "0", **(env or {})},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_until(condition, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _stopped(proc: subprocess.Popen, signum: int = signal.SIGTERM, timeout: float = 90) -> str:
    """Send ``signum``; return stderr once the command has exited as it should: 143 (130
    for SIGINT) with one line that says so, and no traceback."""
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    expected = (
        (143, "higgsbench: terminated")
        if signum == signal.SIGTERM
        else (130, "higgsbench: interrupted")
    )
    assert (proc.returncode, err.strip().splitlines()[-1:]) == (expected[0], [expected[1]]), err
    assert "Traceback" not in err and "internal error" not in err, err
    return err


def test_sigterm_during_training_removes_the_unfinished_run_directory(toy_dataset, tmp_path):
    out = tmp_path / "runs" / "r1"
    proc = _start("train", "--data", toy_dataset, "--out", out, "--epochs", 500, "--batch-size", 64)
    _wait_until(lambda: (out / "config.json").exists(), what="the run to start")
    time.sleep(2)  # inside the epochs, torch imported
    _stopped(proc)
    assert not out.exists(), sorted(p.name for p in out.iterdir())
    assert not (tmp_path / "runs").exists(), "train made runs/ and left it"


def test_sigterm_keeps_what_the_user_had_in_the_run_directory(toy_dataset, tmp_path):
    out = tmp_path / "r1"
    proc = _start("train", "--data", toy_dataset, "--out", out, "--epochs", 500, "--batch-size", 64)
    _wait_until(lambda: (out / "config.json").exists(), what="the run to start")
    (out / "notes.txt").write_text("written while it ran\n")
    _stopped(proc)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_bench_stops_its_child_run_and_leaves_no_process(toy_dataset, tmp_path, signum):
    out = tmp_path / "sweep"
    proc = _start(
        "bench", "--data", toy_dataset, "--out", out, "--optimizers", "adam,sgd",
        "--epochs", 500, "--batch-size", 64,
    )  # fmt: skip
    bench = psutil.Process(proc.pid)
    _wait_until(lambda: (out / "torch-n1-adam" / "config.json").exists(), what="the child")
    children = bench.children(recursive=True)
    assert children, "no child run"
    time.sleep(1)
    _stopped(proc, signum)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left running: {[p.cmdline() for p in alive]}"
    # the child removed its unfinished run; the sweep's log of it stays
    assert sorted(p.name for p in (out / "torch-n1-adam").iterdir()) == [
        ".higgsbench-output",
        "train.log",
    ]
    assert not (out / "torch-n1-sgd").exists(), "a run started after the interruption"


def test_sigterm_during_prepare_leaves_no_temporary_directory(sample_text, tmp_path):
    big = tmp_path / "big.csv"
    big.write_bytes(sample_text * 40)  # 440 k genuine rows: several seconds to prepare
    out = tmp_path / "prepared"
    proc = _start("data", "prepare", big, "--out", out, "--no-verify")
    _wait_until(lambda: any(tmp_path.glob(".prepared.tmp-*")), what="the temporary directory")
    time.sleep(0.5)
    _stopped(proc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv"]


def _names(processes: list[psutil.Process]) -> str:
    """The names of the processes still there (a short-lived child may end while it is read)."""
    names = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            names.append(process.name())
    return " ".join(names)


def test_sigterm_while_the_spark_driver_starts_removes_its_secret_file(toy_dataset, tmp_path):
    """The driver's JVM reads the cluster secret from a private properties file; a SIGTERM
    while that JVM starts must delete the file and leave no JVM behind (nothing listens at
    this master, so the driver waits for it long enough to be stopped)."""
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    proc = _start(
        "train", "--engine", "spark", "--master", "spark://127.0.0.1:9", "--data", toy_dataset,
        "--out", tmp_path / "run", "--batch-size", 64,
        env={"TMPDIR": str(private_tmp), "HIGGSBENCH_SPARK_SECRET": "s3cr3t",
             "HIGGSBENCH_STATE_DIR": str(tmp_path / "no-cluster")},
    )  # fmt: skip
    driver = psutil.Process(proc.pid)
    _wait_until(
        lambda: any(private_tmp.glob("higgsbench-driver-*/driver.properties")),
        what="the driver's properties file",
    )
    _wait_until(lambda: "java" in _names(driver.children(recursive=True)), what="the driver's JVM")
    jvms = driver.children(recursive=True)
    _stopped(proc)
    assert list(private_tmp.iterdir()) == [], "the file holding the secret was left behind"
    _, alive = psutil.wait_procs(jvms, timeout=30)
    assert not alive, f"left running: {[p.cmdline()[:3] for p in alive]}"
    assert not (tmp_path / "run").exists()


def test_an_interruption_while_torch_is_imported_exits_130_in_one_line(toy_dataset, tmp_path):
    """Ctrl-C at moments spread over the first seconds of `train`, while typer, numpy and
    torch load: torch's import aborts the interpreter (SIGABRT) when an exception crosses
    it, so the interruption must wait for the import to finish."""
    for i in range(14):
        delay = 0.2 + 0.15 * i
        proc = _start("train", "--data", toy_dataset, "--out", tmp_path / f"r{i}", "--epochs", 50)
        time.sleep(delay)
        _stopped(proc, signal.SIGINT)
        assert not (tmp_path / f"r{i}").exists()


def test_an_interruption_inside_eval_is_held_back_until_it_is_done(monkeypatch):
    """The handler itself: called while code run by eval waits, it raises nothing and sends
    the signal again shortly; elsewhere it raises, and only the first time."""
    inside_eval = eval("sys._getframe()", {"sys": sys})
    here = sys._getframe()
    assert signals._must_wait(inside_eval) and not signals._must_wait(here)
    again = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: again.append(True))
    monkeypatch.setattr(signals, "_raised", None)
    try:
        signals._interrupt(signal.SIGUSR1, inside_eval)  # held back: no exception
        _wait_until(lambda: again, timeout=5, what="the signal to be sent again")
        with pytest.raises(KeyboardInterrupt) as raised:
            signals._interrupt(signal.SIGINT, here)
        assert not isinstance(raised.value, signals.Terminated)
        signals._interrupt(signal.SIGTERM, here)  # a second one, during the clean-up: ignored
        assert signals.how_stopped() == ("interrupted", 130)
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_an_interruption_swallowed_by_a_finaliser_is_raised_again(tmp_path):
    """A signal that lands in a finaliser or a weakref callback the garbage collector runs (the
    import system's module-lock callback is one) raises there, where Python can only print
    "Exception ignored" and go on: it must be raised again in the main code, not lost."""
    script = tmp_path / "finaliser.py"
    script.write_text(
        "import signal, sys, time\n"
        "from higgsbench.common import signals\n"
        "signals.install()\n"
        "class Finaliser:\n"
        "    def __del__(self):\n"
        "        signal.raise_signal(signal.SIGINT)\n"
        "try:\n"
        "    Finaliser()\n"
        "    for _ in range(500):\n"
        "        time.sleep(0.01)\n"
        "    print('went on')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    assert proc.stdout.strip() == "interrupted", proc.stdout + proc.stderr
    assert "Exception ignored" not in proc.stderr


def test_an_interruption_a_library_turned_into_its_own_error_is_still_reported(tmp_path):
    """SIGTERM that breaks off an import half-way leaves a partially initialised module, and
    the next access fails with an AttributeError of the library's (seen with pandas, under
    `data prepare`): the command line reports the interruption, exit 143, not a bug of ours."""
    script = tmp_path / "library.py"
    script.write_text(
        "import signal\n"
        "from higgsbench.common import signals\n"
        "signals.install()\n"
        "import higgsbench.cli as cli\n"
        "def command(**_):\n"
        "    try:\n"
        "        signal.raise_signal(signal.SIGTERM)\n"
        "    except KeyboardInterrupt:\n"
        "        raise AttributeError(\"partially initialized module 'pandas'\") from None\n"
        "cli.app = command\n"
        "cli.main()\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr.strip()) == (143, "higgsbench: terminated"), proc.stderr
