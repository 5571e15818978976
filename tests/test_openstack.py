"""provision.yml and teardown.yml for real, against a real OpenStack API (`make test-openstack`).

No cloud can be reached from CI, so the session fixture brings one up: Keystone, Glance,
Placement, Nova with its fake virt driver (servers turn ACTIVE, nothing boots) and Neutron (ML2
+ Linux bridge agent), with MariaDB and RabbitMQ, from Debian bookworm's packages (OpenStack
Zed), in one container (tests/openstack/: Dockerfile, start.sh, the configuration). It runs
unprivileged with only NET_ADMIN (the bridge agent makes bridges in the container's own network
namespace, never the host's: that is why it is not on the host's network) and publishes its five
API ports on 127.0.0.1 only, each under the same number inside and out, so the catalog's URLs
are right for the services and for this machine alike.

The fixture builds the image when missing (Docker caches it), starts the container, waits until
every service answers, then, as the cloud's admin, makes what a real cloud would already have:
a project and a member user (the playbooks run as that plain member, as a user would), the
project's quota, the flavors, image and external network named in ansible/group_vars/all.yml. It
yields a clouds.yaml and always removes the container.

In order, as a user would meet them:
  1. a quota too small, a flavor that does not exist, images for the wrong architecture or
     distribution: provision.yml's preflight refuses before creating anything, with one message
     listing every problem (an IPv6-only network and a missing boot image: the same)
  2. provision.yml: key pair, network, subnet, router, security groups, 7 servers ACTIVE (master,
     5 workers, GPU node) and the master's floating IP; the inventory under the given path
  3. provision.yml again: changed=0 and the same resources, by id
  4. teardown.yml: the project is empty again (and a second teardown changes nothing)
  5. the other network models: an existing network (no network, subnet or router made), and a
     provider network (servers on it directly, no router, no floating IP)
There is no data plane: ports stay DOWN, no SSH, floating IPs never turn ACTIVE, so the runs set
openstack_wait_for_ssh=false.

Skipped when no Docker engine (or no Ansible) is found, unless HIGGSBENCH_REQUIRE_OPENSTACK=1
(CI), which turns the skip into a failure.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.conftest import REPO
from tests.helpers import DOCKER, docker, free_ports, run_checked, tool_env, venv_tool

pytestmark = [
    pytest.mark.openstack,
    # the first test also waits for the image build (about 5 minutes from nothing on 2 cores)
    pytest.mark.timeout(1800),
    # openstacksdk 4.14 warns about its own internals on nearly every call
    pytest.mark.filterwarnings("ignore::openstack.warnings._RemovedInSDKWarning"),
    pytest.mark.filterwarnings("ignore:The openstack.version module is deprecated"),
]

ANSIBLE = REPO / "ansible"
IMAGE_DIR = REPO / "tests" / "openstack"
REQUIRE = os.environ.get("HIGGSBENCH_REQUIRE_OPENSTACK") == "1"
CONTAINER = "hbt-openstack"
LABEL = "higgsbench.test=openstack"
PASSWORD = "secret"  # every account of the throwaway cloud (start.sh); it listens on loopback
PROJECT = "higgsbench"  # the user's project, and its member user
MEMBER, ADMIN = "higgsbench", "higgsbench-admin"  # clouds.yaml entries
OTHER = "higgsbench-other"  # a second member of the same project, and its clouds.yaml entry
SERVICES = ("KEYSTONE", "GLANCE", "PLACEMENT", "NOVA", "NEUTRON")
SETTINGS = yaml.safe_load((ANSIBLE / "group_vars" / "all.yml").read_text())
# as `make … CLUSTER=higgsbench-ci` (the default, higgsbench-<login>, is tested apart)
CLUSTER = "higgsbench-ci"
# provision's preflight looks for the images it will ship on this machine: the Spark image of
# `make images`, which also stands in for the GPU image (several GB, not built for these tests)
SPARK_IMAGE = SETTINGS["higgsbench_spark_image"].replace(
    "{{ higgsbench_version }}", SETTINGS["higgsbench_version"]
)
# a boot image of the other architecture than this machine's (Glance's `architecture`)
OTHER_ARCH = {"amd64": "aarch64", "arm64": "x86_64"}
FOREIGN_IMAGE = "debian-12-foreign-arch"
# a Debian boot image for the GPU node (Glance's `os_distro`): gpu_node installs drivers on Ubuntu
DEBIAN_GPU_IMAGE = "debian-12-gpu"
# The thesis' cluster under the defaults' names: master 2 vCPU / 4 GB, workers 8 vCPU / 16 GB,
# a GPU node (8 vCPU / 32 GB here; the fake driver has no GPU to pass through).
FLAVORS = {
    SETTINGS["openstack_master_flavor"]: (2, 4096),
    SETTINGS["openstack_worker_flavor"]: (8, 16384),
    SETTINGS["openstack_gpu_flavor"]: (8, 32768),
}
# Enough for that cluster (50 vCPUs, 116 GB) and no more than a careful admin would give.
QUOTA = {"instances": 10, "cores": 64, "ram": 131072, "server_group_members": 10}
# the "public" addresses of the test cloud: RFC 2544's benchmarking range, which no service this
# machine reaches lives in (TEST-NET-3 does: this machine's package mirrors answer there)
EXTERNAL_CIDR = "198.18.0.0/24"
TIMINGS: dict[str, float] = {}


def _skip_or_fail(reason: str):
    if REQUIRE:
        pytest.fail(f"HIGGSBENCH_REQUIRE_OPENSTACK=1 but {reason}")
    pytest.skip(f"{reason} (set HIGGSBENCH_REQUIRE_OPENSTACK=1 to fail instead)")


def _run(cmd, *, timeout=900, **kw) -> subprocess.CompletedProcess:
    return run_checked(cmd, timeout=timeout, **kw)


def _timed(name: str, started: float) -> None:
    TIMINGS[name] = round(time.monotonic() - started, 1)
    print(f"timing: {name} {TIMINGS[name]} s")


# What the image is built from (its Dockerfile copies these): vms/ and guest-image.sh are the
# data plane's (tests/test_cloud_vms.py) and leave this image as it is.
IMAGE_INPUTS = ("Dockerfile", "catalog.py", "start.sh", "etc")


def image_tag() -> str:
    """The image's tag: a hash of everything it is built from, so a change rebuilds it."""
    digest = hashlib.sha256()
    paths = [IMAGE_DIR / name for name in IMAGE_INPUTS]
    files = [p for p in paths if p.is_file()] + [f for p in paths for f in p.rglob("*")]
    for path in sorted(f for f in files if f.is_file() and "__pycache__" not in f.parts):
        digest.update(path.relative_to(IMAGE_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return f"higgsbench-openstack-test:{digest.hexdigest()[:12]}"


def build_control_plane_image() -> str:
    """The control plane's image, built when missing (Docker caches it); its tag."""
    tag = image_tag()
    if docker("image", "inspect", tag, check=False).returncode == 0:
        return tag
    started = time.monotonic()
    docker(
        "build", "-q", "-t", tag, IMAGE_DIR,
        timeout=1800, env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )  # fmt: skip
    _timed("image build", started)
    # the images of earlier versions of tests/openstack/ (2 GB each) are of no more use
    repo = tag.partition(":")[0]
    tags = docker("images", repo, "--format", "{{.Tag}}").stdout.split()
    old = [f"{repo}:{t}" for t in tags if f"{repo}:{t}" != tag]
    if old:
        docker("rmi", *old, check=False)
    return tag


def clouds_yaml(path: Path, keystone_port: int) -> Path:
    def entry(user: str, project: str) -> dict:
        return {
            "auth": {
                "auth_url": f"http://127.0.0.1:{keystone_port}/v3",
                "username": user,
                "password": PASSWORD,
                "project_name": project,
                "user_domain_name": "Default",
                "project_domain_name": "Default",
            },
            "region_name": "RegionOne",
            "identity_api_version": 3,
            "interface": "public",
        }

    path.write_text(
        yaml.safe_dump(
            {
                "clouds": {
                    MEMBER: entry(PROJECT, PROJECT),
                    OTHER: entry(OTHER, PROJECT),
                    ADMIN: entry("admin", "admin"),
                }
            }
        )
    )
    return path


def connect(clouds: Path, name: str):
    """A connection to the cloud NAME of the file CLOUDS (the process's environment untouched)."""
    from openstack import config, connection

    region = config.OpenStackConfig(config_files=[str(clouds)]).get_one(cloud=name)
    return connection.Connection(config=region)


def wait_until_ready(clouds: Path, timeout: float = 300) -> None:
    """Every API answers, nova-compute is up and mapped to the cell (its hypervisor is listed)
    with its resource provider in Placement, and the bridge agent is alive (or ports cannot
    bind and servers go to ERROR)."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        state = docker("inspect", "-f", "{{.State.Running}}", CONTAINER, check=False).stdout.strip()
        if state != "true":
            break
        try:
            conn = connect(clouds, ADMIN)
            services = {s.binary: s.state for s in conn.compute.services()}
            hypervisors = [h.name for h in conn.compute.hypervisors()]
            providers = list(conn.placement.resource_providers())
            agents = [a for a in conn.network.agents() if a.is_alive]
            list(conn.image.images())
            if (
                services.get("nova-compute") == "up"
                and hypervisors
                and providers
                and agents
                and all(v == "up" for v in services.values())
            ):
                return
            last = f"services {services}, hypervisors {hypervisors}, agents {len(agents)}"
        except Exception as exc:  # any of them still starting
            last = repr(exc)
        time.sleep(2)
    logs = docker("logs", "--tail", "80", CONTAINER, check=False)
    raise AssertionError(f"the control plane did not come up: {last}\n{logs.stdout}{logs.stderr}")


def stock_the_cloud(clouds: Path) -> None:
    """What a real cloud has before a user comes: their project and account, its quota, the
    flavors, a boot image and an external network, made by the cloud's admin."""
    conn = connect(clouds, ADMIN)
    identity = conn.identity
    project = identity.create_project(name=PROJECT, domain_id="default")
    for name in (MEMBER, OTHER):
        user = identity.create_user(name=name, password=PASSWORD, domain_id="default")
        identity.assign_project_role_to_user(project, user, identity.find_role("member"))
    conn.set_compute_quotas(project.id, **QUOTA)
    for name, (vcpus, ram) in FLAVORS.items():
        conn.compute.create_flavor(name=name, vcpus=vcpus, ram=ram, disk=20, is_public=True)
    # any small file will do: the fake driver never reads it
    here = docker("image", "inspect", "-f", "{{.Architecture}}", SPARK_IMAGE).stdout.strip()
    for name, properties in (
        (SETTINGS["openstack_image"], {}),
        (FOREIGN_IMAGE, {"architecture": OTHER_ARCH[here]}),
        (DEBIAN_GPU_IMAGE, {"os_distro": "debian"}),
    ):
        conn.create_image(
            name,
            data=b"\0" * 1024 * 1024,
            disk_format="raw",
            container_format="bare",
            visibility="public",
            wait=True,
            **properties,
        )
    external = conn.network.create_network(
        name=SETTINGS["openstack_external_network"],
        is_router_external=True,
        provider_network_type="flat",
        provider_physical_network="external",
    )
    conn.network.create_subnet(
        network_id=external.id,
        name=f"{external.name}-subnet",
        ip_version=4,
        cidr=EXTERNAL_CIDR,
        gateway_ip="198.18.0.1",
        allocation_pools=[{"start": "198.18.0.10", "end": "198.18.0.200"}],
        is_dhcp_enabled=False,
    )


@dataclass
class Cloud:
    clouds: Path
    root: Path
    key: Path
    tools: dict[str, str]
    plays: list[str] = field(default_factory=list)

    def conn(self, admin: bool = False):
        return connect(self.clouds, ADMIN if admin else MEMBER)

    def playbook(
        self,
        name: str,
        *extra: str,
        check: bool = True,
        inventory: Path | None = None,
        user: str = MEMBER,
        cluster: str | None = CLUSTER,
        login: str | None = None,
    ):
        """ansible-playbook NAME as `make cluster-up/-down CLUSTER=cluster` runs it, as the
        project's member USER (clouds.yaml entry), logged in here as LOGIN ($USER; cluster None:
        the default name, higgsbench-<login>). Ansible's async jobs on this machine need a
        login that exists: only playbooks without them take another."""
        inventory = inventory or self.root / "inventory.ini"
        named = ["-e", f"higgsbench_cluster_name={cluster}"] if cluster else []
        started = time.monotonic()
        proc = _run(
            [
                self.tools["ansible-playbook"], "-i", inventory, ANSIBLE / name,
                "-e", f"openstack_cloud={user}", *named,
                "-e", "openstack_admin_cidr=198.51.100.7/32",
                "-e", f"openstack_public_key_file={self.key}",
                "-e", "openstack_wait_for_ssh=false",
                "-e", f"openstack_inventory_file={inventory}",
                "-e", f"higgsbench_state_dir={self.root / 'state'}",
                "-e", "openstack_timeout=300",
                "-e", "openstack_gpu_node=true",  # as `make cluster-up GPU=1`; SMALL turns it off
                "-e", f"higgsbench_gpu_image={SPARK_IMAGE}",
                *extra,
            ],
            env=tool_env(
                ANSIBLE_CONFIG=str(ANSIBLE / "ansible.cfg"),
                OS_CLIENT_CONFIG_FILE=str(self.clouds),
                ANSIBLE_NOCOLOR="1",
                ANSIBLE_FORCE_COLOR="0",
                **({"USER": login} if login else {}),
            ),
            cwd=self.root, check=check, timeout=900,
        )  # fmt: skip
        self.plays.append(f"{name} {' '.join(extra)}: {time.monotonic() - started:.0f} s")
        print(f"timing: {self.plays[-1]}")
        return proc


def require_openstacksdk_and_docker(skip_or_fail) -> None:
    """openstacksdk (the tests read the cloud with it) and a Docker engine, or skip_or_fail."""
    try:
        import openstack  # noqa: F401
    except ImportError:
        skip_or_fail("openstacksdk is not installed (make ansible-tools)")
    if shutil.which(DOCKER) is None or docker("info", check=False, timeout=60).returncode:
        skip_or_fail("no Docker engine")


def fresh_control_plane_files(tmp_path_factory, name: str) -> tuple[dict[str, int], Path, Path]:
    """Free ports for the services, a new directory and its clouds.yaml; a control plane left
    by a session that was killed is removed first."""
    stale = docker("ps", "-aq", "--filter", f"label={LABEL}").stdout.split()
    if stale:
        docker("rm", "-f", *stale)
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    root = tmp_path_factory.mktemp(name)
    return ports, root, clouds_yaml(root / "clouds.yaml", ports["KEYSTONE"])


# module scope: the control plane (about 1.8 GB and its services' timers) is removed as soon as
# this file's tests end, not at the end of the session, where it slowed the timing-sensitive
# tests that run after it
@pytest.fixture(scope="module")
def cloud(tmp_path_factory) -> Cloud:
    tools = {n: venv_tool(n) for n in ("ansible-playbook", "ansible-inventory")}
    if None in tools.values():
        _skip_or_fail("Ansible is not installed (make ansible-tools)")
    require_openstacksdk_and_docker(_skip_or_fail)
    if docker("image", "inspect", SPARK_IMAGE, check=False).returncode:
        _skip_or_fail(f"no {SPARK_IMAGE} (make images): provision's preflight looks for it")
    tag = build_control_plane_image()
    ports, root, clouds = fresh_control_plane_files(tmp_path_factory, "openstack")
    # the key pair's public half (nothing logs in: there is no data plane), made without
    # ssh-keygen, which a fresh CI machine may lack
    key = root / "id_ed25519.pub"
    key.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
        + b" higgsbench-test\n"
    )
    started = time.monotonic()
    docker(
        "run", "-d", "--name", CONTAINER, "--label", LABEL, "--hostname", "openstack",
        # the bridge agent's bridges and VXLAN interfaces, in the container's own namespace
        "--cap-add", "NET_ADMIN",
        *[a for s, p in ports.items() for a in ("-e", f"{s}_PORT={p}")],
        # only this machine can reach the cloud; same port numbers inside and out
        *[a for p in ports.values() for a in ("-p", f"127.0.0.1:{p}:{p}")],
        tag,
    )  # fmt: skip
    try:
        wait_until_ready(clouds)
        _timed("control plane start to ready", started)
        started = time.monotonic()
        stock_the_cloud(clouds)
        _timed("project, quota, flavors, image, external network", started)
        yield Cloud(clouds=clouds, root=root, key=key, tools=tools)
    finally:
        started = time.monotonic()
        docker("rm", "-f", CONTAINER, check=False)
        _timed("control plane removed", started)
        print("timings:", json.dumps(TIMINGS))


# --- what the project holds --------------------------------------------------------------------


def inventory_of(conn) -> dict[str, dict[str, str]]:
    """Everything of the project that provision.yml could make: {kind: {name: id}}."""
    project = conn.current_project_id
    return {
        "servers": {s.name: s.id for s in conn.compute.servers()},
        "keypairs": {k.name: k.id for k in conn.compute.keypairs()},
        "networks": {n.name: n.id for n in conn.network.networks(project_id=project)},
        "subnets": {s.name: s.id for s in conn.network.subnets(project_id=project)},
        "routers": {r.name: r.id for r in conn.network.routers(project_id=project)},
        "security_groups": {g.name: g.id for g in conn.network.security_groups(project_id=project)},
        "floating_ips": {f.floating_ip_address: f.id for f in conn.network.ips(project_id=project)},
        "ports": {p.id: p.device_owner for p in conn.network.ports(project_id=project)},
        "server_groups": {g.name: g.id for g in conn.compute.server_groups()},
    }


EMPTY = {
    "servers": {},
    "keypairs": {},
    "networks": {},
    "subnets": {},
    "routers": {},
    "floating_ips": {},
    "ports": {},
    "server_groups": {},
}


def assert_empty(conn) -> None:
    held = inventory_of(conn)
    # Neutron gives every project a "default" security group: it is Neutron's, not ours
    assert set(held.pop("security_groups")) <= {"default"}
    assert held == EMPTY


def recap(out: str) -> dict[str, int]:
    line = next(ln for ln in out.splitlines() if ln.startswith("localhost "))
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def task_outcome(out: str, task: str) -> str:
    """ok, changed, skipping or fatal: how the task named task (its start) ended in out."""
    section = out[out.index(f"TASK [{task}") :]
    section = section[: section.find("\nTASK [", 1) % (len(section) + 1)]
    return re.findall(r"^(ok|changed|skipping|fatal): \[localhost\]", section, re.M)[-1]


def expected_servers() -> dict[str, str]:
    workers = SETTINGS["openstack_worker_count"]
    return {
        f"{CLUSTER}-master": SETTINGS["openstack_master_flavor"],
        **{
            f"{CLUSTER}-worker-{i}": SETTINGS["openstack_worker_flavor"]
            for i in range(1, workers + 1)
        },
        f"{CLUSTER}-gpu": SETTINGS["openstack_gpu_flavor"],
    }


# --- the tests, in order -----------------------------------------------------------------------


def test_preflight_refuses_what_does_not_fit_and_creates_nothing(cloud):
    admin = cloud.conn(admin=True)
    project = admin.identity.find_project(PROJECT)
    small = {"instances": 2, "cores": 4, "ram": 4096, "server_group_members": 3}
    admin.set_compute_quotas(project.id, **small)
    admin.network.update_quota(project.id, floating_ips=0, security_groups=1)
    try:
        proc = cloud.playbook(
            "provision.yml",
            "-e", "openstack_gpu_flavor=g9.nowhere",
            "-e", f"openstack_gpu_image={DEBIAN_GPU_IMAGE}",
            "-e", f"openstack_image={FOREIGN_IMAGE}",
            "-e", "higgsbench_gpu_image=hbt-no-such:0",
            check=False,
        )  # fmt: skip
    finally:
        admin.set_compute_quotas(project.id, **QUOTA)
        admin.network.delete_quota(project.id)  # back to Neutron's defaults
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    message = out[out.index("Preflight refused this run") :]
    print(message[: message.find("PLAY RECAP")])
    # one message, every problem: 7 instances; 2 + 5 x 8 cores and 4096 + 5 x 16384 MB (the GPU
    # node's flavor is missing, so it counts none); one floating IP; two security groups
    # ("default" uses the one allowed)
    for line in (
        "flavor g9.nowhere: not found",
        # a Debian GPU node, for which the gpu_node role has no driver packages
        f"GPU node image {DEBIAN_GPU_IMAGE}: os_distro debian, and the gpu_node role installs"
        " the NVIDIA driver only on Ubuntu",
        "quota instances: needs 7, 2 free (limit 2, in use 0)",
        "quota cores: needs 42, 4 free (limit 4, in use 0)",
        "quota ram: needs 86016 MB, 4096 MB free (limit 4096 MB, in use 0 MB)",
        "quota floatingip: needs 1, 0 free (limit 0, in use 0)",
        "quota security_group: needs 2, 0 free (limit 1, in use 1)",
        # the five workers in one anti-affinity group
        "quota server_group_members: needs 5, 3 free (limit 3, in use 0)",
        # the images it would ship: one missing here, one for the other architecture
        "Docker image hbt-no-such:0: not on this machine (make images-gpu;"
        " or images_mode=registry)",
        f"Docker image {SPARK_IMAGE}: built for",
        f"the master and workers boot {FOREIGN_IMAGE}, an",
    ):
        assert line in message, message[:3000]
    # no floating IP left: the two ways to do without one
    hint = " ".join(message.split())
    assert "No floating IP to spare: openstack_floating_ip=false" in hint, message[:3000]
    assert "openstack_network_mode=provider" in hint
    assert "TASK [Key pair]" not in out
    assert_empty(cloud.conn())


def test_preflight_refuses_a_network_without_ipv4(cloud):
    """An IPv6-only network of the project (existing mode): refused before anything is made,
    not after the servers run without an address Ansible and Spark can use."""
    conn = cloud.conn()
    net = conn.network.create_network(name="v6-net")
    conn.network.create_subnet(
        network_id=net.id, name="v6-subnet", ip_version=6, cidr="2001:db8:42::/64"
    )
    try:
        proc = cloud.playbook(
            "provision.yml", "-e", "openstack_network_mode=existing",
            "-e", "openstack_network=v6-net", "-e", "openstack_image=no-such-image",
            *SMALL, check=False,
        )  # fmt: skip
    finally:
        conn.network.delete_network(net)
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0
    assert "network v6-net (openstack_network): no IPv4 subnet" in out, out[-3000:]
    assert "image no-such-image: not found" in out, out[-3000:]
    assert "TASK [Key pair]" not in out
    assert_empty(conn)


def test_provision_makes_the_cluster(cloud):
    tracked = (REPO / "inventory.ini").read_bytes()
    proc = cloud.playbook("provision.yml")
    assert "Preflight | Everything exists and the quota suffices" in proc.stdout
    conn = cloud.conn()
    held = inventory_of(conn)
    servers = {s.name: s for s in conn.compute.servers(details=True)}
    expected = expected_servers()
    assert set(servers) == set(expected)
    flavors = {f.id: f.name for f in conn.compute.flavors()}
    for name, server in servers.items():
        assert server.status == "ACTIVE", (name, server.status, server.fault)
        assert server.key_name == f"{CLUSTER}-key"
        assert server.metadata["higgsbench_cluster"] == CLUSTER
        assert flavors.get(server.flavor.id, server.flavor.name) == expected[name]
        assert server.image.id == conn.image.find_image(SETTINGS["openstack_image"]).id
        groups = {g["name"] for g in server.security_groups}
        want = {f"{CLUSTER}-ssh"} | ({f"{CLUSTER}-spark"} if not name.endswith("-gpu") else set())
        assert groups == want, name
    assert set(held["keypairs"]) == {f"{CLUSTER}-key"}
    # the workers in a soft anti-affinity group (one fake hypervisor: all on it even so)
    group = conn.compute.get_server_group(held["server_groups"][f"{CLUSTER}-workers"])
    assert group.policy == "soft-anti-affinity"
    workers = sorted(n for n in expected if "-worker-" in n)
    assert sorted(group.member_ids) == sorted(servers[n].id for n in workers)
    assert set(held["networks"]) == {f"{CLUSTER}-net"}
    assert set(held["subnets"]) == {f"{CLUSTER}-subnet"}
    assert set(held["routers"]) == {f"{CLUSTER}-router"}
    assert set(held["security_groups"]) == {"default", f"{CLUSTER}-ssh", f"{CLUSTER}-spark"}
    # the cloud's own DNS (Neutron's DHCP), not public resolvers a site may block
    subnet = conn.network.get_subnet(held["subnets"][f"{CLUSTER}-subnet"])
    assert subnet.dns_nameservers == []
    # egress over IPv4 said outright in both groups
    for group in (f"{CLUSTER}-ssh", f"{CLUSTER}-spark"):
        egress = [
            (r.ether_type, r.protocol, r.remote_ip_prefix)
            for r in conn.network.security_group_rules(
                security_group_id=held["security_groups"][group]
            )
            if r.direction == "egress"
        ]
        assert ("IPv4", None, None) in egress, (group, egress)
    router = conn.network.get_router(held["routers"][f"{CLUSTER}-router"])
    external = conn.network.find_network(SETTINGS["openstack_external_network"])
    assert router.external_gateway_info["network_id"] == external.id
    # SSH from the admin network only, into the ssh group; Spark between members only
    rules = list(
        conn.network.security_group_rules(
            security_group_id=held["security_groups"][f"{CLUSTER}-ssh"]
        )
    )
    ingress = [
        (r.protocol, r.port_range_min, r.remote_ip_prefix)
        for r in rules
        if r.direction == "ingress"
    ]
    assert ("tcp", 22, "198.51.100.7/32") in ingress
    assert all(prefix != "0.0.0.0/0" for _, _, prefix in ingress)
    # one floating IP, the master's
    assert len(held["floating_ips"]) == 1
    fip = conn.network.get_ip(next(iter(held["floating_ips"].values())))
    master_ports = list(conn.network.ports(device_id=servers[f"{CLUSTER}-master"].id))
    assert fip.port_id in {p.id for p in master_ports}
    assert fip.floating_ip_address.startswith("198.18.0.")

    # the inventory went where it was told, the tracked example stayed as it is
    assert (REPO / "inventory.ini").read_bytes() == tracked
    path = cloud.root / "inventory.ini"
    inv = json.loads(
        _run([cloud.tools["ansible-inventory"], "-i", path, "--list"], cwd=REPO,
             env=tool_env(ANSIBLE_CONFIG=str(ANSIBLE / "ansible.cfg"))).stdout
    )  # fmt: skip
    hv = inv["_meta"]["hostvars"]
    assert inv["master"]["hosts"] == [f"{CLUSTER}-master"]
    assert sorted(inv["workers"]["hosts"]) == workers
    assert inv["gpu"]["hosts"] == [f"{CLUSTER}-gpu"]
    assert hv[f"{CLUSTER}-master"]["ansible_host"] == fip.floating_ip_address
    for name in [*workers, f"{CLUSTER}-gpu"]:
        fixed = servers[name].addresses[f"{CLUSTER}-net"][0]["addr"]
        assert hv[name]["ansible_host"] == hv[name]["private_ip"] == fixed
    # Nova's hostId of every server, for cluster.json (one fake hypervisor: the same on all)
    assert {hv[name]["host_id"] for name in servers} == {servers[workers[0]].host_id}
    assert re.fullmatch(r"[0-9a-f]{56}", servers[workers[0]].host_id)
    assert hv[workers[0]]["spark_worker_cores"] == FLAVORS[SETTINGS["openstack_worker_flavor"]][0]
    parser = configparser.ConfigParser(allow_no_value=True, delimiters=(" ",))
    parser.read(path)
    assert {"master", "workers", "gpu"} <= set(parser.sections())


def test_second_provision_changes_nothing(cloud):
    conn = cloud.conn()
    before = inventory_of(conn)
    assert before["servers"], "runs after test_provision_makes_the_cluster"
    proc = cloud.playbook("provision.yml")
    assert recap(proc.stdout)["changed"] == 0, proc.stdout[-6000:]
    assert inventory_of(conn) == before


def test_another_user_of_the_project_neither_adopts_nor_deletes_the_cluster(cloud):
    """A second member of the project: their cluster is named after their login by default, so
    their cluster-down finds nothing of ours; told our cluster's name (CLUSTER=), provision
    refuses to adopt our servers and teardown deletes nothing, each naming the servers and the
    Keystone user who made them. The servers carry that user's id."""
    conn = cloud.conn()
    before = inventory_of(conn)
    assert before["servers"], "runs after test_provision_makes_the_cluster"
    me = conn.current_user_id
    for server in conn.compute.servers():
        assert server.metadata["higgsbench_user"] == me == server.user_id, server.name

    # their default name: higgsbench-<their login>, and nothing of it in the project
    own = cloud.playbook("teardown.yml", user=OTHER, cluster=None, login="Bob.Smith")
    assert recap(own.stdout)["changed"] == 0, own.stdout[-6000:]
    assert "higgsbench-bob-smith" in own.stdout
    assert inventory_of(conn) == before

    master = f"{CLUSTER}-master (made by Keystone user {me}, cluster {CLUSTER})"
    down = cloud.playbook("teardown.yml", user=OTHER, check=False)
    assert down.returncode != 0 and recap(down.stdout)["changed"] == 0
    assert "Nothing was deleted: these servers have the names of cluster" in down.stdout
    assert f"- {master}" in down.stdout, down.stdout[-6000:]
    up = cloud.playbook("provision.yml", user=OTHER, check=False)
    assert up.returncode != 0 and recap(up.stdout)["changed"] == 0
    assert f"- server {master}: not this user's cluster, never adopted" in up.stdout
    assert inventory_of(conn) == before

    # a server of ours without the cluster's metadata is not adopted either
    stray = conn.compute.get_server(before["servers"][f"{CLUSTER}-worker-1"])
    conn.compute.delete_server_metadata(stray, ["higgsbench_cluster"])
    try:
        up = cloud.playbook("provision.yml", check=False)
        assert up.returncode != 0
        assert f"- server {CLUSTER}-worker-1 (made by you, not by higgsbench)" in up.stdout
    finally:
        conn.compute.set_server_metadata(stray, higgsbench_cluster=CLUSTER)
    assert inventory_of(conn) == before


def test_teardown_empties_the_project(cloud):
    proc = cloud.playbook("teardown.yml")
    assert recap(proc.stdout)["failed"] == 0
    assert_empty(cloud.conn())
    # nothing left to do the second time
    proc = cloud.playbook("teardown.yml")
    assert recap(proc.stdout)["changed"] == 0, proc.stdout[-6000:]
    assert_empty(cloud.conn())


def test_a_server_that_fails_to_boot_points_at_cluster_down(cloud):
    """A GPU flavor the cloud cannot place (here: it asks for a vGPU no host has) leaves the GPU
    node in ERROR: provision.yml says which server and how to remove what it made, and
    teardown.yml removes it all, the server in ERROR included."""
    admin = cloud.conn(admin=True)
    flavor = admin.compute.create_flavor(name="g1.nowhere", vcpus=8, ram=32768, disk=20)
    admin.compute.create_flavor_extra_specs(flavor, {"resources:VGPU": "1"})
    proc = cloud.playbook(
        "provision.yml", "-e", "openstack_gpu_flavor=g1.nowhere", "-e", "openstack_worker_count=1",
        check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    message = out[out.index("server(s) did not boot") - 2 :]
    assert message.startswith("1 server(s) did not boot"), message[:2000]
    print(message[: message.find("PLAY RECAP")])
    # with Nova's reason
    assert f"- {CLUSTER}-gpu: ERROR: No valid host was found" in message, message[:2000]
    assert f"(`openstack server show {CLUSTER}-gpu` tells more)" in message
    assert f"`make cluster-down CLOUD={MEMBER}` removes" in message
    conn = cloud.conn()
    states = {s.name: s.status for s in conn.compute.servers()}
    assert states == {
        f"{CLUSTER}-master": "ACTIVE",
        f"{CLUSTER}-worker-1": "ACTIVE",
        f"{CLUSTER}-gpu": "ERROR",
    }
    cloud.playbook("teardown.yml")
    assert_empty(conn)
    admin.compute.delete_flavor(flavor)


# The workers' flavor given on the command line as a user gives it (ANSIBLE_ARGS='-e …'): an
# extra var, which no set_fact of provision.yml may shadow
SMALL = (
    "-e", "openstack_worker_count=1", "-e", "openstack_gpu_node=false",
    "-e", f"openstack_worker_flavor={SETTINGS['openstack_worker_flavor']}",
)  # fmt: skip


def _servers_on(conn, network: str) -> dict[str, str]:
    """{server name: its fixed IPv4 address on network}, every server ACTIVE."""
    out = {}
    for server in conn.compute.servers(details=True):
        assert server.status == "ACTIVE", (server.name, server.status)
        assert list(server.addresses) == [network], server.addresses
        out[server.name] = next(
            a["addr"] for a in server.addresses[network] if a["OS-EXT-IPS:type"] == "fixed"
        )
    return out


def _hostvars(cloud) -> dict[str, dict]:
    proc = _run(
        [cloud.tools["ansible-inventory"], "-i", cloud.root / "inventory.ini", "--list"],
        cwd=REPO, env=tool_env(ANSIBLE_CONFIG=str(ANSIBLE / "ansible.cfg")),
    )  # fmt: skip
    return json.loads(proc.stdout)["_meta"]["hostvars"]


def test_network_mode_existing_uses_the_projects_network(cloud):
    """openstack_network_mode=existing: the servers go on a network the project made itself
    (with its own router); provision makes no network, subnet or router, teardown leaves them.
    The network has port security off, as some sites' have, so openstack_security_groups=false:
    no security group made or attached (Nova refuses them on such a network)."""
    conn = cloud.conn()
    external = conn.network.find_network(SETTINGS["openstack_external_network"])
    net = conn.network.create_network(name="lab-net", is_port_security_enabled=False)
    subnet = conn.network.create_subnet(
        network_id=net.id, name="lab-subnet", ip_version=4, cidr="10.99.0.0/24"
    )
    router = conn.network.create_router(
        name="lab-router", external_gateway_info={"network_id": external.id}
    )
    conn.network.add_interface_to_router(router, subnet_id=subnet.id)
    mode = ("-e", "openstack_network_mode=existing", "-e", "openstack_network=lab-net")
    cloud.playbook("provision.yml", *mode, *SMALL, "-e", "openstack_security_groups=false")
    held = inventory_of(conn)
    assert set(held["security_groups"]) <= {"default"}, held["security_groups"]
    for server in conn.compute.servers():
        for port in conn.network.ports(device_id=server.id):
            assert port.security_group_ids == [] and not port.is_port_security_enabled
    assert set(held["networks"]) == {"lab-net"}
    assert set(held["subnets"]) == {"lab-subnet"}
    assert set(held["routers"]) == {"lab-router"}
    fixed = _servers_on(conn, "lab-net")
    assert set(fixed) == {f"{CLUSTER}-master", f"{CLUSTER}-worker-1"}
    assert all(ip.startswith("10.99.0.") for ip in fixed.values())
    (fip,) = held["floating_ips"]
    hv = _hostvars(cloud)
    assert hv[f"{CLUSTER}-master"]["ansible_host"] == fip
    assert hv[f"{CLUSTER}-worker-1"]["private_ip"] == fixed[f"{CLUSTER}-worker-1"]

    cloud.playbook("teardown.yml")
    held = inventory_of(conn)
    assert held["servers"] == held["floating_ips"] == held["keypairs"] == {}
    assert set(held["security_groups"]) == {"default"}
    assert set(held["networks"]) == {"lab-net"} and set(held["routers"]) == {"lab-router"}
    conn.network.remove_interface_from_router(router, subnet_id=subnet.id)
    conn.network.delete_router(router)
    conn.network.delete_network(net)
    assert_empty(conn)


def test_network_mode_provider_puts_the_servers_on_it_without_floating_ip(cloud):
    """openstack_network_mode=provider: the servers sit on a shared provider network (the
    admin's); no network, router or floating IP is made, Ansible reaches the master at its
    address there."""
    admin = cloud.conn(admin=True)
    provider = admin.network.create_network(
        name="provider-net",
        is_shared=True,
        provider_network_type="flat",
        provider_physical_network="provider",
    )
    admin.network.create_subnet(
        network_id=provider.id, name="provider-subnet", ip_version=4, cidr="198.18.0.0/24"
    )
    try:
        mode = ("-e", "openstack_network_mode=provider", "-e", "openstack_network=provider-net")
        proc = cloud.playbook("provision.yml", *mode, *SMALL)
        assert task_outcome(proc.stdout, "Floating IP for the master") == "skipping"
        assert task_outcome(proc.stdout, "Router to the external network") == "skipping"
        conn = cloud.conn()
        held = inventory_of(conn)
        assert held["networks"] == held["routers"] == held["floating_ips"] == {}
        fixed = _servers_on(conn, "provider-net")
        hv = _hostvars(cloud)
        assert hv[f"{CLUSTER}-master"]["ansible_host"] == fixed[f"{CLUSTER}-master"]
        assert hv[f"{CLUSTER}-worker-1"]["higgsbench_bastion"].endswith(fixed[f"{CLUSTER}-master"])
        cloud.playbook("teardown.yml")
        assert_empty(conn)
    finally:
        admin.network.delete_network(provider)
