"""Keystone's catalog of the test control plane, made once at image build (start.sh setup):
the service project, one user per service (admin there, as the install guides do), and each
service's endpoints at the default ports (start.sh rewrites them to the ports of each start)."""

import sys

import openstack

PASSWORD = sys.argv[1]
SERVICES = {  # name: (type, URL)
    "glance": ("image", "http://127.0.0.1:9292"),
    "placement": ("placement", "http://127.0.0.1:8778"),
    "nova": ("compute", "http://127.0.0.1:8774/v2.1"),
    "neutron": ("network", "http://127.0.0.1:9696"),
}

conn = openstack.connect(
    auth_url="http://127.0.0.1:5000/v3",
    username="admin",
    password=PASSWORD,
    project_name="admin",
    user_domain_name="Default",
    project_domain_name="Default",
    region_name="RegionOne",
)
identity = conn.identity
project = identity.create_project(name="service", domain_id="default")
admin = identity.find_role("admin")
for name, (kind, url) in SERVICES.items():
    user = identity.create_user(name=name, password=PASSWORD, domain_id="default")
    identity.assign_project_role_to_user(project, user, admin)
    service = identity.create_service(name=name, type=kind)
    for interface in ("public", "internal", "admin"):
        identity.create_endpoint(
            service_id=service.id, interface=interface, url=url, region_id="RegionOne"
        )
print("catalog:", ", ".join(SERVICES))
