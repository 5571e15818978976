"""The engine contract and the engines there are.

An engine is a module with a ``train`` function (the Engine protocol): given a validated
RunConfig, the prepared dataset and the network, it trains, times every epoch apart from
start-up and evaluation, and returns a TrainOutcome; it does not check its settings again
(core/checks.validate did), compute metrics or write result.json (records/result.py does,
once for every engine). Its heavy dependencies (torch, pyspark, tensorflow, bigdl) are
imported only when it is chosen, so this table names modules rather than importing them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from higgsbench.core.config import RunConfig, TrainOutcome
    from higgsbench.core.network import NetworkSpec
    from higgsbench.data.prepared import PreparedDataset


class Engine(Protocol):
    def train(
        self, config: RunConfig, data: PreparedDataset, spec: NetworkSpec
    ) -> TrainOutcome: ...


ENGINES = {
    "torch": "higgsbench.engines.torch_engine",
    "spark": "higgsbench.engines.spark.engine",
    "keras": "higgsbench.engines.keras_engine",
    "bigdl": "higgsbench.engines.bigdl_engine",
}
# Engines that train in one process (--nodes means nothing to them), and those that train on
# a Spark cluster, one rank per node.
SINGLE_PROCESS = ("torch", "keras")
CLUSTER_ENGINES = ("spark", "bigdl")
# BigDL without --master: Spark's local mode on two cores
BIGDL_LOCAL = "local[2]"
