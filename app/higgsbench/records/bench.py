"""bench.json, the record of a sweep: its shape, its reader, and what a row's repeats are.

A row of bench.json is one configuration: its ``epoch_seconds``, ``events_per_second``,
``test_auc`` and ``gflops`` are the median over the repeats, ``*_min``/``*_max`` their range,
and ``repeats`` keeps every repeat's run directory and epoch times. A bench.json written
before repeats existed (rows without ``repeats``) reads as one repeat per row.
"""

from __future__ import annotations

from pathlib import Path

from higgsbench.common.shapes import (
    NUMBER_OR_NULL,
    POSITIVE,
    Items,
    Maybe,
    Number,
    OrNull,
    read_record,
)

FORMAT = "higgsbench-bench/1"

# Configurations a bench.json may hold: every engine × optimizer at 50 node counts is 1,000.
# The engine comparison draws a bar for each, which takes some 20 s for a thousand; a file of
# more rows is not a sweep (and would keep `bench --from` busy for minutes).
MAX_BENCH_ROWS = 1_000
NODES = Number(least=1, integer=True)
AUC = Number(least=0, most=1, nan=True)  # NaN: a test set of one class has no AUC

# A row's repeats (bench.json written with --repeat; older ones have none: one repeat each).
REPEAT_SHAPE = {"run_dir": str, "epoch_seconds": [NUMBER_OR_NULL], "epoch_seconds_median": POSITIVE}

ROW_SHAPE = {
    "engine": str,
    "nodes": NODES,
    "cores_per_node": Number(least=0, integer=True, null=True),
    "optimizer": str,
    "device": str,
    "epoch_seconds": POSITIVE,
    "events_per_second": POSITIVE,
    "test_auc": AUC,
    "run_dir": str,
    "repeats": Maybe(Items(REPEAT_SHAPE, least=1)),
    "speedup": Maybe(POSITIVE),  # cluster rows of a sweep over nodes
    "efficiency": Maybe(POSITIVE),
    # with repeats: the range of each median above
    **{
        f"{key}_{end}": Maybe(shape)
        for key, shape in (
            ("epoch_seconds", POSITIVE),
            ("events_per_second", POSITIVE),
            ("test_auc", AUC),
            ("speedup", POSITIVE),
            ("efficiency", POSITIVE),
        )
        for end in ("min", "max")
    },
}

# bench --predict's model against the sweep, drawn again by `bench --from`.
PREDICTION_SHAPE = {
    "engine": str,
    "optimizer": str,
    "bandwidth": str,
    "measured_network_bits_per_second": POSITIVE,
    "model": dict,
    "points": [
        {"nodes": NODES, "epoch_seconds": POSITIVE, "epoch_seconds_at_measured_network": POSITIVE}
    ],
    "measured": [{"nodes": NODES, "epoch_seconds": POSITIVE}],
    "communication_dominates_from": OrNull(NODES),
}

# What `bench --from`, `--against`, the table, the plots and --predict read from a bench.json.
BENCH_SHAPE = {
    "generated_data": bool,
    "machine": dict,
    "failures": list,
    "rows": Items(ROW_SHAPE, most=MAX_BENCH_ROWS),
    "prediction": Maybe(PREDICTION_SHAPE),
}


def read_bench(path: Path, option: str) -> dict:
    """A bench.json named by ``option`` (--from, --against), checked before anything uses it."""
    return read_record(path, BENCH_SHAPE, f"a bench.json of `higgsbench bench` ({option})")


def repeat_dirs(row: dict) -> list[str]:
    """The run directories of a row, one per repeat (a bench.json from before --repeat: one)."""
    return [r["run_dir"] for r in row.get("repeats") or []] or [row["run_dir"]]


def spread(row: dict, key: str = "epoch_seconds") -> tuple[float, float]:
    """(min, max) of ``key`` over a row's repeats; (value, value) for a row of one run."""
    return row.get(f"{key}_min", row[key]), row.get(f"{key}_max", row[key])
