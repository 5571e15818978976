"""An honest install: ranges in pyproject.toml, the exact versions in constraints.txt (the one
place for pins), environments that hold only what they need, a CPU torch index on request,
image builds that find a BuildKit client or say how to get one, files that follow the
user's umask, and the built wheel installed into a fresh virtual environment."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO
from tests.helpers import run_cli

CONSTRAINTS = REPO / "constraints.txt"
BUILD_COMMAND = REPO / "docker" / "build-command.sh"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _requirements() -> dict[str, list[Requirement]]:
    """pyproject's requirements by extra ("" for the base dependencies)."""
    project = _project()
    found = {"": [Requirement(r) for r in project["dependencies"]]}
    for extra, reqs in project["optional-dependencies"].items():
        found[extra] = [Requirement(r) for r in reqs]
    return found


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for number, line in enumerate(CONSTRAINTS.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==([0-9][0-9A-Za-z.!+-]*)", line)
        assert m, f"constraints.txt:{number}: not an exact pin: {line!r}"
        name = canonicalize_name(m.group(1))
        assert name not in pins, f"constraints.txt:{number}: {name} pinned twice"
        pins[name] = Version(m.group(2))
    return pins


# --- one place for pins -------------------------------------------------------------------


def test_every_pin_satisfies_pyproject_and_every_dependency_is_pinned():
    pins = _pins()
    wanted = set()
    for extra, reqs in _requirements().items():
        for req in reqs:
            name = canonicalize_name(req.name)
            wanted.add(name)
            where = f"{req} ({extra or 'dependencies'})"
            assert name in pins, f"{where}: no pin in constraints.txt"
            assert not any(s.operator in ("==", "===") for s in req.specifier), (
                f"{where}: pyproject.toml holds ranges; the exact version goes in constraints.txt"
            )
            assert req.specifier.contains(pins[name], prereleases=True), (
                f"constraints.txt's {name}=={pins[name]} is outside pyproject's {where}"
            )
    # TensorFlow's CUDA 12 libraries (keras-gpu): its and-cuda extra gives ranges, we pin them
    cuda12 = {name for name in pins if re.fullmatch(r"nvidia-[a-z-]+-cu12", name)}
    assert len(cuda12) == 12
    assert set(pins) - cuda12 == wanted, f"pins of no dependency: {sorted(set(pins) - wanted)}"
    # the local label of PyTorch's CPU wheels matches the pin (PEP 440)
    from packaging.specifiers import SpecifierSet

    assert Version(f"{pins['torch']}+cpu") in SpecifierSet(f"=={pins['torch']}")


def test_the_deploy_extra_holds_the_control_host_and_the_demo_needs_none_of_it():
    extras = {k: {canonicalize_name(r.name) for r in v} for k, v in _requirements().items()}
    assert extras["deploy"] == {"ansible", "ansible-core", "openstacksdk"}
    assert "ansible-lint" in extras["dev"]
    demo = extras[""] | extras["spark"] | extras["track"]
    assert not demo & extras["deploy"]
    # openstack.cloud 2.5 (in ansible 12) reads openstack.version, which 4.15 removed
    sdk = next(r for r in _requirements()["deploy"] if r.name == "openstacksdk")
    assert not sdk.specifier.contains("4.15.0")


def test_no_version_is_pinned_outside_constraints_txt():
    """The make files and .ci/run name packages, never their versions (the BigDL and MLflow
    server environments keep their own requirement files)."""
    pins = _pins()
    for path in ["Makefile", "ansible/ansible.mk", "k8s/k8s.mk", ".ci/run", "docker/Dockerfile"]:
        text = (REPO / path).read_text()
        for m in re.finditer(r"([A-Za-z0-9._-]+)==[0-9]", text):
            name = canonicalize_name(m.group(1))
            assert name not in pins, f"{path}: pins {m.group(0)}… beside constraints.txt"
    header = CONSTRAINTS.read_text().split("\n\n", 1)[0]
    assert "comparable only between identical" in header
    for own in ("docker/bigdl/requirements.txt", "docker/tracking/requirements.txt"):
        assert own in header, f"constraints.txt should say why {own} is separate"


def _make_plan(*args: str) -> str:
    """What `make -n ARGS` would run (always, -B), continued lines joined."""
    proc = subprocess.run(
        ["make", "-s", "-n", "-B", "-C", str(REPO), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DOCKER_BUILD": "fake-build"},
    )
    assert proc.returncode == 0, proc.stderr
    return " ".join(proc.stdout.replace("\\\n", " ").split())


def _extras(plan: str) -> list[set[str]]:
    """The extras of each `pip install -e '.[…]'` in a make plan."""
    return [set(m.split(",")) for m in re.findall(r"-e '\.\[([^\]]*)\]'", plan)]


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_venv_is_the_demo_environment_and_venv_dev_adds_the_tools(tmp_path):
    venv = tmp_path / "v"
    demo = _make_plan("venv", f"VENV={venv}")
    assert f"{venv}/bin/pip install --quiet -c constraints.txt -e '.[spark,track]'" in demo
    assert _extras(demo) == [{"spark", "track"}] and "--extra-index-url" not in demo
    dev = _make_plan("venv-dev", f"VENV={venv}")
    # the Keras engine's extra too: a developer's make test runs what CI runs
    assert "-c constraints.txt -e '.[spark,track,dev,deploy,keras]'" in dev
    assert _extras(dev) == [{"spark", "track"}, {"spark", "track", "dev", "deploy", "keras"}]
    for target in ("test", "coverage", "lint", "format", "k8s-validate", "ansible-lint"):
        assert ".installed-dev" in _make_plan(target, f"VENV={venv}"), target
    # the control host's tools: the deploy extra, at constraints.txt's versions
    tools = _make_plan("ansible-tools", f"VENV={venv}")
    assert f"-c {REPO}/constraints.txt -e '{REPO}[deploy]'" in tools


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_torch_cpu_index_reaches_make_venv_and_the_wheelhouse(tmp_path):
    venv = tmp_path / "v"
    index = f"--extra-index-url {TORCH_CPU_INDEX}"
    demo = _make_plan("venv", f"VENV={venv}", f"TORCH_CPU_INDEX={TORCH_CPU_INDEX}")
    assert f"-c constraints.txt {index} -e '.[spark,track]'" in demo
    wheels = _make_plan("wheelhouse", f"VENV={venv}", f"TORCH_CPU_INDEX={TORCH_CPU_INDEX}")
    assert f"docker/wheelhouse.sh docker/wheelhouse -c constraints.txt {index}" in wheels
    assert index not in _make_plan("wheelhouse", f"VENV={venv}")


def test_the_node_and_gpu_images_install_at_the_constraints_versions():
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    stages = dict(
        (m.group(1), m.group(2))
        for m in re.finditer(r"^FROM \S+ AS (\S+)\n(.*?)(?=^FROM |\Z)", dockerfile, re.M | re.S)
    )
    mount = "--mount=type=bind,source=constraints.txt,target=/constraints.txt"
    for stage in ("spark-deps", "gpu"):
        text = stages[stage].replace("\\\n", " ")
        assert mount in text, stage
        installs = [c for c in re.split(r"&&|;|\n", text) if re.search(r"\bpip install\b", c)]
        assert installs and all("-c /constraints.txt" in c for c in installs), stage
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert "!constraints.txt" in ignore  # in the build context, where the mount finds it


# --- the image builder: buildx, an old client, another client, or how to fix it -------------


def _fake_docker(where: Path, version: str, buildx: bool) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    script = where / "docker"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$1" in --version) echo "Docker version {version}, build abc1234";;\n'
        f"  buildx) {'echo github.com/docker/buildx v0.30.0' if buildx else 'exit 1'};;\n"
        "  *) exit 1;; esac\n"
    )
    script.chmod(0o755)
    return script


def _build_command(path, docker="docker", candidates: str | None = ""):
    """docker/build-command.sh with PATH = path (a folder or folders a:b), then the system's."""
    env = {"PATH": f"{path}:/usr/bin:/bin", "DOCKER": docker}
    if candidates is not None:
        env["DOCKER_CANDIDATES"] = candidates
    return subprocess.run([str(BUILD_COMMAND)], capture_output=True, text=True, timeout=30, env=env)


def test_build_command_uses_buildx_when_the_client_has_it(tmp_path):
    _fake_docker(tmp_path / "bin", "28.2.2", buildx=True)
    proc = _build_command(tmp_path / "bin")
    assert proc.returncode == 0 and proc.stdout.strip() == "docker buildx build --load"


def test_build_command_turns_buildkit_on_in_a_client_older_than_23(tmp_path):
    _fake_docker(tmp_path / "bin", "20.10.24+dfsg1", buildx=False)
    proc = _build_command(tmp_path / "bin")
    assert proc.returncode == 0 and proc.stdout.strip() == "DOCKER_BUILDKIT=1 docker build"


def test_build_command_falls_back_to_another_client_that_has_buildkit(tmp_path):
    new = _fake_docker(tmp_path / "new", "28.2.2", buildx=False)
    old = _fake_docker(tmp_path / "old", "20.10.24+dfsg1", buildx=False)
    proc = _build_command(tmp_path / "new", candidates=f"{new} {old}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"DOCKER_BUILDKIT=1 {old} build"
    # by default: every docker on PATH
    proc = _build_command(f"{new.parent}:{old.parent}", candidates=None)
    assert proc.returncode == 0 and proc.stdout.strip() == f"DOCKER_BUILDKIT=1 {old} build"


def test_build_command_says_what_is_missing_and_how_to_fix_it(tmp_path):
    new = _fake_docker(tmp_path / "bin", "28.2.2", buildx=False)
    proc = _build_command(tmp_path / "bin", candidates=str(new))
    assert proc.returncode == 1 and proc.stdout == ""
    message = proc.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "docker 28.2.2 has no buildx plugin" in message
    assert "docker-buildx-plugin" in message and "DOCKER_BUILD" in message
    missing = _build_command(tmp_path / "bin", docker=str(tmp_path / "none" / "docker"))
    assert missing.returncode == 1 and "no docker client" in missing.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_images_stops_with_the_fix_when_no_client_has_buildkit(tmp_path):
    new = _fake_docker(tmp_path / "bin", "28.2.2", buildx=False)
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_BUILD"}
    proc = subprocess.run(
        ["make", "-s", "-n", "-C", str(REPO), "images", f"DOCKER={new}", f"VENV={tmp_path}/v"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "DOCKER_CANDIDATES": ""},
    )
    assert proc.returncode != 0
    assert "has no buildx plugin" in proc.stderr and "docker-buildx-plugin" in proc.stderr
    assert "docker/Dockerfile" not in proc.stdout  # no image build was started
    # other targets never ask
    help_ = subprocess.run(
        ["make", "-s", "-C", str(REPO), "help", f"DOCKER={new}"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "DOCKER_CANDIDATES": ""},
    )
    assert help_.returncode == 0 and "buildx" not in help_.stderr


# --- results and data follow the umask; the secret does not ----------------------------------


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_results_and_prepared_data_follow_the_umask_and_the_secret_stays_private(
    tmp_path, umask_022
):
    from higgsbench.spark.cluster import write_spark_defaults
    from higgsbench.spark.security import write_private

    prepared = tmp_path / "prepared"
    run_cli("data", "synth", "--events", 2000, "--seed", 1, "--out", prepared, check=True)
    run = tmp_path / "run"
    run_cli(
        "train", "--data", prepared, "--out", run, "--epochs", 1, "--batch-size", 256,
        "--threads", 1, check=True,
    )  # fmt: skip
    assert (run / "result.json").is_file() and (prepared / "stats.json").is_file()
    for made in (prepared, run):
        modes = {p.relative_to(tmp_path): p.stat().st_mode & 0o777 for p in made.rglob("*")}
        modes[made.relative_to(tmp_path)] = made.stat().st_mode & 0o777
        dirs = {p for p in modes if (tmp_path / p).is_dir()}
        assert {p: oct(m) for p, m in modes.items() if m != (0o755 if p in dirs else 0o644)} == {}
    # the Spark secret and the settings that hold it: the owner's only, whatever the umask
    assert write_private(tmp_path / "secret", "s\n").stat().st_mode & 0o777 == 0o600
    conf = write_spark_defaults(tmp_path / "conf", "s")
    assert conf.stat().st_mode & 0o777 == 0o600


# --- acceptance: the built wheel in a fresh Python 3.11 venv with the constraints ------------


@pytest.mark.install
def test_the_built_wheel_installs_into_a_fresh_venv_with_the_constraints_and_runs(tmp_path):
    """pip wheel --no-deps, a new venv, pip install -c constraints.txt WHEEL, then a real job
    from that venv (pip's cache is warm after make venv: a few minutes on 2 cores)."""
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", dist, REPO],
        check=True,
        timeout=600,
    )
    (wheel,) = dist.glob("higgsbench-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    version = subprocess.run(
        [python, "-c", "import sys; print(*sys.version_info[:2], sep='.')"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert Version(version) >= Version("3.11")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "-c", CONSTRAINTS, wheel],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True
    )
    installed = {
        canonicalize_name(p["name"]): Version(p["version"]) for p in json.loads(listed.stdout)
    }
    for name, pinned in _pins().items():
        if name in installed:  # the base dependencies; extras are not installed here
            assert installed[name].public == pinned.public, name
    base = {canonicalize_name(r.name) for r in _requirements()[""]}
    assert base <= set(installed)
    assert not {"ansible", "openstacksdk", "pyspark", "pytest"} & set(installed)

    higgsbench = venv / "bin" / "higgsbench"
    out = subprocess.run([higgsbench, "--version"], capture_output=True, text=True, check=True)
    assert _project_version() in out.stdout

    env = {**os.environ, "HIGGSBENCH_PROGRESS": "0"}
    cwd = tmp_path  # not the checkout: the installed package, not app/
    subprocess.run(
        [higgsbench, "data", "synth", "--events", "2000", "--seed", "1", "--out", "prepared"],
        check=True, cwd=cwd, env=env, capture_output=True, timeout=300,
    )  # fmt: skip
    train = subprocess.run(
        [higgsbench, "train", "--data", "prepared", "--out", "run", "--epochs", "1",
         "--batch-size", "256", "--threads", "1"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    record = json.loads((cwd / "run" / "result.json").read_text())
    assert 0.0 <= record["test_auc"] <= 1.0 and record["generated_data"] is True
    where = subprocess.run(
        [python, "-c", "import higgsbench; print(higgsbench.__file__)"],
        capture_output=True, text=True, cwd=cwd, check=True,
    ).stdout  # fmt: skip
    assert str(venv) in where


def _project_version() -> str:
    text = (REPO / "app" / "higgsbench" / "__init__.py").read_text()
    return re.search(r'^__version__ = "(.+)"', text, re.M).group(1)


@pytest.mark.gpu_image
def test_the_gpu_image_resolves_torch_cuda_and_tensorflow_cuda_at_the_pins(tmp_path):
    """What `make images-gpu` installs (docker/Dockerfile, target gpu): torch's CUDA build from
    PyPI, then the app's wheel with the keras-gpu extra, all under constraints.txt. A GPU
    cannot be had here, so pip resolves it without installing (--dry-run): torch's CUDA 13
    libraries and TensorFlow's CUDA 12 ones side by side, at the pinned versions, with no
    conflict. pip downloads the wheels that PyPI serves without separate metadata (NCCL's
    alone is 350 MB), so this runs apart from make test: `make test-gpu-image` (40 s with a
    warm pip cache; a dropped connection fails it)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", tmp_path, REPO],
        check=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("higgsbench-*.whl")
    # PyPI only, as in the image: no local wheel folder offering torch's CPU build
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    env["PIP_CONFIG_FILE"] = os.devnull
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
         "--report", report, "-c", CONSTRAINTS, "torch", f"{wheel}[keras-gpu]"],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    chosen = {
        canonicalize_name(i["metadata"]["name"]): Version(i["metadata"]["version"])
        for i in json.loads(report.read_text())["install"]
    }
    pins = _pins()
    assert chosen["torch"] == pins["torch"] and not chosen["torch"].local  # the CUDA build
    assert chosen["tensorflow"] == pins["tensorflow"] and chosen["keras"] == pins["keras"]
    cuda12 = {name for name in chosen if name.endswith("-cu12")}
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12"} <= cuda12
    assert all(chosen[name] == pins[name] for name in cuda12)
    assert "tensorflow-cpu" not in chosen
    assert any(name.startswith("nvidia-") and name not in cuda12 for name in chosen)  # torch's


def test_make_images_gpu_adds_the_keras_gpu_extra_unless_keras_0(tmp_path):
    """KERAS=0 builds the GPU image with torch alone; by default it carries the keras-gpu
    extra (docker/Dockerfile installs the app's wheel with GPU_EXTRAS)."""
    default = _make_plan("images-gpu", f"VENV={tmp_path}/v")
    assert "--target gpu" in default and "--build-arg GPU_EXTRAS=keras-gpu ." in default
    torch_only = _make_plan("images-gpu", f"VENV={tmp_path}/v", "KERAS=0")
    assert "--build-arg GPU_EXTRAS= ." in torch_only and "keras-gpu" not in torch_only
