"""`make test`: the suite as two pytest runs side by side, on a machine of two cores.

The OpenStack control plane, the Ansible stand-in nodes and the Docker mini-clusters spend most
of their time waiting (on SSH, on services and containers starting, on polls), while the other
tests mostly compute. Run one after the other, the suite takes about 80 minutes on our 2-core
CI machines; side by side, the waiting overlaps the computing. The two runs share no container,
network, port or output folder (each test names its own, or takes a free port).

Usage: python tests/run_suite.py [pytest options for both runs]

The computing run prints to the terminal; the waiting run writes build/test-results/beside.log,
printed when both have ended (`tail -f` it to follow). Both write JUnit XML (per-test times) to
build/test-results/. The exit status is the first failing run's, so a run that fails, or that
collects no test (pytest's 5), fails `make test`. Ctrl-C reaches both runs, which tear their
fixtures down; a SIGTERM to this script is passed on to them as SIGINT, for the same reason.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "build" / "test-results"
BESIDE = (
    "tests/test_openstack.py",
    "tests/test_ansible.py",
    "tests/test_docker_cluster.py",
    "tests/test_docker_bigdl.py",
)
MARKERS = "not gpu_image and not cloud_vm"  # the VM and GPU-image tests have targets of their own


def pytest_command(name: str, args: list[str], files: list[str]) -> list[str]:
    junit = ["-o", "junit_duration_report=total", f"--junitxml={RESULTS / f'{name}.xml'}"]
    return [sys.executable, "-m", "pytest", "-ra", "--durations=25", "-m", MARKERS,
            *junit, *args, *files]  # fmt: skip


def main(args: list[str]) -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    others = [f"--ignore={f}" for f in BESIDE]
    log = RESULTS / "beside.log"
    # A job a script starts in the background inherits SIGINT ignored; a handler of our own,
    # reset to the default by exec, lets both runs be interrupted and tear down.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    print(f"run_suite: {', '.join(BESIDE)} run beside the other tests; their output: "
          f"{log.relative_to(REPO)}, printed at the end", flush=True)  # fmt: skip
    runs: list[subprocess.Popen] = []  # main, then beside

    def interrupt(signum, frame):
        # our own children, not yet waited for: their pids cannot be another process's
        for run in runs:
            if run.poll() is None:
                run.send_signal(signal.SIGINT)

    # before any child starts, so that a SIGTERM never leaves one running without us
    signal.signal(signal.SIGTERM, interrupt)
    with log.open("w") as out:
        runs.append(subprocess.Popen(pytest_command("main", args, others), cwd=REPO))
        runs.append(subprocess.Popen(  # the cache is the other run's: one writer
            pytest_command("beside", [*args, "-p", "no:cacheprovider"], list(BESIDE)),
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        ))  # fmt: skip
        try:
            codes = [run.wait() for run in runs]
        except KeyboardInterrupt:  # both runs had it from the terminal too
            codes = [run.wait() for run in runs]
            codes = [c or 130 for c in codes]
    print(f"\n===== {', '.join(BESIDE)} (exit {codes[1]}) =====", flush=True)
    sys.stdout.write(log.read_text(errors="replace"))
    print(f"run_suite: the other tests exit {codes[0]}, these exit {codes[1]}", flush=True)
    return next((c for c in codes if c != 0), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
