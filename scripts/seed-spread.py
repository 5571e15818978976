#!/usr/bin/env python3
"""Measure how far one torch process's test AUC moves from seed to seed on the genuine sample,
and write the tolerance the distributed engines' tests compare with: tests/seed_spread.json.

The Spark (DDP) and BigDL engines are checked against one torch process trained on the same
rows, batch, optimizer and seed. They shuffle differently (each rank its own shard; BigDL its
own way), so their AUC may differ from torch's by about what another seed gives, and no more.
This script trains torch with seeds 1..N for each setting those tests use (1 epoch, Adam, a
global batch of 512 as in test_spark_engine, 256 as in test_bigdl_engine) and records each
AUC. The tolerance is 4 standard deviations of the difference of two such runs (4·√2·σ): a
false failure about once in 16 000 runs, while an engine that does not train (AUC 0.45–0.58
untrained, 0.66–0.69 after this epoch) is outside it.

Usage: .venv/bin/python scripts/seed-spread.py [--seeds 12] [--sample PATH]
(about 10 s a run on a 2-core machine; run nothing else beside it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "seed_spread.json"
SAMPLE = REPO.parent / "shared" / "data" / "higgs-sample-10984.csv.gz"
SETTINGS = {  # name → the torch run's options: the reference of the test named
    "batch-512-adam": ["--batch-size", "512", "--optimizer", "adam"],  # test_spark_engine
    "batch-256-adam": ["--batch-size", "256", "--optimizer", "adam"],  # test_bigdl_engine
}
SIGMAS = 4


def higgsbench(*args: str) -> subprocess.CompletedProcess:
    cli = Path(sys.executable).with_name("higgsbench")
    return subprocess.run([str(cli), *args], check=True, capture_output=True, text=True)


def measure(prepared: Path, work: Path, options: list[str], seeds: int) -> dict:
    aucs = []
    for seed in range(1, seeds + 1):
        out = work / f"run-{len(os.listdir(work))}"
        higgsbench("train", "--engine", "torch", "--data", str(prepared), "--out", str(out),
                   "--epochs", "1", "--seed", str(seed), *options)  # fmt: skip
        aucs.append(json.loads((out / "result.json").read_text())["test_auc"])
        print(f"  seed {seed}: test AUC {aucs[-1]:.4f}", flush=True)
    sigma = statistics.stdev(aucs)
    return {
        "options": ["--engine", "torch", "--epochs", "1", *options],
        "seeds": list(range(1, seeds + 1)),
        "test_auc": aucs,
        "mean": statistics.fmean(aucs),
        "stdev": sigma,
        "range": [min(aucs), max(aucs)],
        "tolerance": SIGMAS * math.sqrt(2) * sigma,
    }


def main() -> int:
    from higgsbench.records.result import machine

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=12, help="seeds 1..N per setting (≥ 3)")
    parser.add_argument("--sample", type=Path, default=SAMPLE, help="the genuine HIGGS sample")
    args = parser.parse_args()
    if args.seeds < 3:
        parser.error("--seeds: at least 3, for a standard deviation worth the name")
    if not args.sample.is_file():
        parser.error(f"--sample {args.sample}: no such file (see ../shared/data/README)")
    with tempfile.TemporaryDirectory(prefix="seed-spread-") as tmp:
        prepared = Path(tmp) / "prepared"
        higgsbench("data", "prepare", str(args.sample), "--out", str(prepared))
        settings = {}
        for name, options in SETTINGS.items():
            print(f"{name}: {args.seeds} seeds", flush=True)
            runs = Path(tmp) / name
            runs.mkdir()
            settings[name] = measure(prepared, runs, options, args.seeds)
            print(f"  σ {settings[name]['stdev']:.4f}, tolerance "
                  f"{settings[name]['tolerance']:.4f}", flush=True)  # fmt: skip
    record = {
        "what": "seed-to-seed spread of one torch process's test AUC on the genuine sample",
        "sample": args.sample.name,
        "measured": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine()["processor"],
        "cpu_count": os.cpu_count(),
        "tolerance_rule": f"{SIGMAS}·√2·σ: {SIGMAS} standard deviations of a difference of two",
        "settings": settings,
    }
    tmp_out = OUT.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(record, indent=2) + "\n")
    tmp_out.replace(OUT)
    print(f"wrote {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
