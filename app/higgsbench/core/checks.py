"""Checks of a run's settings that need to know what a run is (its network, its Spark
master); the generic limits on numbers, paths and addresses are in common/limits.py."""

from __future__ import annotations

from higgsbench.common.errors import UsageError
from higgsbench.common.limits import fits_in_memory
from higgsbench.core.network import FLOAT_BYTES, NetworkSpec


def spark_master(option: str, master: str | None, batch_size: int, nodes: list[int]) -> None:
    """A Spark run's master URL and batch: refused, naming ``option``, unless the master is a
    spark:// URL and the batch divides evenly among every node count."""
    if not master:
        raise UsageError(
            f"{option} spark needs --master spark://HOST:PORT "
            "(start a local cluster with `higgsbench cluster up`)"
        )
    if not master.startswith("spark://"):
        raise UsageError(f"--master {master!r}: expected spark://HOST:PORT")
    for n in nodes:
        if batch_size % n:
            raise UsageError(f"--batch-size {batch_size} must divide evenly among --nodes {n}")


def network_fits(spec: NetworkSpec, batch_size: int, optimizer: str, trains_here: bool) -> None:
    """--width/--layers: refuse a network that would not fit in this process's memory. Where it
    ``trains_here`` (one process on the CPU) its whole training must fit; elsewhere (a GPU,
    Spark ranks) this process still builds or receives its weights."""
    option = f"--width {spec.width} --layers {spec.layers}"
    params = f"a network of {spec.parameters():,} parameters"
    if trains_here:
        needed = spec.training_bytes(batch_size, optimizer)
        state = f"the {optimizer} optimizer's state"
        what = f"training {params} (weights, gradients, {state}, a batch of {batch_size})"
    else:
        needed, what = FLOAT_BYTES * spec.parameters(), f"the weights of {params}"
    fits_in_memory(option, needed, what)
