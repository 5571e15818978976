#!/usr/bin/python
"""openstack_quota_check: does the project's quota leave room for what a run will create?

A module of this project (provision.yml's preflight), because the openstack.cloud collection
(2.5) has no module that reads a project's quota *and usage* as a plain member: its `quota`
module sets quotas, needs the admin's right to look up projects, and returns no usage. This
reads the two calls every member may make for its own project: Nova's absolute limits
(instances, cores, RAM with their use) and Neutron's quota details (limit, used, reserved).
"""

from __future__ import annotations

from typing import ClassVar

from ansible_collections.openstack.cloud.plugins.module_utils.openstack import (
    OpenStackModule,
)

DOCUMENTATION = r"""
---
module: openstack_quota_check
short_description: Compare a project's free quota with what a run needs
description:
  - Reads Nova's absolute limits and Neutron's quota details of the project the credentials
    belong to, and lists every resource whose free quota (limit less used, and less reserved
    for Neutron) is smaller than what I(needs) asks for. Changes nothing.
  - A limit of -1 is unlimited.
options:
  needs:
    description:
      - How many of each resource this run will create. Keys are C(instances), C(cores),
        C(ram) (MB), C(server_groups), C(server_group_members) (in one group) for Nova and
        C(floatingip), C(security_group), C(security_group_rule), C(network), C(subnet),
        C(router), C(port) for Neutron. Missing keys are not checked.
    type: dict
    required: true
extends_documentation_fragment:
  - openstack.cloud.openstack
"""

EXAMPLES = r"""
- name: Will 7 servers, 50 cores and 100 GB fit?
  openstack_quota_check:
    cloud: mycloud
    needs: {instances: 7, cores: 50, ram: 102400, floatingip: 1, security_group: 2}
  register: quota
"""

RETURN = r"""
quota:
  description: Per resource checked, its limit, use and what is free (null free when unlimited).
  returned: always
  type: dict
shortfalls:
  description: One line per resource that does not fit, e.g.
    "cores: needs 50, 20 free (limit 20, in use 0)".
  returned: always
  type: list
  elements: str
unchecked:
  description: What could not be read (e.g. a cloud whose policy hides Neutron's quota details).
  returned: always
  type: list
"""

COMPUTE = {  # need key: (limit attribute, used attribute) of Nova's absolute limits
    "instances": ("instances", "instances_used"),
    "cores": ("total_cores", "total_cores_used"),
    "ram": ("total_ram", "total_ram_used"),
    "server_groups": ("server_groups", "server_groups_used"),
    # a limit per group, not a project total: nothing in use to subtract
    "server_group_members": ("server_group_members", None),
}
NETWORK = {  # need key: attribute of Neutron's quota details
    "floatingip": "floating_ips",
    "security_group": "security_groups",
    "security_group_rule": "security_group_rules",
    "network": "networks",
    "subnet": "subnets",
    "router": "routers",
    "port": "ports",
}
UNITS = {"ram": " MB"}


class QuotaCheckModule(OpenStackModule):
    argument_spec: ClassVar[dict] = dict(needs=dict(type="dict", required=True))
    module_kwargs: ClassVar[dict] = dict(supports_check_mode=True)

    def run(self):
        needs = {k: int(v) for k, v in self.params["needs"].items()}
        unknown = set(needs) - set(COMPUTE) - set(NETWORK)
        if unknown:
            self.fail_json(msg=f"unknown resources in needs: {sorted(unknown)}")
        quota, warnings = {}, []
        if needs.keys() & COMPUTE.keys():
            absolute = self.conn.compute.get_limits().absolute
            for key, (limit, used) in COMPUTE.items():
                in_use = getattr(absolute, used) if used else 0
                quota[key] = self._entry(getattr(absolute, limit), in_use, 0)
        if needs.keys() & NETWORK.keys():
            try:
                details = self.conn.network.get_quota(self.conn.current_project_id, details=True)
            except self.sdk.exceptions.HttpException as exc:
                # e.g. a policy that hides quota details from members: say so, check the rest
                warnings.append(f"Neutron's quota could not be read, not checked: {exc}")
            else:
                for key, attr in NETWORK.items():
                    d = getattr(details, attr) or {}
                    quota[key] = self._entry(d.get("limit"), d.get("used"), d.get("reserved"))
        shortfalls = []
        for key, need in needs.items():
            q = quota.get(key)
            if q is None or q["free"] is None or need <= q["free"]:
                continue
            unit = UNITS.get(key, "")
            shortfalls.append(
                f"{key}: needs {need}{unit}, {q['free']}{unit} free "
                f"(limit {q['limit']}{unit}, in use {q['used']}{unit})"
            )
        for w in warnings:
            self.warn(w)
        self.exit_json(changed=False, quota=quota, shortfalls=shortfalls, unchecked=warnings)

    @staticmethod
    def _entry(limit, used, reserved) -> dict:
        limit = -1 if limit is None else int(limit)
        used, reserved = int(used or 0), int(reserved or 0)
        free = None if limit < 0 else max(limit - used - reserved, 0)
        return {"limit": limit, "used": used, "reserved": reserved, "free": free}


def main():
    module = QuotaCheckModule()
    module()


if __name__ == "__main__":
    main()
