"""`data prepare` and `data synth`: real or generated rows through the one prepared-data writer."""

from __future__ import annotations

import os
from pathlib import Path

from higgsbench.data import synth as toy
from higgsbench.data.csv_source import read_higgs_csv
from higgsbench.data.writer import SplitPlan, write_prepared
from higgsbench.progress import progress_bar


def prepare(
    src: str | os.PathLike,
    out: str | os.PathLike,
    rows: int | None = None,
    val_rows: int | None = None,
    test_rows: int | None = None,
    force: bool = False,
    show_progress: bool = True,
) -> dict:
    src = Path(src)
    plan = _plan(val_rows, test_rows)
    size = src.stat().st_size if src.is_file() else None
    with progress_bar(f"prepare {src.name}", size, unit="bytes", show=show_progress) as bar:
        chunks = read_higgs_csv(
            src, max_rows=rows, on_progress=lambda done, total: bar.update(done)
        )
        provenance = {
            "source": str(src.resolve()),
            "generated": False,
            "source_bytes": size,
            "rows_requested": rows,
        }
        return write_prepared(chunks, out, plan, provenance, force=force)


def synth(
    events: int,
    out: str | os.PathLike,
    seed: int = 42,
    val_rows: int | None = None,
    test_rows: int | None = None,
    jobs: int = 1,
    force: bool = False,
    show_progress: bool = True,
) -> dict:
    if events < 10:
        raise ValueError("--events must be at least 10 (train, validation and test need rows)")
    plan = _plan(val_rows, test_rows)
    with progress_bar("generate toy events", events, show=show_progress) as bar:
        chunks = toy.synthesize(events, seed, lambda done, total: bar.update(done), jobs=jobs)
        provenance = {
            "source": f"generated: {toy.GENERATOR_INFO['generator']}, seed {seed}",
            "generated": True,
            "seed": seed,
            **toy.GENERATOR_INFO,
        }
        return write_prepared(chunks, out, plan, provenance, force=force)


def _plan(val_rows: int | None, test_rows: int | None) -> SplitPlan:
    plan = SplitPlan()
    if val_rows is not None:
        plan.val_rows = val_rows
    if test_rows is not None:
        plan.test_rows = test_rows
    if plan.val_rows < 1 or plan.test_rows < 1:
        raise ValueError("--val-rows and --test-rows must be at least 1")
    return plan
