"""Training engines: torch, spark (engines/spark/), keras, bigdl. Each module is an Engine
(core/engine.py), which also names them."""

from higgsbench.core.engine import CLUSTER_ENGINES, ENGINES, SINGLE_PROCESS

__all__ = ["CLUSTER_ENGINES", "ENGINES", "SINGLE_PROCESS"]
