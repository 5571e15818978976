"""`data prepare` and `data synth`: real or generated rows through the one prepared-data writer."""

from __future__ import annotations

import os
from pathlib import Path

from higgsbench.common.limits import at_least
from higgsbench.common.progress import progress_bar
from higgsbench.data import integrity
from higgsbench.data import synth as toy
from higgsbench.data.csv_source import read_higgs_csv
from higgsbench.data.writer import SplitPlan, check_destination, write_prepared


def prepare(
    src: str | os.PathLike,
    out: str | os.PathLike,
    rows: int | None = None,
    val_rows: int | None = None,
    test_rows: int | None = None,
    force: bool = False,
    show_progress: bool = True,
    verify: bool = True,
    uci_rows: int = integrity.UCI_ROWS,
) -> dict:
    """Read ``src`` (CSV, gzip or zip: told from its first bytes) into the prepared layout.

    With ``verify``, an input of ``uci_rows`` rows (UCI's HIGGS file has 11,000,000) must
    start with UCI's first rows; stats["integrity"] says what was found.
    """
    src = Path(src)
    at_least("--rows", rows)
    plan = _plan(val_rows, test_rows)
    check_destination(Path(out), force, [src])  # before a progress bar is drawn
    size = src.stat().st_size if src.is_file() else None
    with progress_bar(f"prepare {src.name}", size, unit="bytes", show=show_progress) as bar:
        chunks = read_higgs_csv(
            src, max_rows=rows, on_progress=lambda done, total: bar.update(done)
        )
        report: dict = {"checked": False}
        if verify:  # fills ``report`` when the last chunk has been read
            chunks = integrity.checked(chunks, str(src), report, rows, uci_rows)
        provenance = {
            "source": str(src.resolve()),
            "generated": False,
            "source_bytes": size,
            "rows_requested": rows,
            "integrity": report,
        }
        return write_prepared(chunks, out, plan, provenance, force=force, inputs=[src])


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
    # 10 events: the fewest that leave a row each for validation and test at the 10 % caps
    at_least("--events", events, 10)
    at_least("--jobs", jobs)
    plan = _plan(val_rows, test_rows)
    check_destination(Path(out), force)
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
    at_least("--val-rows", plan.val_rows)
    at_least("--test-rows", plan.test_rows)
    return plan
