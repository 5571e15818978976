"""The deployment path on real VMs: `make cluster-up`, `make cluster-status` and `make
cluster-down` as a user types them, against the test cloud with a data plane (`make
test-cloud`).

The cloud is tests/test_openstack.py's control plane plus Nova's libvirt driver under QEMU's
software emulation, Neutron's L3 and DHCP agents and a proxy for the guests (tests/openstack/vms/),
in one container given the capabilities libvirt and network namespaces need. The guests boot a
Debian 12 image built here from Debian's packages (tests/openstack/guest-image.sh: debootstrap,
the cloud kernel, cloud-init, sshd, Docker), kernel and initrd as Glance images.

This machine reaches the floating IPs (198.18.0.0/24, EXTERNAL_CIDR) through a route to the
container that the test adds and removes; it refuses to run when such a route exists already.
The nodes reach Debian's mirror through the proxy on the external network's gateway, given to
the kit as higgsbench_http_proxy, as a site without direct egress would.

Guests under emulation are slow (BUILD-ENVIRONMENT.md: 11-17x the host; SSH 4-6 minutes after
create), so the test prints what each step took. Run as root (debootstrap, the route).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from tests.conftest import REPO
from tests.helpers import docker, tool_env
from tests.test_openstack import (
    CLUSTER,
    CONTAINER,
    EXTERNAL_CIDR,
    LABEL,
    MEMBER,
    assert_empty,
    build_control_plane_image,
    connect,
    fresh_control_plane_files,
    require_openstacksdk_and_docker,
    stock_the_cloud,
    wait_until_ready,
)

pytestmark = [
    pytest.mark.cloud_vm,
    pytest.mark.timeout(5400),
    pytest.mark.filterwarnings("ignore::openstack.warnings._RemovedInSDKWarning"),
    pytest.mark.filterwarnings("ignore:The openstack.version module is deprecated"),
]

VMS_DIR = REPO / "tests" / "openstack" / "vms"
GUEST_SCRIPT = REPO / "tests" / "openstack" / "guest-image.sh"
GUEST_CACHE = REPO / "build" / "test-cloud"
GATEWAY = "198.18.0.1"  # the external network's gateway: the container (start-vms.sh)
PROXY = f"http://{GATEWAY}:8888"
IMAGE = "debian-12-test"
# Sized for a 2-core, 24 GB machine: the guests' vCPUs share its two cores
FLAVORS = {"v1.master": (2, 2048), "v1.worker": (2, 3072)}
REQUIRE = os.environ.get("HIGGSBENCH_REQUIRE_CLOUD") == "1"
STEPS: dict[str, float] = {}


def _skip_or_fail(reason: str):
    if REQUIRE:
        pytest.fail(f"HIGGSBENCH_REQUIRE_CLOUD=1 but {reason}")
    pytest.skip(f"{reason} (set HIGGSBENCH_REQUIRE_CLOUD=1 to fail instead)")


class Step:
    """Times a step and prints it: the note and the README quote these."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.started = time.monotonic()
        print(f"step: {self.name} …", flush=True)

    def __exit__(self, *exc):
        STEPS[self.name] = round(time.monotonic() - self.started)
        print(f"step: {self.name}: {STEPS[self.name]} s", flush=True)


def guest_image() -> Path:
    """kernel, initrd and root file system, built once per version of guest-image.sh."""
    digest = hashlib.sha256(GUEST_SCRIPT.read_bytes()).hexdigest()[:12]
    out = GUEST_CACHE / f"guest-{digest}"
    if not (out / "root.img").exists():
        if os.geteuid() != 0:
            _skip_or_fail("building the guest image needs root (debootstrap)")
        if shutil.which("debootstrap") is None:
            _skip_or_fail("debootstrap is missing (apt-get install debootstrap)")
        with Step("guest image (debootstrap)"):
            subprocess.run(["bash", str(GUEST_SCRIPT), str(out)], check=True, timeout=1800)
    return out


def vms_image() -> str:
    base = build_control_plane_image()
    digest = hashlib.sha256(base.encode())
    for path in sorted(p for p in VMS_DIR.rglob("*") if p.is_file()):
        digest.update(path.relative_to(VMS_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    tag = f"higgsbench-openstack-vms:{digest.hexdigest()[:12]}"
    if docker("image", "inspect", tag, check=False).returncode:
        with Step("control plane image with libvirt"):
            docker(
                "build", "-q", "-t", tag, "--build-arg", f"BASE={base}", VMS_DIR,
                timeout=1800, env={**os.environ, "DOCKER_BUILDKIT": "0"},
            )  # fmt: skip
    return tag


def _route_to(container_ip: str):
    """The route to the floating IPs through the container. Refused when this machine routes
    any of those addresses elsewhere already, or reaches its package mirror among them (the
    route would take the guests' only way to it)."""
    cidr = ipaddress.ip_network(EXTERNAL_CIDR)
    routes = subprocess.run(
        ["ip", "-4", "route", "show"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for route in routes:
        target = route.split()[0]
        if target != "default" and ipaddress.ip_network(target, strict=False).overlaps(cidr):
            pytest.fail(f"this machine routes {target} already ({route}): not ours to shadow")
    for host in ("deb.debian.org", "security.debian.org"):
        try:
            address = ipaddress.ip_address(socket.gethostbyname(host))
        except OSError:
            continue
        if address in cidr:
            pytest.fail(f"{host} is {address}, inside the test cloud's {cidr}: pick another range")
    subprocess.run(["ip", "route", "add", EXTERNAL_CIDR, "via", container_ip], check=True)


def _remove_route(container_ip: str) -> None:
    subprocess.run(
        ["ip", "route", "del", EXTERNAL_CIDR, "via", container_ip],
        capture_output=True, check=False,
    )  # fmt: skip


def _keypair(root: Path) -> Path:
    key = Ed25519PrivateKey.generate()
    private = root / "id_ed25519"
    private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()))
    private.chmod(0o600)
    public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    (root / "id_ed25519.pub").write_bytes(public + b" higgsbench-test-cloud\n")
    return private


def _upload_guest(conn, guest: Path) -> None:
    kernel = conn.create_image(
        f"{IMAGE}-kernel", filename=str(guest / "vmlinuz"), disk_format="aki",
        container_format="aki", visibility="public", wait=True,
    )  # fmt: skip
    ramdisk = conn.create_image(
        f"{IMAGE}-initrd", filename=str(guest / "initrd.img"), disk_format="ari",
        container_format="ari", visibility="public", wait=True,
    )  # fmt: skip
    conn.create_image(
        IMAGE, filename=str(guest / "root.img"), disk_format="raw", container_format="bare",
        visibility="public", wait=True, timeout=900,
        meta={
            "kernel_id": kernel.id,
            "ramdisk_id": ramdisk.id,
            "os_command_line": "root=/dev/vda rw console=ttyS0",
        },
    )  # fmt: skip
    for name, (vcpus, ram) in FLAVORS.items():
        conn.compute.create_flavor(name=name, vcpus=vcpus, ram=ram, disk=10, is_public=True)


class VMCloud:
    def __init__(self, root: Path, clouds: Path, private_key: Path):
        self.root, self.clouds, self.private_key = root, clouds, private_key
        self.inventory = root / "inventory.ini"
        settings = {
            "openstack_image": IMAGE,
            "openstack_ssh_user": "debian",
            "openstack_master_flavor": "v1.master",
            "openstack_worker_flavor": "v1.worker",
            "openstack_worker_count": 1,
            "openstack_public_key_file": str(root / "id_ed25519.pub"),
            "openstack_private_key_file": str(private_key),
            "openstack_timeout": 1200,
            "openstack_worker_reserved_memory_mb": 2048,
            "higgsbench_state_dir": str(root / "state"),
            "higgsbench_http_proxy": PROXY,
            "common_cloud_init_timeout": 1200,
        }
        (root / "settings.yml").write_text(yaml.safe_dump(settings))

    def conn(self, admin: bool = False):
        return connect(self.clouds, "higgsbench-admin" if admin else MEMBER)

    def make(self, target: str, *settings: str, check: bool = True) -> subprocess.CompletedProcess:
        """`make TARGET` in the repository, as a user types it, output kept and shown."""
        proc = subprocess.run(
            ["make", target, f"CLOUD={MEMBER}", f"CLUSTER={CLUSTER}", f"ADMIN_CIDR={GATEWAY}/32",
             f"INVENTORY={self.inventory}", f"ANSIBLE_ARGS=-e @{self.root / 'settings.yml'}",
             *settings],
            cwd=REPO, capture_output=True, text=True, timeout=5400,
            env=tool_env(OS_CLIENT_CONFIG_FILE=str(self.clouds), ANSIBLE_NOCOLOR="1",
                         ANSIBLE_FORCE_COLOR="0"),
        )  # fmt: skip
        (self.root / f"make-{target}.log").write_text(proc.stdout + proc.stderr)
        if check and proc.returncode:
            self.diagnose()
            raise AssertionError(f"make {target} failed:\n{(proc.stdout + proc.stderr)[-8000:]}")
        return proc

    def diagnose(self) -> None:
        """What the guests said on their consoles and what SSH says, kept beside the logs."""
        conn = self.conn(admin=True)
        for server in conn.compute.servers(all_projects=True):
            console = conn.compute.get_server_console_output(server, length=200)
            (self.root / f"console-{server.name}.log").write_text(console.get("output", ""))
        if self.inventory.exists():
            master = re.search(r"ansible_host=(\S+)", self.inventory.read_text())
            with open(self.root / "ssh-master.log", "w") as log:
                subprocess.run(
                    ["timeout", "60", "ssh", "-vv", "-i", str(self.private_key),
                     "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o",
                     f"UserKnownHostsFile={self.root / 'state' / 'known_hosts'}",
                     f"debian@{master.group(1)}", "id; cloud-init status --long"],
                    stdout=log, stderr=subprocess.STDOUT, check=False,
                )  # fmt: skip
        print(f"diagnostics in {self.root}", flush=True)


@pytest.fixture(scope="module")
def vm_cloud(tmp_path_factory):
    require_openstacksdk_and_docker(_skip_or_fail)
    guest = guest_image()
    tag = vms_image()
    ports, root, clouds = fresh_control_plane_files(tmp_path_factory, "cloud")
    private_key = _keypair(root)
    docker(
        "run", "-d", "--name", CONTAINER, "--label", LABEL, "--hostname", "openstack",
        # libvirt, QEMU and the agents' network namespaces; SYS_RESOURCE is not ours to give
        "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
        "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
        "--device", "/dev/net/tun",
        *[a for s, p in ports.items() for a in ("-e", f"{s}_PORT={p}")],
        *[a for p in ports.values() for a in ("-p", f"127.0.0.1:{p}:{p}")],
        tag,
    )  # fmt: skip
    container_ip = docker(
        "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", CONTAINER
    ).stdout.strip()
    ipaddress.ip_address(container_ip)
    routed = False
    try:
        with Step("control plane start to ready"):
            wait_until_ready(clouds, timeout=600)
        with Step("project, flavors, guest image, external network"):
            stock_the_cloud(clouds)
            _upload_guest(connect(clouds, "higgsbench-admin"), guest)
        _route_to(container_ip)
        routed = True
        yield VMCloud(root, clouds, private_key)
    finally:
        if routed:
            _remove_route(container_ip)
        logs = docker("exec", CONTAINER, "sh", "-c", "tail -n 40 /var/log/nova/*.log", check=False)
        (root / "nova.log").write_text(logs.stdout + logs.stderr)
        docker("rm", "-f", CONTAINER, check=False)
        print("steps:", json.dumps(STEPS))


def test_cluster_up_on_real_vms_then_status_then_down(vm_cloud):
    """A master and a worker boot, answer SSH through the master's floating IP (the worker
    through the master), their host keys are recorded and checked, and the common and docker
    roles configure them; cluster-status reports both; cluster-down leaves nothing."""
    with Step("make cluster-up TAGS=common,docker (provision, SSH, host keys, roles)"):
        up = vm_cloud.make("cluster-up", "TAGS=common,docker")
    # both nodes' keys recorded: the master's scanned from here, the worker's from the master
    assert "record the cluster's SSH host keys" in up.stdout
    assert re.search(r"changed: \[localhost\] => \(item=198\.18\.0\.\d+ ssh-ed25519\)", up.stdout)
    assert re.search(r"changed: \[localhost\] => \(item=10\.42\.0\.\d+ ssh-ed25519\)", up.stdout)
    known = (vm_cloud.root / "state" / "known_hosts").read_text()
    assert known.count("ssh-ed25519") >= 2, known
    recap = {
        host: dict(re.findall(r"(\w+)=(\d+)", rest))
        for host, rest in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", up.stdout, re.M)
    }
    assert all(int(r["failed"]) == 0 and int(r["unreachable"]) == 0 for r in recap.values())

    with Step("make cluster-up again (changed=0)"):
        again = vm_cloud.make("cluster-up", "TAGS=common,docker")
    for host, rest in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", again.stdout, re.M):
        assert re.search(r"changed=0\b", rest), (host, rest)

    with Step("make cluster-status"):
        status = vm_cloud.make("cluster-status", check=False)
    text = " ".join(status.stdout.split())
    for node in (f"{CLUSTER}-master", f"{CLUSTER}-worker-1"):
        assert re.search(rf"{node}.*up: ", text), text[-4000:]

    with Step("make cluster-down"):
        vm_cloud.make("cluster-down")
    assert_empty(vm_cloud.conn())
