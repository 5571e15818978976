"""Training engines. Each module exposes ``train(config, data, spec) -> TrainOutcome``;
heavy dependencies (torch, pyspark, tensorflow, bigdl) are imported only when chosen."""

ENGINES = {
    "torch": "higgsbench.engines.torch_engine",
    "spark": "higgsbench.engines.spark_engine",
    "keras": "higgsbench.engines.keras_engine",
    "bigdl": "higgsbench.engines.bigdl_engine",
}
