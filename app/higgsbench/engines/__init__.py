"""Training engines. Each module exposes ``train(config, data, spec) -> TrainOutcome``;
heavy dependencies (torch, pyspark, tensorflow, bigdl) are imported only when chosen."""

# Engines that train in one process (--nodes means nothing to them), and those that train on
# a Spark cluster, one rank per node.
SINGLE_PROCESS = ("torch", "keras")
CLUSTER_ENGINES = ("spark", "bigdl")

ENGINES = {
    "torch": "higgsbench.engines.torch_engine",
    "spark": "higgsbench.engines.spark.engine",
    "keras": "higgsbench.engines.keras_engine",
    "bigdl": "higgsbench.engines.bigdl_engine",
}
