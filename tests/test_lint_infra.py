"""Static checks of what CI does not build or run: every Dockerfile through hadolint (the GPU
image is too large to build here), every shell script through shellcheck."""

import subprocess

import pytest

from tests.conftest import REPO
from tests.helpers import venv_tool

DOCKERFILES = sorted((REPO / "docker").glob("*/Dockerfile"))
SCRIPTS = [
    REPO / p
    for p in (
        "docker/spark/entrypoint.sh",
        "docker/base-image.sh",
        "scripts/gpu-check.sh",
        ".ci/run",
    )
]


def _tool(name: str) -> str:
    path = venv_tool(name)
    if path is None:
        pytest.fail(f"{name} is missing: it comes with the dev extra (pip install -e '.[dev]')")
    return path


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_is_clean_for_hadolint(dockerfile):
    proc = subprocess.run(
        [_tool("hadolint"), "--no-color", str(dockerfile)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_image_runs_as_a_numeric_non_root_user():
    # Kubernetes' runAsNonRoot can only verify a numeric user.
    for dockerfile in DOCKERFILES:
        lines = dockerfile.read_text().splitlines()
        args = dict(
            line[4:].split("=", 1) for line in lines if line.startswith("ARG ") and "=" in line
        )
        users = [line.split()[1] for line in lines if line.startswith("USER ")]
        assert users, f"{dockerfile}: no USER"
        user = users[-1]
        for name, value in args.items():
            user = user.replace("${" + name + "}", value)
        uid, _, gid = user.partition(":")
        assert uid.isdigit() and gid.isdigit() and int(uid) != 0, f"{dockerfile}: USER {user}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_script_is_clean_for_shellcheck(script):
    proc = subprocess.run([_tool("shellcheck"), str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
