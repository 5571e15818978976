"""engine=bigdl on the compose mini-cluster in its BigDL flavour (Spark 3.4.1 + BigDL DLlib):
one epoch across 2 worker containers on the genuine sample, RPC authentication on."""

import pytest

from higgsbench.records.result import parse_result_line
from tests.compose import BIGDL_IMAGE, Cluster, require_docker, train_argv

pytestmark = pytest.mark.docker
require_docker()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("compose-bigdl"), "hbtestbigdl", BIGDL_IMAGE)
    c.up(workers=2, make_target="images-bigdl")
    yield c
    c.down()


def test_bigdl_trains_one_epoch_across_two_worker_containers(cluster):
    assert cluster.alive_workers() == 2
    data = cluster.prepare_sample()
    proc = cluster.driver(
        *train_argv("bigdl", 2, data, "/shared/runs/bigdl", "--epochs", 1, "--batch-size", 256)
    )
    line = parse_result_line(proc.stdout)
    record = cluster.read_json("/shared/runs/bigdl/result.json")
    assert record["test_auc"] == line["test_auc"]
    assert record["engine"] == "bigdl" and (record["nodes"], record["cores_per_node"]) == (2, 1)
    assert record["versions"]["pyspark"] == "3.4.1" and record["versions"]["bigdl"]
    assert len(record["hosts"]) >= 2, "the executors must run in the two worker containers"
    # above what an untrained network scores on this test set (0.45-0.58 over 20 seeds); the
    # same run in local mode is compared with torch in test_bigdl_engine.py (0.655 against 0.676)
    assert record["train_rows"] == 8788 and 0.60 < record["test_auc"] <= 1.0
