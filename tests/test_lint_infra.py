"""Static checks of what CI does not build or run: every Dockerfile through hadolint (the GPU
image is too large to build here), every shell script through shellcheck; and what makes the
containers safe by default, read from the files themselves: the entrypoint's Spark settings
(RPC encrypted, no SASL fallback, no kill links), every compose service and every container
Ansible starts confined (no capabilities, no privilege gain, read-only root, limits), and the
app installed into images from its own wheel only."""

import re
import subprocess

import pytest
import yaml

from tests.compose import run_entrypoint, spark_settings
from tests.conftest import REPO
from tests.helpers import venv_tool

# Every Dockerfile and shell script of the project, found rather than listed, so that a new
# one cannot escape the linters.
DOCKERFILE = REPO / "docker" / "Dockerfile"  # every image of the project, one stage each
DOCKERFILES = [DOCKERFILE]
LINTED_DOCKERFILES = DOCKERFILES + sorted((REPO / "tests").glob("**/Dockerfile*"))  # + stand-ins
SCRIPTS = [
    *sorted(
        p
        for pattern in ("docker/**/*.sh", "scripts/*.sh", "tests/**/*.sh")
        for p in REPO.glob(pattern)
    ),
    REPO / ".ci" / "run",
]


def _tool(name: str) -> str:
    path = venv_tool(name)
    if path is None:
        pytest.fail(f"{name} is missing: it comes with the dev extra (pip install -e '.[dev]')")
    return path


@pytest.mark.parametrize("dockerfile", LINTED_DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_is_clean_for_hadolint(dockerfile):
    proc = subprocess.run(
        [_tool("hadolint"), "--no-color", str(dockerfile)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _stages() -> dict[str, tuple[str, str]]:
    """docker/Dockerfile's stages: {name: (what it is FROM, its text)}."""
    stages = {}
    for block in re.split(r"^(?=FROM )", DOCKERFILE.read_text(), flags=re.M)[1:]:
        m = re.match(r"FROM (\S+) AS (\S+)", block)
        assert m, block.splitlines()[0]
        stages[m.group(2)] = (m.group(1), block)
    return stages


IMAGES = {"node": "higgsbench-spark and -bigdl", "gpu": "higgsbench-gpu", "tracking": "mlflow"}


def test_one_dockerfile_one_base_for_every_image():
    """The images are stages of one file, each built on python-base (Debian, Python, the
    non-root user, the venv): what they share is written once; the Makefile builds targets."""
    stages = _stages()
    assert set(IMAGES) <= set(stages)
    assert stages["python-base"][0] == "debian:bookworm-slim"
    for target in IMAGES:
        parent = target
        while parent in stages:
            parent = stages[parent][0].replace("${FLAVOUR}", "spark")
        assert parent == "debian:bookworm-slim", target
        assert "python-base" in _ancestors(stages, target), target
    assert stages["node"][0] == "${FLAVOUR}-deps" and {"spark-deps", "bigdl-deps"} <= set(stages)
    assert not list((REPO / "docker").glob("*/Dockerfile")), "images outside docker/Dockerfile"
    makefile = (REPO / "Makefile").read_text()
    for target in IMAGES:
        assert f"--target {target}" in makefile, target


def _ancestors(stages, name: str) -> list[str]:
    out = []
    while name in stages:
        name = stages[name][0].replace("${FLAVOUR}", "spark")
        out.append(name)
    return out


def test_every_image_runs_as_a_numeric_non_root_user():
    # Kubernetes' runAsNonRoot can only verify a numeric user.
    for target, (_, text) in _stages().items():
        if target not in IMAGES:
            continue
        lines = text.splitlines()
        args = dict(
            line[4:].split("=", 1) for line in lines if line.startswith("ARG ") and "=" in line
        )
        users = [line.split()[1] for line in lines if line.startswith("USER ")]
        assert users, f"{target}: no USER"
        user = users[-1]
        for name, value in args.items():
            user = user.replace("${" + name + "}", value)
        uid, _, gid = user.partition(":")
        assert uid.isdigit() and gid.isdigit() and int(uid) != 0, f"{target}: USER {user}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_script_is_clean_for_shellcheck(script):
    proc = subprocess.run([_tool("shellcheck"), str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- safe by default: RPC encryption, confined containers, the app from its own wheel ---------

CRYPTO_ON = {
    "spark.authenticate": "true",
    "spark.network.crypto.enabled": "true",
    "spark.network.crypto.saslFallback": "false",
    "spark.ui.killEnabled": "false",
}


@pytest.mark.parametrize("role", ["master", "worker", "history", "driver"])
def test_the_entrypoint_encrypts_rpc_without_fallback(tmp_path, role):
    proc = run_entrypoint(tmp_path, [role, "bench"], {"SPARK_RPC_SECRET": "s3cret"})
    assert proc.returncode == 0, proc.stderr
    settings = spark_settings(proc.stdout)
    assert CRYPTO_ON.items() <= settings.items(), settings
    assert settings["spark.master.rest.enabled"] == "false"
    conf = tmp_path / "conf" / "spark-defaults.conf"
    assert conf.stat().st_mode & 0o777 == 0o600 and "s3cret" in conf.read_text()


def test_the_entrypoint_turns_encryption_off_only_when_told(tmp_path):
    secret = {"SPARK_RPC_SECRET": "s"}
    off = run_entrypoint(tmp_path, ["master"], {**secret, "SPARK_NETWORK_CRYPTO": "false"})
    assert spark_settings(off.stdout)["spark.network.crypto.enabled"] == "false"
    bad = run_entrypoint(tmp_path, ["master"], {**secret, "SPARK_NETWORK_CRYPTO": "yes"})
    assert bad.returncode == 64 and "expected true or false" in bad.stderr
    # daemons never start without a secret
    alone = run_entrypoint(tmp_path, ["worker"], {"SPARK_RPC_SECRET_FILE": "/nonexistent"})
    assert alone.returncode == 64 and "no RPC secret" in alone.stderr


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())  # merges the anchors


@pytest.mark.parametrize("service", sorted(_compose()["services"]))
def test_every_compose_service_is_confined(service):
    spec = _compose()["services"][service]
    assert spec["cap_drop"] == ["ALL"], service
    assert "no-new-privileges:true" in spec["security_opt"], service
    assert spec["read_only"] is True, service
    assert int(spec["pids_limit"]) > 0, service
    assert spec.get("mem_limit"), f"{service}: no memory limit"
    assert "deploy" not in spec or "resources" not in spec["deploy"], "limits said once"
    if service == "secret-init":  # installs the secret for the non-root user, then exits
        assert set(spec["cap_add"]) <= {"CHOWN", "FOWNER", "DAC_OVERRIDE"}
        assert spec["network_mode"] == "none"
    else:
        assert "cap_add" not in spec, service
        tmpfs = {entry.split(":", 1)[0] for entry in spec["tmpfs"]}
        assert {"/tmp", "/home/spark"} <= tmpfs, f"{service}: the entrypoint writes /tmp"


def _container_tasks() -> list[tuple[str, dict]]:
    found = []
    for path in sorted((REPO / "ansible").glob("roles/*/tasks/*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            spec = task.get("community.docker.docker_container")
            if spec is not None and spec.get("state") != "absent":  # removals start nothing
                found.append((f"{path.parent.parent.name}: {task['name']}", task))
    return found


def test_every_container_ansible_starts_is_confined():
    tasks = _container_tasks()
    assert {where.split(":")[0] for where, _ in tasks} == {
        "spark_master", "spark_worker", "spark_history", "bench"
    }  # fmt: skip
    for where, task in tasks:
        spec = task["community.docker.docker_container"]
        assert spec["cap_drop"] == ["ALL"] and "capabilities" not in spec, where
        assert spec["security_opts"] == ["no-new-privileges:true"], where
        # a GPU container alone keeps a writable root: the NVIDIA hook writes into it at start
        assert spec.get("read_only") is True or "device_requests" in spec, where
        assert spec["tmpfs"], where
        assert spec["pids_limit"] and spec["memory"], where
        assert not spec.get("privileged"), where
    defaults = yaml.safe_load(
        (REPO / "ansible" / "roles" / "spark_common" / "defaults" / "main.yml").read_text()
    )
    assert any(t.startswith("/tmp:") for t in defaults["spark_common_tmpfs"])


@pytest.mark.parametrize("target", sorted(IMAGES))
def test_images_install_the_app_only_from_its_wheel(target):
    """higgsbench is not a PyPI name of ours: no pip install may look it up on an index."""
    text = _stages()[target][1].replace("\\\n", " ")
    installs = [cmd for cmd in re.split(r"&&|;|\n", text) if re.search(r"\bpip install\b", cmd)]
    naming_app = [cmd for cmd in installs if "higgsbench" in cmd]
    if target == "tracking":  # the MLflow server alone: no app in it
        assert not naming_app, "the tracking image holds no app"
        return
    assert naming_app, f"{target}: the app is not installed"
    for cmd in naming_app:
        # the GPU image may add the app's keras-gpu extra to the same file (GPU_EXTRAS)
        wheel = re.search(r'"/dist/higgsbench-\$\{HIGGSBENCH_VERSION\}-py3-none-any\.whl'
                          r'(\$\{GPU_EXTRAS:\+\[\$GPU_EXTRAS\]\})?"', cmd)  # fmt: skip
        assert wheel and (wheel.group(1) is None or target == "gpu"), cmd
        wheel = wheel.group(0)
        assert not re.search(r"(?<![/\w-])higgsbench(?![-\w])", cmd.replace(wheel, "")), cmd
