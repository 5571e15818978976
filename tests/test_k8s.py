"""The Kubernetes deployment (k8s/): schema validation, offline, with the project's validator
(k8s/validate.py on kubernetes-validate's bundled schemas), and the properties the cluster
relies on, read from the manifests themselves: resources, non-root security contexts, probes,
the image contract of docker/spark/entrypoint.sh (RPC encryption on, without SASL fallback, in
what the entrypoint writes for every Spark container), the GPU Job, the network policy, and
that no secret value lies in the repository."""

from __future__ import annotations

import base64
import copy
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compose import run_entrypoint, spark_settings

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the manifests")
pytest.importorskip("kubernetes_validate", reason="kubernetes-validate==1.37.0 is not installed")

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"
SECRET_FILE = K8S / "base" / "spark-secret.txt"
VERSION = re.search(
    r'__version__ = "(.+?)"', (REPO / "app" / "higgsbench" / "__init__.py").read_text()
).group(1)
SPARK_IMAGE = f"higgsbench-spark:{VERSION}"
GPU_IMAGE = f"higgsbench-gpu:{VERSION}"
TRACKING_IMAGE = f"higgsbench-tracking:{VERSION}"
MEMBERS = {"app.kubernetes.io/part-of": "higgsbench"}
WORKLOADS = {
    "deployment/spark-master",
    "deployment/spark-worker",
    "deployment/spark-history",
    "deployment/mlflow",
    "job/bench-driver",
    "job/gpu-bench",
    "pod/results-reader",
}
UI_PORTS = {"master": 8080, "worker": 8081, "history": 18080}


def _load_validator():
    spec = importlib.util.spec_from_file_location("k8s_validate", K8S / "validate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


validator = _load_validator()
KUSTOMIZE = validator.find_kustomize()
needs_kustomize = pytest.mark.skipif(KUSTOMIZE is None, reason="no kubectl or kustomize on PATH")


def run_validator(*args, root: Path = K8S) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(K8S / "validate.py"), "--root", str(root), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def name(doc: dict) -> str:
    return f"{doc['kind'].lower()}/{doc['metadata']['name']}"


def manifests() -> dict[str, dict]:
    """kind/name -> resource, for every whole resource under k8s/ (the files kustomizations
    name as resources; patches excluded)."""
    out = {}
    for path in validator.resource_files(K8S):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                assert name(doc) not in out, f"{name(doc)} defined twice"
                out[name(doc)] = doc
    return out


DOCS = manifests()


def pod_spec(doc: dict) -> dict:
    return doc["spec"] if doc["kind"] == "Pod" else doc["spec"]["template"]["spec"]


def pod_labels(doc: dict) -> dict:
    meta = doc["metadata"] if doc["kind"] == "Pod" else doc["spec"]["template"]["metadata"]
    return meta.get("labels", {})


def containers(spec: dict) -> list[dict]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def workloads(docs: dict[str, dict] = DOCS) -> dict[str, dict]:
    return {k: d for k, d in docs.items() if d["kind"] in ("Deployment", "Job", "Pod")}


def env(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def quantity(value) -> float:
    """A Kubernetes quantity as a number (cores, bytes)."""
    units = {
        "m": 1e-3,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
    }
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert m and (m.group(2) in units or not m.group(2)), f"bad quantity {value!r}"
    return float(m.group(1)) * units.get(m.group(2), 1)


def build(folder: str) -> dict[str, dict]:
    built = validator.render(K8S, KUSTOMIZE)[folder]
    assert not isinstance(built, str), f"kustomize build of {folder} failed: {built}"
    return {name(d): d for d in built}


# --- schema validation -------------------------------------------------------------------


@needs_kustomize
def test_every_manifest_passes_the_offline_schema_validation():
    proc = run_validator("--require-build")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert not [ln for ln in lines if ln.startswith("FAIL")]
    built = {ln.split(":", 1)[0][len("ok   build ") :]: ln for ln in lines if "ok   build " in ln}
    assert set(built) == {
        "base",
        "bench",
        "tools",
        "overlays/local",
        "overlays/local-tracking",
        "overlays/gpu",
    }
    # every whole resource was rendered by some build, and checked against both versions
    for key in DOCS:
        assert any(f" {key}," in ln or f" {key} (" in ln for ln in built.values()), key
    assert all(ln.endswith("(1.30, 1.37)") for ln in built.values())
    assert "ok   kustomization: every YAML file under the root is named by one" in lines


def test_without_kustomize_the_build_is_skipped_or_fails_when_required(tmp_path):
    path = {"PATH": str(tmp_path)}  # neither kubectl nor kustomize
    cmd = [sys.executable, str(K8S / "validate.py")]
    skipped = subprocess.run(cmd, capture_output=True, text=True, env=path, timeout=120)
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "ok   build: skipped (no kubectl or kustomize on PATH)" in skipped.stdout
    required = subprocess.run(
        [*cmd, "--require-build"], capture_output=True, text=True, env=path, timeout=120
    )
    assert required.returncode == 1
    assert "FAIL build: skipped (no kubectl or kustomize on PATH)" in required.stdout


def _break_replicas(root: Path):
    p = root / "base" / "spark-worker.yaml"
    p.write_text(p.read_text().replace("replicas: 4", 'replicas: "four"'))


def _misspell_field(root: Path):  # strict schemas reject unknown fields
    p = root / "base" / "spark-master.yaml"
    p.write_text(p.read_text().replace("readinessProbe:", "readynessProbe:", 1))


def _misspell_kind(root: Path):  # the kubernetes-validate CLI would only warn
    p = root / "base" / "shared-pvc.yaml"
    p.write_text(
        p.read_text().replace("kind: PersistentVolumeClaim", "kind: PersistentVolume Claim")
    )


def _misspell_patched_field(root: Path):  # a patch is checked in what its overlay renders
    p = root / "overlays" / "local" / "small-workers.yaml"
    p.write_text(p.read_text().replace("sizeLimit:", "sizeLimt:"))


def _name_missing_file(root: Path):
    p = root / "base" / "kustomization.yaml"
    p.write_text(p.read_text().replace("- spark-history.yaml", "- spark-histroy.yaml"))


def _misspell_replicas_target(root: Path):
    p = root / "overlays" / "local" / "kustomization.yaml"
    p.write_text(p.read_text().replace("name: spark-worker", "name: spark-wrker"))


def _orphan_manifest(root: Path):
    shutil.copy(root / "base" / "namespace.yaml", root / "base" / "unused.yaml")


def _orphan_component(root: Path):  # a component is built only inside an overlay naming it
    p = root / "overlays" / "local-tracking" / "kustomization.yaml"
    p.write_text(p.read_text().replace("components:\n  - ../../components/tracking\n", ""))


def _name_remote_base(root: Path):  # refused before any build: kustomize would fetch it
    p = root / "tools" / "kustomization.yaml"
    p.write_text(p.read_text() + "  - https://github.com/example/k8s//base?ref=main\n")


@needs_kustomize
@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (_break_replicas, "FAIL build base: deployment/spark-worker against 1.30: spec.replicas:"),
        (_misspell_field, "'readynessProbe' was unexpected"),
        (_misspell_kind, "Couldn't find schema for kind PersistentVolume Claim"),
        (_misspell_patched_field, "FAIL build overlays/local: deployment/spark-worker against"),
        (_name_missing_file, "'spark-histroy.yaml'"),
        (_misspell_replicas_target, "FAIL build overlays/local:"),
        (_orphan_manifest, "FAIL kustomization: base/unused.yaml: not named by any"),
        (_orphan_component, "FAIL kustomization: components/tracking: a component no"),
        (_name_remote_base, "resources names a remote 'https://github.com/example/k8s//base"),
    ],
)
def test_the_validator_rejects_broken_manifests(tmp_path, damage, expected):
    root = tmp_path / "k8s"
    shutil.copytree(K8S, root, ignore=shutil.ignore_patterns("spark-secret.txt", "__pycache__"))
    damage(root)
    proc = run_validator("--require-build", root=root)
    assert proc.returncode == 1, proc.stdout
    assert expected in proc.stdout, proc.stdout


# --- what every workload must have --------------------------------------------------------


def test_the_expected_workloads_exist():
    assert set(workloads()) == WORKLOADS


@pytest.mark.parametrize("key", sorted(WORKLOADS))
def test_every_container_has_requests_and_limits(key):
    for c in containers(pod_spec(DOCS[key])):
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(res.get(kind, {})), f"{key}/{c['name']}: {kind}"
        for r in ("cpu", "memory"):
            assert quantity(res["requests"][r]) <= quantity(res["limits"][r]), f"{key}/{c['name']}"


@pytest.mark.parametrize("key", sorted(WORKLOADS))
def test_every_container_runs_as_non_root_with_nothing_extra(key):
    spec = pod_spec(DOCS[key])
    pod_sc = spec.get("securityContext", {})
    assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    assert spec.get("automountServiceAccountToken") is False, "pods need no API access"
    assert spec.get("enableServiceLinks") is False, "SPARK_MASTER_PORT=tcp://… would break Spark"
    assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    tmp_volumes = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
    for c in containers(spec):
        sc = {**pod_sc, **c.get("securityContext", {})}  # the container's settings win
        where = f"{key}/{c['name']}"
        assert sc.get("runAsNonRoot") is True, where
        assert sc.get("runAsUser") == 10001, where
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert "ALL" in sc.get("capabilities", {}).get("drop", []), where
        assert not sc.get("capabilities", {}).get("add"), where
        assert not sc.get("privileged"), where
        assert sc.get("readOnlyRootFilesystem") is True, where
        # with a read-only root, anything that writes needs an emptyDir at /tmp
        # (the entrypoint writes spark-defaults.conf, logs and work dirs there)
        if c.get("command") != ["sleep", "3600"]:
            tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp and tmp[0]["name"] in tmp_volumes, f"{where}: /tmp is not an emptyDir"


def test_every_resource_carries_the_standard_labels():
    for key, doc in DOCS.items():
        labels = doc["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "higgsbench", key
        assert labels.get("app.kubernetes.io/name"), key
        if doc["kind"] != "Namespace":
            assert labels.get("app.kubernetes.io/component"), key
    for key, doc in workloads().items():
        labels = pod_labels(doc)
        for label in ("app.kubernetes.io/name", "app.kubernetes.io/component"):
            assert labels.get(label) == doc["metadata"]["labels"][label], key
        if doc["kind"] == "Deployment":
            selector = doc["spec"]["selector"]["matchLabels"]
            assert selector.items() <= labels.items(), key


# --- the Spark cluster and the image contract --------------------------------------------


def _spark_container(key: str) -> dict:
    (c,) = [c for c in pod_spec(DOCS[key])["containers"]]
    return c


def _port(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    (p,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return p


@pytest.mark.parametrize("role", sorted(UI_PORTS))
def test_servers_have_http_probes_on_their_ui_port(role):
    c = _spark_container(f"deployment/spark-{role}")
    assert c["image"] == SPARK_IMAGE
    assert c["args"] == [role]
    for probe in ("readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert _port(c, get["port"]) == UI_PORTS[role], probe


def test_the_master_is_reached_through_its_service():
    service = DOCS["service/spark-master"]
    master = DOCS["deployment/spark-master"]
    assert service["spec"]["selector"].items() <= pod_labels(master).items()
    assert {p["port"] for p in service["spec"]["ports"]} == {7077, 8080}
    c = _spark_container("deployment/spark-master")
    for p in service["spec"]["ports"]:
        assert _port(c, p["targetPort"]) == p["port"]
    # it binds and advertises its pod IP; the Service's ClusterIP is on no interface
    assert env(c)["SPARK_MASTER_HOST"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert master["spec"]["strategy"]["type"] == "Recreate"  # never two masters
    assert DOCS["service/spark-history"]["spec"]["ports"][0]["port"] == 18080
    worker = env(_spark_container("deployment/spark-worker"))
    assert worker["SPARK_MASTER_URL"] == "spark://spark-master:7077"
    assert {"SPARK_WORKER_CORES", "SPARK_WORKER_MEMORY"} <= worker.keys()
    assert {p["containerPort"] for p in _spark_container("deployment/spark-worker")["ports"]} == {
        7078,
        8081,
    }
    driver = _spark_container("job/bench-driver")
    assert driver["args"][:3] == ["driver", "bench", "--engines"]
    assert env(driver)["SPARK_MASTER_URL"] == "spark://spark-master:7077"
    assert env(driver)["HIGGSBENCH_SPARK_MASTER_UI"] == "http://spark-master:8080"


def test_spark_containers_get_the_secret_file_and_the_shared_volume():
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    (generator,) = kustomization["secretGenerator"]
    assert "literals" not in generator, "a literal would put the value in git"
    assert generator["files"] == ["spark_secret=spark-secret.txt"]
    pvc = DOCS["persistentvolumeclaim/higgsbench-shared"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]  # ranks on several nodes
    checked = 0
    for key, doc in workloads().items():
        spec = pod_spec(doc)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in containers(spec):
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            if "/shared" in mounts:
                claim = volumes[mounts["/shared"]]["persistentVolumeClaim"]["claimName"]
                assert claim == "higgsbench-shared", key
            if not is_spark_member(c):
                continue  # neither a Spark daemon nor a Spark driver
            secret_file = env(c).get("SPARK_RPC_SECRET_FILE")
            assert secret_file, f"{key}/{c['name']}: daemons refuse to start without a secret"
            folder, file = secret_file.rsplit("/", 1)
            volume = volumes[mounts[folder]]
            assert volume["secret"]["secretName"] == generator["name"], key
            assert file == "spark_secret"
            # readable through fsGroup only: group-readable, nothing for others
            assert volume["secret"]["defaultMode"] & 0o007 == 0, key
            assert spec["securityContext"]["fsGroup"] == 10001
            checked += 1
    assert checked == 4  # master, worker, history and the bench driver


def is_spark_member(container: dict) -> bool:
    """A Spark daemon or a Spark driver: a member of the cluster's RPC."""
    args = container.get("args", [])
    return container["image"] == SPARK_IMAGE and (
        args[:1] in (["master"], ["worker"], ["history"]) or "--master" in args
    )


def _rendered() -> dict[str, dict[str, dict]]:
    """What each folder renders (kustomize), else the manifests as they are."""
    if KUSTOMIZE is None:
        return {"k8s": DOCS}
    return {folder: build(folder) for folder in ("base", "bench", "overlays/local", "overlays/gpu")}


def test_every_spark_member_encrypts_rpc_without_fallback(tmp_path):
    """Each Spark container, as rendered, asks for encryption, and the image's entrypoint run
    with that container's environment writes it into spark-defaults.conf: crypto on, no SASL
    fallback (a peer that does not encrypt is refused), no kill links in the web UIs."""
    checked = set()
    for folder, docs in _rendered().items():
        for key, doc in workloads(docs).items():
            for c in containers(pod_spec(doc)):
                if not is_spark_member(c):
                    continue
                variables = env(c)
                assert variables.get("SPARK_NETWORK_CRYPTO") == "true", f"{folder} {key}"
                assert variables.get("SPARK_AUTHENTICATE", "true") == "true", f"{folder} {key}"
                literal = {k: v for k, v in variables.items() if isinstance(v, str)}
                workdir = tmp_path / f"{folder}-{key}-{c['name']}".replace("/", "_")
                proc = run_entrypoint(workdir, c["args"], {**literal, "SPARK_RPC_SECRET": "s"})
                assert proc.returncode == 0, proc.stderr
                settings = spark_settings(proc.stdout)
                assert settings["spark.authenticate"] == "true", f"{folder} {key}"
                assert settings["spark.network.crypto.enabled"] == "true", f"{folder} {key}"
                assert settings["spark.network.crypto.saslFallback"] == "false"
                assert settings["spark.ui.killEnabled"] == "false"
                checked.add(key)
    assert checked == {
        "deployment/spark-master",
        "deployment/spark-worker",
        "deployment/spark-history",
        "job/bench-driver",
    }


def test_the_gpu_job_asks_for_exactly_one_gpu():
    job = DOCS["job/gpu-bench"]
    spec = pod_spec(job)
    (trainer,) = spec["containers"]
    assert trainer["image"] == GPU_IMAGE
    assert trainer["args"][0] == "bench"
    assert trainer["args"][trainer["args"].index("--device") + 1] == "cuda"
    assert int(trainer["resources"]["limits"]["nvidia.com/gpu"]) == 1
    assert int(trainer["resources"]["requests"].get("nvidia.com/gpu", 1)) == 1
    assert spec["restartPolicy"] == "Never"
    # only the trainer holds the GPU
    for key, doc in workloads().items():
        for c in containers(pod_spec(doc)):
            if c is not trainer:
                assert "nvidia.com/gpu" not in str(c.get("resources")), f"{key}/{c['name']}"


# --- the network policy -------------------------------------------------------------------


def _selects(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels is understood here"
    return selector.get("matchLabels", {}).items() <= labels.items()


def test_the_network_policy_admits_cluster_members_only():
    (policy,) = [d for d in DOCS.values() if d["kind"] == "NetworkPolicy"]
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": MEMBERS}
    assert {"Ingress", "Egress"} <= set(spec["policyTypes"])
    for key, doc in workloads().items():  # every pod of ours is covered…
        assert _selects(spec["podSelector"], pod_labels(doc)), key
    assert not _selects(spec["podSelector"], {"app.kubernetes.io/name": "spark"})
    assert spec["ingress"], "an empty ingress list would admit nobody, not even members"
    for rule in spec["ingress"]:  # …and nothing but members gets in
        assert rule.get("from"), "a rule without `from` admits every source"
        for peer in rule["from"]:
            assert set(peer) == {"podSelector"}, "no namespaceSelector, no ipBlock"
            assert peer["podSelector"] == {"matchLabels": MEMBERS}
        # random Spark/gloo ports: all TCP between members
        assert rule["ports"] == [{"protocol": "TCP"}]
    for rule in spec["egress"]:
        if rule.get("to"):
            assert all(peer == {"podSelector": {"matchLabels": MEMBERS}} for peer in rule["to"])
        else:
            assert {p.get("port") for p in rule["ports"]} == {53}, "only DNS leaves the cluster"


# --- no secret in the repository ----------------------------------------------------------

SECRET_PATTERNS = [
    (re.compile(r"spark\.authenticate\.secret"), "a Spark secret setting"),
    (re.compile(r"\b[0-9a-fA-F]{32,}\b"), "a long hex token"),
    (re.compile(r"[A-Za-z0-9+/]{40,}={0,2}"), "a long base64 token"),
    (re.compile(r"(?m)^\s*(data|stringData):"), "a Secret's data"),
    # an env var named …SECRET… with a value (…SECRET_FILE, a path, is fine)
    (re.compile(r"name:\s*\w*SECRET(?!\w*_FILE\b)\w*\s*\n\s*value:"), "a literal secret in env"),
]


def secret_findings(root: Path) -> list[str]:
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.name == SECRET_FILE.name or "__pycache__" in path.parts:
            continue  # the generated secret (ignored by git) is the one allowed place
        text = path.read_text(errors="replace")
        for pattern, what in SECRET_PATTERNS:
            if pattern.search(text):
                found.append(f"{path.relative_to(root)}: {what}")
    return found


def test_no_secret_value_lies_in_k8s():
    assert secret_findings(K8S) == []


def test_the_secret_scan_finds_planted_secrets(tmp_path):
    (tmp_path / "s.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n"
        f"data:\n  spark_secret: {base64.b64encode(b'0123456789abcdef' * 4).decode()}\n"
    )
    (tmp_path / "env.yaml").write_text(
        "env:\n  - name: SPARK_RPC_SECRET\n    value: 3f1e8a7c9b2d4e6f8a0b1c2d3e4f5a6b\n"
    )
    found = secret_findings(tmp_path)
    assert "s.yaml: a Secret's data" in found and "s.yaml: a long base64 token" in found
    assert "env.yaml: a long hex token" in found
    assert "env.yaml: a literal secret in env" in found


def test_the_generated_secret_file_is_ignored_by_git():
    assert "/k8s/base/spark-secret.txt" in (REPO / ".gitignore").read_text().splitlines()
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("no git checkout")
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(SECRET_FILE)], cwd=REPO, capture_output=True
    )
    assert ignored.returncode == 0, "k8s/base/spark-secret.txt is not ignored by git"
    tracked = subprocess.run(
        ["git", "ls-files", "--", "k8s"], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    assert "k8s/base/spark-secret.txt" not in tracked


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_k8s_secret_writes_a_private_random_secret(tmp_path):
    target = tmp_path / "spark-secret.txt"
    proc = subprocess.run(
        [
            "make",
            "-s",
            "-f",
            str(K8S / "k8s.mk"),
            "k8s-secret",
            f"K8S_SECRET={target}",
            f"PYTHON={sys.executable}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert target.stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}", target.read_text())


# --- what the overlays render ------------------------------------------------------------


@needs_kustomize
def test_the_local_overlay_is_small_and_runs_the_driver():
    docs = build("overlays/local")
    worker = docs["deployment/spark-worker"]
    assert worker["spec"]["replicas"] == 2
    (c,) = pod_spec(worker)["containers"]
    assert env(c)["SPARK_WORKER_CORES"] == "1"
    assert quantity(c["resources"]["limits"]["memory"]) <= 4 * 2**30
    assert env(c)["SPARK_MASTER_URL"] == "spark://spark-master:7077"  # the patch kept the rest
    assert "job/bench-driver" in docs and "job/gpu-bench" not in docs
    settings = docs["configmap/bench-settings"]["data"]
    assert max(int(n) for n in settings["BENCH_NODES"].split(",")) <= 2  # what the Job waits for
    assert docs["persistentvolumeclaim/higgsbench-shared"]["spec"]["accessModes"] == [
        "ReadWriteOnce"
    ]
    secret = docs["secret/spark-rpc-secret"]
    assert base64.b64decode(secret["data"]["spark_secret"]).decode() == validator.PLACEHOLDER_SECRET


@needs_kustomize
def test_the_gpu_overlay_adds_the_gpu_job_to_the_cluster():
    docs = build("overlays/gpu")
    assert {"deployment/spark-master", "deployment/spark-worker", "job/gpu-bench"} <= set(docs)
    (trainer,) = pod_spec(docs["job/gpu-bench"])["containers"]
    assert int(trainer["resources"]["limits"]["nvidia.com/gpu"]) == 1
    assert docs["persistentvolumeclaim/higgsbench-shared"]["spec"]["accessModes"] == [
        "ReadWriteMany"
    ]
    _assert_in_the_namespace(docs)


def _assert_in_the_namespace(docs: dict[str, dict]) -> None:
    for key, doc in docs.items():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "higgsbench", key


def _driver_args(docs: dict[str, dict]) -> list[str]:
    (driver,) = pod_spec(docs["job/bench-driver"])["containers"]
    return driver["args"]


@needs_kustomize
def test_the_tracking_overlay_logs_the_sweep_to_its_own_mlflow_server():
    """overlays/local-tracking: overlays/local plus components/tracking, the MLflow server of
    the compose service mlflow, reached inside the cluster only."""
    plain, tracked = build("overlays/local"), build("overlays/local-tracking")
    assert set(tracked) - set(plain) == {
        "deployment/mlflow",
        "service/mlflow",
        "persistentvolumeclaim/mlflow-store",
    }
    assert "--track" not in _driver_args(plain)
    assert _driver_args(tracked) == [*_driver_args(plain), "--track", "http://mlflow:5000"]
    service = tracked["service/mlflow"]["spec"]
    assert service.get("type", "ClusterIP") == "ClusterIP", "no authentication: never exposed"
    assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [(5000, "http")]
    server = tracked["deployment/mlflow"]
    assert server["spec"]["replicas"] == 1 and server["spec"]["strategy"]["type"] == "Recreate"
    assert service["selector"].items() <= pod_labels(server).items()
    (c,) = pod_spec(server)["containers"]
    assert c["image"] == TRACKING_IMAGE and "args" not in c  # the image's own server command
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert _port(c, "http") == 5000
    allowed = env(c)["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert {"mlflow:*", "127.0.0.1:*", "localhost:*"} <= set(allowed)
    store = [v for v in pod_spec(server)["volumes"] if v["name"] == "store"]
    assert store[0]["persistentVolumeClaim"]["claimName"] == "mlflow-store"
    _assert_in_the_namespace(tracked)


def test_patches_change_only_what_they_mean_to():
    """The local overlay's worker patch names a container and env entries that exist in the base
    (a misspelt name would add a second container instead of changing the first)."""
    patch = yaml.safe_load((K8S / "overlays" / "local" / "small-workers.yaml").read_text())
    base = copy.deepcopy(DOCS["deployment/spark-worker"])
    base_c = {c["name"]: c for c in pod_spec(base)["containers"]}
    for c in pod_spec(patch)["containers"]:
        assert c["name"] in base_c
        assert {e["name"] for e in c.get("env", [])} <= set(env(base_c[c["name"]]))
    base_volumes = {v["name"] for v in pod_spec(base)["volumes"]}
    assert {v["name"] for v in pod_spec(patch).get("volumes", [])} <= base_volumes
