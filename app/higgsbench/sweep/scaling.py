"""Scaling beyond one machine, on paper: epoch time for N nodes of C cores on a given network.

The model uses two measurements from a benchmark sweep:

- compute time per event on one node (its epoch time over the events it stepped through);
- the all-reduce of the gradients, timed by the ranks themselves at start-up: a fixed latency
  per step (an all-reduce of one float) and the time per byte of the full gradient message.

For N nodes at global batch B, each synchronous step costs

    t_step(N) = (B / N) · t_event  +  α · 2(N − 1)  +  2 (N − 1) / N · S / bandwidth

(compute on each node's share of the batch, then a ring all-reduce of the S-byte gradient:
2(N − 1) messages, each node sending and receiving 2(N − 1)/N · S bytes). The epoch is
steps × t_step. No overlap of communication with the backward pass is assumed, so the model
errs on the slow side; communication "dominates" from the first N at which its share of the
step exceeds the compute share.

Where a predicted node count was also measured, the point carries the measurement and the
prediction's relative ``error``: run a sweep on a network of known rate (the mini-cluster
under ``make mini-netlimit RATE=…``) and ``--predict`` at that rate to check the model.

With repeats (``bench --repeat R``) the model takes medians: the 1-node epoch time is the row's
median over its repeats, and the all-reduce's latency, bytes and bytes per second are each the
median over the repeats of the multi-node run that timed them.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from higgsbench.common.errors import UsageError
from higgsbench.common.shapes import NON_NEGATIVE, POSITIVE, Maybe, Number, OrNull, read_record
from higgsbench.records.bench import repeat_dirs
from higgsbench.records.result import RESULT_SHAPE

# The all-reduce a multi-node run timed at start-up (one node: null).
ALLREDUCE_SHAPE = {"bytes": POSITIVE, "latency_seconds": NON_NEGATIVE, "bytes_per_second": POSITIVE}
# What the model reads from each run's result.json beyond the results contract, and the
# contract's numbers it divides by or multiplies with.
RUN_SHAPE = {
    **RESULT_SHAPE,
    "batch_size": Number(least=1, integer=True),
    "cores_per_node": Number(least=0, integer=True, null=True),
    "epoch_seconds_median": POSITIVE,
    "train_rows_per_epoch": Number(least=1, integer=True),
    "allreduce": Maybe(OrNull(ALLREDUCE_SHAPE)),
}
UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def parse_bandwidth(text: str) -> float:
    """Bits per second from '10Gbit', '25gbit/s', '1.5 Gb', '100Mbit' or '125MB/s' (bytes)."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([kmgt]?)(bit|b|byte|B)?(/s|ps)?\s*", text, re.I)
    if not match:
        raise UsageError(f"--bandwidth {text!r}: expected e.g. 10Gbit, 1Gbit or 125MB/s")
    value, prefix, unit, _ = match.groups()
    bits = float(value) * UNITS[prefix.lower()]
    # B is a byte and b a bit; spelt out, "byte" in any case
    return bits * 8 if unit == "B" or (unit or "").lower() == "byte" else bits


@dataclass
class ScalingModel:
    seconds_per_event: float  # one node, all its cores
    cores_per_node: int
    gradient_bytes: float
    latency_seconds: float  # per all-reduce message hop
    rows_per_epoch: int
    batch_size: int

    def step_seconds(self, nodes: int, bandwidth_bits: float) -> tuple[float, float]:
        """(compute, communication) seconds of one step on ``nodes`` nodes."""
        compute = self.batch_size / nodes * self.seconds_per_event
        if nodes == 1:
            return compute, 0.0
        hops = 2 * (nodes - 1)
        volume = 2 * (nodes - 1) / nodes * self.gradient_bytes * 8 / bandwidth_bits
        return compute, hops * self.latency_seconds + volume

    def epoch_seconds(self, nodes: int, bandwidth_bits: float) -> float:
        compute, comm = self.step_seconds(nodes, bandwidth_bits)
        return self.rows_per_epoch / self.batch_size * (compute + comm)

    def crossover(self, nodes: list[int], bandwidth_bits: float) -> int | None:
        """The first node count at which communication takes longer than compute."""
        for n in sorted(nodes):
            compute, comm = self.step_seconds(n, bandwidth_bits)
            if comm > compute:
                return n
        return None


def _allreduce(row: dict, runs: dict[str, dict]) -> dict | None:
    """The all-reduce timing of a row: each number the median over the row's repeats that
    measured it (one repeat: its own); None where no repeat did."""
    found = [runs[d].get("allreduce") for d in repeat_dirs(row) if d in runs]
    found = [m for m in found if m]
    if not found:
        return None
    keys = [k for k in found[0] if all(isinstance(m.get(k), int | float) for m in found)]
    return {**found[0], **{k: statistics.median(m[k] for m in found) for k in keys}}


def model_from_bench(
    bench: dict,
    runs: dict[str, dict],
    engine: str = "spark",
    optimizer: str | None = None,
    cores: int | None = None,
) -> ScalingModel:
    """Build the model from a sweep's rows and the runs' records (keyed by run_dir, every
    repeat's). Compute per event is the 1-node row's epoch time (the median over its repeats)
    over the events of an epoch. With ``cores``, it is scaled from the measured node's cores to
    that many (assuming it scales linearly with cores, as GEMM-bound work does within a node)."""
    rows = [
        r
        for r in bench["rows"]
        if r["engine"] == engine and (optimizer is None or r["optimizer"] == optimizer)
    ]
    one = [r for r in rows if r["nodes"] == 1]
    if not one:
        raise UsageError(f"--predict needs a 1-node {engine} run in the sweep (add 1 to --nodes)")
    base = runs[one[0]["run_dir"]]
    measured = [_allreduce(r, runs) for r in rows if r["nodes"] > 1]
    measured = [m for m in measured if m]
    if not measured:
        raise UsageError(
            "--predict needs a run on 2 or more nodes, whose ranks time the all-reduce"
        )
    allreduce = measured[0]
    per_event = one[0]["epoch_seconds"] / base["train_rows_per_epoch"]
    measured_cores = base["cores_per_node"] or 1
    return ScalingModel(
        seconds_per_event=per_event * measured_cores / (cores or measured_cores),
        cores_per_node=cores or measured_cores,
        gradient_bytes=allreduce["bytes"],
        latency_seconds=allreduce["latency_seconds"],
        rows_per_epoch=base["train_rows_per_epoch"],
        batch_size=base["batch_size"],
    )


def _point(model: ScalingModel, n: int, bits: float, measured_bits: float, sweep: dict) -> dict:
    """The prediction for ``n`` nodes at ``bits`` per second and at the measured network; for
    a node count the sweep measured, how far the first is from the measurement."""
    compute, comm = model.step_seconds(n, bits)
    point = {
        "nodes": n,
        "epoch_seconds": model.epoch_seconds(n, bits),
        "compute_share": compute / (compute + comm),
        "epoch_seconds_at_measured_network": model.epoch_seconds(n, measured_bits),
    }
    if n in sweep:
        point["measured_epoch_seconds"] = sweep[n]
        point["error"] = point["epoch_seconds"] / sweep[n] - 1
    return point


def predict(
    bench: dict,
    bench_dir: Path,
    nodes: list[int],
    bandwidth: str,
    engine: str = "spark",
    optimizer: str | None = None,
    cores: int | None = None,
) -> dict:
    """Predicted epoch times for ``nodes`` at ``bandwidth``, and at the network the sweep ran
    on (which should reproduce the measured points: the check that the model holds)."""
    runs = {}
    for row in bench["rows"]:
        for run_dir in repeat_dirs(row):
            path = Path(bench_dir) / run_dir / "result.json"
            runs[run_dir] = read_record(path, RUN_SHAPE, "the result.json of a bench run")
    optimizer = optimizer or next(
        (r["optimizer"] for r in bench["rows"] if r["engine"] == engine), None
    )
    model = model_from_bench(bench, runs, engine, optimizer, cores)
    bits = parse_bandwidth(bandwidth)
    # the network as the same runs the model was fitted on measured it
    measured = [
        _allreduce(r, runs)
        for r in bench["rows"]
        if r["engine"] == engine and r["optimizer"] == optimizer and r["nodes"] > 1
    ]
    measured = [m for m in measured if m]
    measured_bits = measured[0]["bytes_per_second"] * 8
    sweep = {
        r["nodes"]: r["epoch_seconds"]
        for r in bench["rows"]
        if r["engine"] == engine and r["optimizer"] == optimizer
    }
    points = [_point(model, n, bits, measured_bits, sweep) for n in sorted(set(nodes))]
    return {
        "engine": engine,
        "optimizer": optimizer,
        "bandwidth": bandwidth,
        "bandwidth_bits_per_second": bits,
        "measured_network_bits_per_second": measured_bits,
        "model": asdict(model),
        "points": points,
        "measured": [
            {
                "nodes": r["nodes"],
                "epoch_seconds": r["epoch_seconds"],
                **{k: r[k] for k in ("epoch_seconds_min", "epoch_seconds_max") if k in r},
            }
            for r in bench["rows"]
            if r["engine"] == engine and r["optimizer"] == optimizer
        ],
        "communication_dominates_from": model.crossover(nodes, bits),
    }
