"""`higgsbench data fetch|prepare|synth|compare`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from higgsbench.cli.app import data_app
from higgsbench.cli.options import Progress


@data_app.command("fetch")
def data_fetch(
    out: Annotated[Path, typer.Option(help="Where to write the file.")] = Path("data/HIGGS.csv.gz"),
    rows: Annotated[
        int | None,
        typer.Option(help="Keep only the first N rows (streamed: stops the download early)."),
    ] = None,
    url: Annotated[
        list[str] | None,
        typer.Option(
            help="Download address; repeat it for fallbacks, tried in order when one answers "
            "404/410 or is not data (default: UCI's higgs.zip, then its legacy HIGGS.csv.gz)."
        ),
    ] = None,
    retries: Annotated[int, typer.Option(help="Automatic resumes after a cut connection.")] = 5,
    force: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
    progress: Progress = True,
):
    """Download HIGGS (2.6 GB) from UCI: resumable, size-checked, sha256 beside it.

    UCI serves higgs.zip, a zip holding HIGGS.csv.gz; its legacy .../00280/HIGGS.csv.gz address
    is tried when that one answers 404 or 410. What arrives is told from its first bytes: an
    HTML page, or anything else that is not data, is an error and nothing is saved.

    OUT's name says what is kept: *.csv.gz (the default) the gzip-compressed CSV, so a served
    zip is unpacked and then removed; *.csv plain CSV; *.zip the zip as UCI serves it.
    The download goes to SERVED_NAME.part beside OUT (higgs.zip.part) and a cut one is resumed
    from there with a Range request, --retries times, or by running the command again.
    An OUT that exists already is refused unless --force.

    --rows N streams through the zip and the gzip inside it and stops after N rows; a stream
    cut before them is an error, never a short file.
    """
    from higgsbench.data.fetch import fetch

    info = fetch(url or None, out, rows=rows, retries=retries, show_progress=progress, force=force)
    typer.echo(json.dumps(info))


@data_app.command("prepare")
def data_prepare(
    src: Annotated[
        Path, typer.Argument(help="UCI-format HIGGS CSV: plain, gzip, or a zip holding one.")
    ],
    out: Annotated[Path, typer.Option(help="Directory for train/val/test Parquet + stats.json.")],
    rows: Annotated[int | None, typer.Option(help="Use only the first N rows.")] = None,
    val_rows: Annotated[
        int, typer.Option(help="Validation rows, taken before the test rows (≤ 10 % of the input).")
    ] = 500_000,
    test_rows: Annotated[
        int, typer.Option(help="Test rows, the last of the file (≤ 10 % of the input).")
    ] = 500_000,
    force: Annotated[bool, typer.Option(help="Replace OUT if it is a prepared dataset.")] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="An input of 11,000,000 rows must start with UCI's first rows.",
        ),
    ] = True,
    progress: Progress = True,
):
    """Split a HIGGS CSV into Parquet train/val/test sets, streaming in bounded memory.

    SRC may be plain CSV, gzip-compressed CSV, or a zip holding one (UCI's higgs.zip), told
    from its first bytes, not its name. An input with as many rows as UCI's HIGGS file
    (11,000,000) is checked against the published first rows and its row count reported.
    """
    from higgsbench.common.limits import no_link_loop
    from higgsbench.data.integrity import summary
    from higgsbench.data.prepare import prepare

    no_link_loop(src)  # before the check that OUT is not SRC resolves its links
    stats = prepare(
        src, out, rows, val_rows, test_rows, force=force, show_progress=progress, verify=verify
    )
    typer.echo(f"wrote {out}: rows {json.dumps(stats['rows'])} from {stats['source']}")
    if line := summary(stats["integrity"]):
        typer.echo(line)


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option(help="Directory for train/val/test Parquet + stats.json.")],
    events: Annotated[int, typer.Option(help="Number of events to generate.")] = 200_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same events).")] = 42,
    val_rows: Annotated[int, typer.Option(help="Validation rows (≤ 10 % of events).")] = 500_000,
    test_rows: Annotated[int, typer.Option(help="Test rows (≤ 10 % of events).")] = 500_000,
    jobs: Annotated[int, typer.Option(help="Processes generating in parallel.")] = 1,
    force: Annotated[bool, typer.Option(help="Replace OUT if it is a prepared dataset.")] = False,
    progress: Progress = True,
):
    """Generate toy Monte Carlo events (H⁰ → W H± → W W h⁰ vs tt̄), labelled generated."""
    from higgsbench.common.limits import seed as check_seed
    from higgsbench.data.prepare import synth

    check_seed("--seed", seed)
    stats = synth(events, out, seed, val_rows, test_rows, jobs, force, show_progress=progress)
    typer.echo(f"wrote {out}: GENERATED toy events, rows {json.dumps(stats['rows'])}")


@data_app.command("compare")
def data_compare(
    a: Annotated[Path, typer.Argument(help="A prepared dataset, or a UCI-format HIGGS CSV.")],
    b: Annotated[Path, typer.Argument(help="The dataset to compare A with (same kinds).")],
    out: Annotated[
        Path, typer.Option(help="Directory for compare.md/.json/.png (new, empty or higgsbench's).")
    ],
    max_rows: Annotated[int, typer.Option(help="Read at most N events of each.")] = 200_000,
    train_rows: Annotated[
        int, typer.Option(help="Boosted-trees training rows of each (the rest test).")
    ] = 8_000,
    force: Annotated[
        bool, typer.Option(help="Write into a non-empty OUT that higgsbench did not make.")
    ] = False,
):
    """Compare two datasets: per-feature histograms, KS table, boosted-trees AUC.

    Raw (unstandardised) features are compared: the two-sample Kolmogorov–Smirnov statistic
    per feature over all events and within each class, and the test AUC of gradient-boosted
    trees (fixed seed) on the low-level, high-level and all features of each.
    """
    from higgsbench.data.compare import compare

    result = compare(a, b, out, max_rows=max_rows, train_rows=train_rows, force=force)
    s = result["ks_summary"]["all"]
    auc = {k: result["boosted_trees"][k]["auc"] for k in ("a", "b")}
    generated = (
        " (GENERATED data involved)" if result["a"]["generated"] or result["b"]["generated"] else ""
    )
    typer.echo(
        f"wrote {out}/compare.md{generated}: KS median {s['median']:.3f}, max {s['max']:.3f} "
        f"({s['worst']}); AUC low/high/all A "
        + "/".join(f"{auc['a'][k]:.3f}" for k in ("low", "high", "all"))
        + " B "
        + "/".join(f"{auc['b'][k]:.3f}" for k in ("low", "high", "all"))
    )
