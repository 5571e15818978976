#!/usr/bin/python
"""openstack_server_fault: why did these servers not boot, in Nova's words?

A module of this project (provision.yml's boot check), because Nova gives a server's fault
(e.g. "No valid host was found") only when the one server is shown, not in the list that the
openstack.cloud collection's server_info module reads.
"""

from __future__ import annotations

from typing import ClassVar

from ansible_collections.openstack.cloud.plugins.module_utils.openstack import (
    OpenStackModule,
)

DOCUMENTATION = r"""
---
module: openstack_server_fault
short_description: Nova's status and fault message of named servers
description:
  - Shows each named server (GET /servers/{id}) and returns its status and the message of its
    fault, if any. Changes nothing.
options:
  names:
    description:
      - Names or IDs of the servers.
    type: list
    elements: str
    required: true
extends_documentation_fragment:
  - openstack.cloud.openstack
"""

EXAMPLES = r"""
- name: Why did the GPU node not boot?
  openstack_server_fault:
    cloud: mycloud
    names: [higgsbench-gpu]
"""

RETURN = r"""
servers:
  description: "{name: {status, fault}} for each name; fault is '' when Nova gives none, status
    'not found' for a server that does not exist."
  returned: always
  type: dict
"""


class ServerFaultModule(OpenStackModule):
    argument_spec: ClassVar[dict] = dict(names=dict(type="list", elements="str", required=True))
    module_kwargs: ClassVar[dict] = dict(supports_check_mode=True)

    def run(self):
        servers = {}
        for name in self.params["names"]:
            found = self.conn.compute.find_server(name, ignore_missing=True)
            if found is None:
                servers[name] = {"status": "not found", "fault": ""}
                continue
            server = self.conn.compute.get_server(found.id)  # shown: the fault is in the answer
            fault = server.fault or {}
            servers[name] = {"status": server.status, "fault": fault.get("message", "")}
        self.exit_json(changed=False, servers=servers)


def main():
    module = ServerFaultModule()
    module()


if __name__ == "__main__":
    main()
