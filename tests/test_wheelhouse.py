"""The images' wheelhouse is for the images' CPython and platform, whatever Python the control
host has: `make wheelhouse` run with another CPython (Debian 13's 3.13, Ubuntu 24.04's 3.12)
gives wheels that the image's pip installs, offline (docker/wheelhouse.sh). Needs that other
CPython (HIGGSBENCH_CONTROL_PYTHON, python3.13 or python3.12 on PATH, or pyenv's), PyPI, and
the Spark image of `make images`; skipped without them unless HIGGSBENCH_REQUIRE_DOCKER=1."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging import tags
from packaging.utils import parse_wheel_filename

from higgsbench import __version__
from tests.compose import SPARK_IMAGE, require_docker
from tests.conftest import REPO
from tests.helpers import docker, run_checked, tool_env

IMAGE_PYTHON = (3, 11)  # docker/Dockerfile's python-base: Debian bookworm's CPython
IMAGE_GLIBC_MINOR = 36  # bookworm's glibc 2.36


def _fail_or_skip(reason: str):
    if os.environ.get("HIGGSBENCH_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{reason} (HIGGSBENCH_REQUIRE_DOCKER=1)")
    pytest.skip(reason)


def other_python() -> str | None:
    """A CPython other than the image's that runs: the control host of a user on a newer OS."""
    candidates = [os.environ.get("HIGGSBENCH_CONTROL_PYTHON", "")]
    candidates += [shutil.which(n) or "" for n in ("python3.13", "python3.12")]
    pyenv = glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[23]*/bin/python3"))
    candidates += sorted(pyenv, reverse=True)
    for python in filter(None, candidates):
        probe = subprocess.run(
            [python, "-c", "import sys, venv; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and tuple(map(int, probe.stdout.split())) != IMAGE_PYTHON:
            return python
    return None


@pytest.fixture(scope="module")
def foreign_build(tmp_path_factory) -> Path:
    """`make wheelhouse` in a copy of the checkout, with a venv (pip only) of another CPython."""
    require_docker()
    python = other_python()
    if python is None:
        _fail_or_skip("no CPython 3.12 or 3.13 to build the wheelhouse with")
    if docker("image", "inspect", SPARK_IMAGE, check=False).returncode:
        _fail_or_skip(f"no {SPARK_IMAGE} (make images)")
    root = tmp_path_factory.mktemp("wheelhouse")
    tracked = run_checked(["git", "ls-files", "-z"], cwd=REPO).stdout.split("\0")
    for name in filter(None, tracked):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name, follow_symlinks=False)
    venv = root / ".venv"
    run_checked([python, "-m", "venv", venv])
    run_checked(
        ["make", "-C", root, "wheelhouse", f"PYTHON={python}"],
        env=tool_env(), timeout=1200,
    )  # fmt: skip
    return root


def test_the_wheels_fit_the_images_python_and_platform_not_the_control_hosts(foreign_build):
    """Every wheel has a tag of CPython 3.11 on manylinux glibc <= 2.36 for the engine's
    architecture (or is pure Python); none is for the control host's own Python."""
    machine = {"amd64": "x86_64", "arm64": "aarch64"}[
        docker("version", "--format", "{{.Server.Arch}}").stdout.strip()
    ]
    platforms = [f"manylinux_2_{m}_{machine}" for m in range(IMAGE_GLIBC_MINOR, 16, -1)]
    platforms.append(f"manylinux2014_{machine}")  # PEP 599's name of manylinux_2_17
    fits = set(tags.cpython_tags(IMAGE_PYTHON, platforms=platforms))
    fits |= set(tags.compatible_tags(IMAGE_PYTHON, platforms=platforms))
    wheels = sorted((foreign_build / "docker" / "wheelhouse").glob("*.whl"))
    names = {parse_wheel_filename(w.name)[0] for w in wheels}
    assert {"torch", "numpy", "pyarrow", "pyspark", "mlflow-skinny"} <= names
    unfit = [w.name for w in wheels if not parse_wheel_filename(w.name)[3] & fits]
    assert unfit == []
    app = foreign_build / "docker" / "dist" / f"higgsbench-{__version__}-py3-none-any.whl"
    assert app.is_file() and not any(w.name.startswith("higgsbench-") for w in wheels)


def test_the_images_pip_installs_the_wheelhouse_offline(foreign_build):
    """The image's own pip resolves the app with its spark and track extras from the wheelhouse
    alone (no index, no network) at the constraints' versions."""
    wheels, dist = foreign_build / "docker" / "wheelhouse", foreign_build / "docker" / "dist"
    app = f"/dist/higgsbench-{__version__}-py3-none-any.whl[spark,track]"
    proc = docker(
        "run", "--rm", "--network", "none", "--entrypoint", "/opt/venv/bin/pip",
        "-v", f"{wheels}:/wheelhouse:ro", "-v", f"{dist}:/dist:ro",
        "-v", f"{foreign_build / 'constraints.txt'}:/constraints.txt:ro",
        SPARK_IMAGE, "install", "--dry-run", "--ignore-installed", "--no-index",
        "--no-cache-dir", "--disable-pip-version-check", "-c", "/constraints.txt",
        "--find-links", "/wheelhouse", app,
        check=False, timeout=600,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    would = out[out.index("Would install") :].split()
    for pin in ("torch-2.13.0", "pyspark-4.3.0", "numpy-2.4.6", f"higgsbench-{__version__}"):
        assert any(w.startswith(pin) for w in would), (pin, out[-3000:])
