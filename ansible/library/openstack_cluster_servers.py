#!/usr/bin/python
"""openstack_cluster_servers: which servers named as this cluster's are ours, and which not?

A module of this project (provision.yml's preflight, teardown.yml), because two users of one
project see each other's servers, and the collection's server_info filters by name and
metadata only, which anyone can set. A server is ours when Nova says our Keystone user made
it (its user_id, which no one can change) and it carries this cluster's metadata. provision
adopts and teardown deletes only ours; every other server with one of the cluster's names is
returned as foreign, so that both refuse before they touch anything.
"""

from __future__ import annotations

import re
from typing import ClassVar

from ansible_collections.openstack.cloud.plugins.module_utils.openstack import (
    OpenStackModule,
)

DOCUMENTATION = r"""
---
module: openstack_cluster_servers
short_description: Split the servers named as a higgsbench cluster's into ours and foreign
description:
  - Lists the project's servers named C(<cluster>-master), C(<cluster>-gpu) or
    C(<cluster>-worker-<n>). A server is ours when Nova's user_id is the user the credentials
    belong to and its metadata C(higgsbench_cluster) is I(cluster); every other one is foreign.
    Changes nothing.
options:
  cluster:
    description: The cluster's name (higgsbench_cluster_name).
    type: str
    required: true
extends_documentation_fragment:
  - openstack.cloud.openstack
"""

EXAMPLES = r"""
- name: The cluster's servers
  openstack_cluster_servers:
    cloud: mycloud
    cluster: higgsbench-alice
  register: cluster_servers
"""

RETURN = r"""
user_id:
  description: The Keystone user id of the credentials (what provision.yml tags servers with).
  returned: always
  type: str
servers:
  description: Our servers, as openstack.cloud.server_info returns them.
  returned: always
  type: list
  elements: dict
foreign:
  description: One line per server with one of the cluster's names that is not ours, e.g.
    "higgsbench-alice-master (made by Keystone user 4f1…, cluster higgsbench-alice)".
  returned: always
  type: list
  elements: str
"""

ROLES = r"(master|gpu|worker-[0-9]+)"


def owner_problem(server: dict, cluster: str, user_id: str) -> str | None:
    """Why SERVER is not ours, or None when it is."""
    made_by = server.get("user_id")
    tagged = (server.get("metadata") or {}).get("higgsbench_cluster")
    if made_by == user_id and tagged == cluster:
        return None
    who = "by you" if made_by == user_id else f"by Keystone user {made_by}"
    what = f"cluster {tagged}" if tagged else "not by higgsbench"
    return f"{server['name']} (made {who}, {what})"


class ClusterServersModule(OpenStackModule):
    argument_spec: ClassVar[dict] = dict(cluster=dict(type="str", required=True))
    module_kwargs: ClassVar[dict] = dict(supports_check_mode=True)

    def run(self):
        cluster = self.params["cluster"]
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,39}", cluster):
            self.fail_json(msg=f"cluster {cluster!r}: lower-case letters, digits and dashes")
        named = re.compile(rf"{re.escape(cluster)}-{ROLES}")
        user_id = self.conn.current_user_id
        ours, foreign = [], []
        # Nova's name filter is a regular expression (the name is letters, digits and dashes:
        # plain text in one); the exact names are matched here
        for server in self.conn.compute.servers(details=True, name=f"^{cluster}-"):
            info = server.to_dict(computed=False)
            if not named.fullmatch(info["name"]):
                continue
            problem = owner_problem(info, cluster, user_id)
            if problem:
                foreign.append(problem)
            else:
                ours.append(info)
        self.exit_json(changed=False, user_id=user_id, servers=ours, foreign=sorted(foreign))


def main():
    module = ClusterServersModule()
    module()


if __name__ == "__main__":
    main()
