"""A compose mini-cluster driven from tests: `docker compose` on the project's compose file
under a project name of its own, with its own secret and free UI ports."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from higgsbench import __version__
from tests.conftest import REPO, SAMPLE, require_data
from tests.helpers import DOCKER, docker, free_ports, run_checked

SPARK_IMAGE = os.environ.get("HIGGSBENCH_IMAGE", f"higgsbench-spark:{__version__}")
BIGDL_IMAGE = f"higgsbench-bigdl:{__version__}"
TRACKING_IMAGE = f"higgsbench-tracking:{__version__}"
PROJECT_LABEL = "com.docker.compose.project"


ENTRYPOINT = REPO / "docker" / "spark" / "entrypoint.sh"


def run_entrypoint(
    workdir: Path, args: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess:
    """docker/spark/entrypoint.sh run here as the image runs it, with stand-ins for Spark's
    spark-class and for higgsbench that print the spark-defaults.conf it wrote. Its directories
    lie in workdir (a Spark container's own settings for them are ignored)."""
    spark_home, bin_dir = workdir / "spark", workdir / "bin"
    (spark_home / "bin").mkdir(parents=True, exist_ok=True)
    bin_dir.mkdir(exist_ok=True)
    for script in (spark_home / "bin" / "spark-class", bin_dir / "higgsbench"):
        script.write_text('#!/bin/sh\ncat "$SPARK_CONF_DIR/spark-defaults.conf"\n')
        script.chmod(0o755)
    here = {
        "SPARK_HOME": str(spark_home),
        "SPARK_CONF_DIR": str(workdir / "conf"),
        "SPARK_LOG_DIR": str(workdir / "logs"),
        "SPARK_WORKER_DIR": str(workdir / "work"),
        "SPARK_EVENTS_DIR": str(workdir / "events"),
    }
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", **env, **here},
        capture_output=True,
        text=True,
        timeout=60,
    )


def spark_settings(text: str) -> dict[str, str]:
    """spark-defaults.conf lines as {key: value}, without the secret's."""
    pairs = (line.partition(" ") for line in text.splitlines())
    return {key: value for key, _, value in pairs if key != "spark.authenticate.secret"}


def _docker_ok() -> bool:
    if shutil.which(DOCKER) is None:
        return False
    return subprocess.run([DOCKER, "info"], capture_output=True).returncode == 0


def require_docker() -> None:
    """Skip the calling test module without a Docker engine, unless CI demands one."""
    if _docker_ok():
        return
    if os.environ.get("HIGGSBENCH_REQUIRE_DOCKER") == "1":
        raise RuntimeError("HIGGSBENCH_REQUIRE_DOCKER=1 but no Docker engine answers `docker info`")
    pytest.skip(
        "no Docker engine (set HIGGSBENCH_REQUIRE_DOCKER=1 to fail instead)",
        allow_module_level=True,
    )


MASTER_URL = "spark://master:7077"  # the master as the compose services see it


def train_argv(engine: str, nodes: int, data: str, out: str, *extra) -> list[str]:
    """`higgsbench train` in the driver service against the compose master: the arguments of
    `docker compose run` after its options."""
    return [
        "driver",
        "driver",
        "train",
        "--engine",
        engine,
        "--master",
        MASTER_URL,
        "--nodes",
        str(nodes),
        "--data",
        data,
        "--out",
        out,
        *map(str, extra),
    ]


def ensure_image(image: str, make_target: str) -> None:
    """Build `image` with `make base-image <make_target>` unless the engine has it."""
    missing = subprocess.run([DOCKER, "image", "inspect", image], capture_output=True)
    if missing.returncode:
        subprocess.run(
            ["make", "-C", str(REPO), "base-image", make_target], check=True, timeout=1800
        )


# down must name every profile, or the services only they start are left running
ALL_PROFILES = ("--profile", "driver", "--profile", "tracking")


class Cluster:
    """`docker compose` on the project's compose file, under a project name of its own."""

    def __init__(self, workdir: Path, project: str, image: str):
        self.project, self.image = project, image
        self.secret = workdir / "spark-secret"
        self.secret.write_text(secrets.token_hex(32) + "\n")
        self.secret.chmod(0o600)
        master_ui, history_ui = free_ports(2)
        self.env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": project,
            "HIGGSBENCH_IMAGE": image,
            "SPARK_SECRET_FILE": str(self.secret),
            "MASTER_UI_PORT": str(master_ui),
            "HISTORY_UI_PORT": str(history_ui),
            "NODES": "2",
        }

    def command(self, *args) -> list[str]:
        """The `docker compose` command line for this project (with `self.env`)."""
        return [DOCKER, "compose", "-f", str(REPO / "docker" / "compose.yaml"), *map(str, args)]

    def compose(self, *args, check=True, timeout=600, env=None, **kw):
        return run_checked(
            self.command(*args), check=check, timeout=timeout, env={**self.env, **(env or {})}, **kw
        )

    def make(self, *targets_and_vars, env=None, timeout=900) -> subprocess.CompletedProcess:
        """`make -C REPO …` against this project; a failure shows the end of make's output (which
        step failed and why), not only its exit status."""
        return run_checked(
            ["make", "-C", REPO, *targets_and_vars],
            timeout=timeout,
            env={**self.env, **(env or {})},
        )

    def driver(self, *args, check=True, env=None, timeout=900, input_file: Path | None = None):
        extra = {"HIGGSBENCH_INPUT": str(input_file)} if input_file else {}
        return self.compose(
            "run",
            "--rm",
            "--no-TTY",
            *args,
            check=check,
            env={**extra, **(env or {})},
            timeout=timeout,
        )

    def prepare_sample(self) -> str:
        """The genuine HIGGS sample, prepared by the driver on the shared volume; its path."""
        require_data(SAMPLE)
        out = "/shared/data/sample"
        self.driver(
            "driver", "data", "prepare", "/input/HIGGS.csv.gz", "--out", out, input_file=SAMPLE
        )
        return out

    def read_json(self, path: str) -> dict:
        """A JSON file on the shared volume, read in the master container."""
        return json.loads(self.compose("exec", "-T", "master", "cat", path).stdout)

    def spark_defaults(self, service: str) -> dict[str, str]:
        """The settings the entrypoint wrote for a running service, without the secret."""
        return spark_settings(
            self.compose("exec", "-T", service, "cat", "/tmp/spark-conf/spark-defaults.conf").stdout
        )

    def master_json(self) -> dict:
        import urllib.request

        url = f"http://127.0.0.1:{self.env['MASTER_UI_PORT']}/json/"
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())

    def alive_workers(self) -> int:
        return sum(w["state"] == "ALIVE" for w in self.master_json()["workers"])

    def inspect(self, service: str, env=None) -> list[dict]:
        """`docker inspect` of a service's running containers."""
        ids = self.compose("ps", "-q", service, env=env).stdout.split()
        return json.loads(docker("inspect", *ids).stdout)

    def containers(self) -> list[str]:
        return docker(
            "ps", "-a", "-q", "--filter", f"label={PROJECT_LABEL}={self.project}"
        ).stdout.split()

    def up(self, workers: int, make_target: str) -> None:
        """Build the image if it is missing, then start master, workers and history."""
        ensure_image(self.image, make_target)
        self.compose(*ALL_PROFILES, "down", "-v", "--remove-orphans", check=False)
        self.compose(
            "up",
            "-d",
            "--wait",
            "--scale",
            f"worker={workers}",
            "master",
            "worker",
            "history",
            timeout=300,
        )
        self.wait_for_workers(workers)

    def wait_for_workers(self, workers: int, timeout: float = 90) -> None:
        """Until the master counts ``workers`` ALIVE: a worker container turns healthy a moment
        before the master has registered it (compose's --wait sees only the containers)."""
        deadline = time.monotonic() + timeout
        while (alive := self.alive_workers()) != workers:
            assert time.monotonic() < deadline, f"{alive} of {workers} workers ALIVE"
            time.sleep(1)

    def down(self) -> None:
        """Stop everything and check that no container or volume of the project is left."""
        self.compose(*ALL_PROFILES, "down", "-v", "--remove-orphans", timeout=300)
        assert self.containers() == [], "containers left after down"
        volumes = docker("volume", "ls", "-q", "--filter", f"label={PROJECT_LABEL}={self.project}")
        assert volumes.stdout.split() == [], f"volumes left after down: {volumes.stdout}"
