"""What a sweep's runs add up to: bench.json's rows (medians over repeats, speed-up and
efficiency against one node), the scaling prediction, the GPU in CPU cores, the table, the
plots and the RESULT line.

Speed-up and efficiency are ratios of medians; their range pairs the fastest with the slowest
repeat (one node's slowest over N nodes' fastest, and the other way round).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from higgsbench.common.atomic import write_text_atomic
from higgsbench.common.paths import output_set
from higgsbench.engines import CLUSTER_ENGINES
from higgsbench.records.bench import FORMAT, repeat_dirs, spread
from higgsbench.records.result import RESULT_PREFIX, git_sha, machine, versions, write_json_atomic
from higgsbench.sweep.plan import BenchPlan

# Per-run numbers a row quotes as the median over its repeats, with their min and max.
REPEATED = {
    "epoch_seconds": "epoch_seconds_median",
    "events_per_second": "events_per_second",
    "test_auc": "test_auc",
    "gflops": "gflops",
}


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(plan: BenchPlan, records: list[dict], failures: list[dict]) -> dict:
    """Per configuration (the records of one engine, node count and optimizer are its
    repeats): the median epoch time, events/s, AUC and GFLOP/s over the repeats, with their
    min–max when there are several; for clusters: speed-up and efficiency relative to one
    node of the same engine and optimizer, from this same run, as ratios of the medians."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["engine"], r["nodes"], r["optimizer"]), []).append(r)
    rows = [_row(reps) for reps in groups.values()]
    for row in rows:
        _add_speedup(row, rows)
    generated = any(r.get("generated_data") for r in records)
    return {
        "format": FORMAT,
        "plan": plan.to_dict(),
        "generated_data": generated,
        "data": records[0]["data"] if records else None,
        # where the training ran (the runs' own record), not where this sweep was started
        "machine": records[0]["machine"] if records else machine(),
        "versions": records[0]["versions"] if records else versions(),
        "git_sha": git_sha(),
        "rows": rows,
        "failures": failures,
    }


def _row(reps: list[dict]) -> dict:
    """One configuration's row from its repeats' records."""
    r = reps[0]
    row = {k: r[k] for k in ("engine", "nodes", "cores_per_node", "optimizer", "device")}
    for key, source in REPEATED.items():
        row[key] = _median([o[source] for o in reps])
        if len(reps) > 1:
            row[f"{key}_min"] = min(o[source] for o in reps)
            row[f"{key}_max"] = max(o[source] for o in reps)
    row["startup_seconds"] = _median([o["startup_seconds"] for o in reps])
    row["fraction_of_peak"] = _median([o.get("fraction_of_peak") for o in reps])
    row["run_dir"] = r["run_dir"]  # the first repeat's; every one is in "repeats"
    row["repeats"] = [
        {
            "run_dir": o["run_dir"],
            "epoch_seconds": o.get("epoch_seconds", [o["epoch_seconds_median"]]),
            "epoch_seconds_median": o["epoch_seconds_median"],
            "events_per_second": o["events_per_second"],
            "test_auc": o["test_auc"],
        }
        for o in reps
    ]
    return row


def _add_speedup(row: dict, rows: list[dict]) -> None:
    """A cluster row's speed-up and efficiency against one node of the same engine and
    optimizer in the same sweep, with their range over the repeats."""
    same = [o for o in rows if (o["engine"], o["optimizer"]) == (row["engine"], row["optimizer"])]
    one = [o for o in same if o["nodes"] == 1]
    swept = len({o["nodes"] for o in same}) > 1  # speed-up needs a sweep over nodes
    if not (one and swept and row["engine"] in CLUSTER_ENGINES):
        return
    base = one[0]
    row["speedup"] = base["epoch_seconds"] / row["epoch_seconds"]
    row["efficiency"] = row["speedup"] / row["nodes"]
    if row is not base and (len(row["repeats"]) > 1 or len(base["repeats"]) > 1):
        (b_lo, b_hi), (n_lo, n_hi) = spread(base), spread(row)
        row["speedup_min"], row["speedup_max"] = b_lo / n_hi, b_hi / n_lo
        row["efficiency_min"] = row["speedup_min"] / row["nodes"]
        row["efficiency_max"] = row["speedup_max"] / row["nodes"]


def finish_bench(
    bench: dict,
    out: Path,
    *,
    runs_dir: Path,
    predict: list[int] | None = None,
    bandwidth: str = "10Gbit",
    predict_cores: int | None = None,
    against: dict | None = None,
    force: bool = False,
    echo=print,
) -> str:
    """What follows a sweep (or a bench.json read back): the scaling prediction for the node
    counts ``predict``, the GPU in CPU cores of the cluster bench ``against``, the plots and
    bench.md in ``out``, all of them or none. ``out`` must be ``runs_dir`` or a directory that
    is new, empty or the kit's, unless ``force``. Says the table with ``echo``; returns the
    RESULT line."""
    from higgsbench.sweep.plots import write_plots

    with output_set(out, "--out", "bench", force, also_ours=(runs_dir,)) as tmp:
        if predict:
            from higgsbench.sweep.scaling import predict as predict_scaling

            bench["prediction"] = predict_scaling(
                bench, runs_dir, predict, bandwidth, cores=predict_cores
            )
            _say_prediction(bench["prediction"], predict, echo)
        if against is not None:
            gpu_rows = [r for r in bench["rows"] if "cuda" in r["device"]]
            bench["gpu_equivalent"] = gpu_equivalent_cores(gpu_rows, against)
            for g in bench["gpu_equivalent"]:
                echo(
                    f"this GPU equals {g['gpu_equals_cores']:.0f} CPU cores of the cluster "
                    f"({g['engine']} {g['optimizer']})"
                )
        if predict or against is not None:
            write_json_atomic(tmp / "bench.json", bench)
        write_plots(bench, tmp, runs_dir)
        write_text_atomic(tmp / "bench.md", table(bench) + "\n")
    echo(table(bench))
    return summary_line(bench)


def _say_prediction(prediction: dict, predict: list[int], echo) -> None:
    """Where communication overtakes compute, and how far the model is from the sweep."""
    bandwidth = prediction["bandwidth"]
    crossover = prediction["communication_dominates_from"]
    echo(
        f"prediction at {bandwidth}: communication dominates from {crossover} nodes"
        if crossover
        else f"prediction at {bandwidth}: compute dominates up to {max(predict)} nodes"
    )
    checked = [p for p in prediction["points"] if "error" in p]
    if checked:
        echo(
            f"prediction at {bandwidth} against the sweep: "
            + ", ".join(
                f"{p['nodes']} node{'s' if p['nodes'] > 1 else ''} "
                f"{p['epoch_seconds']:.2f} s predicted, {p['measured_epoch_seconds']:.2f} s "
                f"measured ({p['error']:+.0%})"
                for p in checked
            )
        )


def gpu_equivalent_cores(gpu_rows: list[dict], cluster: dict) -> list[dict]:
    """How many CPU cores of the cluster one GPU is worth, per optimizer: GPU events/s over
    the best events/s per core among the cluster sweep's CPU runs of the same optimizer
    (the most efficient core is the fair yardstick: scaling losses are not the GPU's merit)."""
    out = []
    for g in gpu_rows:
        cpu = [
            r
            for r in cluster["rows"]
            if r["optimizer"] == g["optimizer"]
            and r["engine"] in ("spark", "torch", "bigdl")
            and "cuda" not in r["device"]
        ]
        if not cpu:
            continue
        per_core = max(
            r["events_per_second"] / max(r["nodes"] * (r["cores_per_node"] or 1), 1) for r in cpu
        )
        out.append(
            {
                "engine": g["engine"],
                "optimizer": g["optimizer"],
                "gpu_events_per_second": g["events_per_second"],
                "cpu_events_per_second_per_core": per_core,
                "gpu_equals_cores": g["events_per_second"] / per_core,
            }
        )
    return out


def summary_line(bench: dict) -> str:
    """The last line a benchmark prints: RESULT and the table, compactly."""
    slim = {
        "bench": "higgsbench",
        "generated_data": bench["generated_data"],
        "machine": bench["machine"].get("processor"),
        "gpu": bench["machine"].get("gpu"),
        "rows": [
            {
                k: (round(v, 5) if isinstance(v, float) else v)
                for k, v in r.items()
                if k not in ("run_dir", "repeats")
            }
            for r in bench["rows"]
        ],
        "failures": len(bench["failures"]),
    }
    if "gpu_equivalent" in bench:
        slim["gpu_equivalent"] = bench["gpu_equivalent"]
    return RESULT_PREFIX + json.dumps(slim, separators=(",", ":"))


def _cell(row: dict, key: str, fmt: str, scale: float = 1.0, unit: str = "") -> str:
    """A table cell: the median, and the min–max over the repeats where the row has them."""
    if key not in row:
        return "–"
    text = f"{scale * row[key]:{fmt}}{unit}"
    if f"{key}_min" in row:
        lo, hi = spread(row, key)
        text += f" ({scale * lo:{fmt}}–{scale * hi:{fmt}}{unit})"
    return text


def table(bench: dict) -> str:
    """A Markdown table of the sweep, as the README quotes it. With repeats, every time,
    throughput, speed-up and efficiency reads "median (min–max)" over the repeats."""
    counts = sorted({len(repeat_dirs(r)) for r in bench["rows"]})
    if counts and counts[-1] > 1:
        of = f"{counts[0]}–{counts[-1]}" if len(counts) > 1 else f"{counts[0]}"
        header = (
            f"| engine | nodes × cores | optimizer | device | epoch s, median of {of} runs "
            "(min–max) | events/s | speed-up | efficiency | test AUC |"
        )
    else:
        header = (
            "| engine | nodes × cores | optimizer | device | epoch s | events/s | speed-up "
            "| efficiency | test AUC |"
        )
    lines = [header, "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in bench["rows"]:
        lines.append(
            f"| {r['engine']} | {r['nodes']} × {r['cores_per_node']} | {r['optimizer']} "
            f"| {r['device']} | {_cell(r, 'epoch_seconds', '.3f')} "
            f"| {_cell(r, 'events_per_second', ',.0f')} | {_cell(r, 'speedup', '.2f')} "
            f"| {_cell(r, 'efficiency', '.0f', 100, ' %')} | {r['test_auc']:.4f} |"
        )
    return "\n".join(lines)
