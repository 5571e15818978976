#!/usr/bin/env python3
"""Write the measurement tables of docs/benchmarks.md, and the summary table of README.md,
from the bench.json files under docs/measurements/ (run by `make docs`).

Each table lies between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in its file. This script
rewrites what lies between the markers and leaves everything else (the prose) as it is, so a
figure in a table is never typed by hand: change a bench.json, run the script. With --check it
writes nothing and exits 1, naming the tables, when a file differs from what it would write
(tests/unit/test_docs.py runs it).

Needs only the standard library.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MEASUREMENTS = "docs/measurements"
BENCH_FORMAT = "higgsbench-bench/1"

# The bench.json files each table reads, relative to docs/measurements/. TABLES (at the end)
# says which file and marker each table goes to.
TORCH_KERAS = ("2026-11-27-torch-vs-keras-2core/bench.json",)
SPARK = ("2026-11-27-spark-2core/bench.json",)
# DDP through oneDNN with kept memory, 1 and 2 one-core workers, --repeat 3
DDP = ("2026-11-27-ddp-onednn-2core/bench.json",)
ENGINES = ("2026-11-27-engines-2core/bench.json",)
# float32 through oneDNN against Keras at two batch sizes, and bfloat16 (--repeat 3 each)
CPU = (
    "2026-11-27-cpu-onednn-2core/fp32-b4096/bench.json",
    "2026-11-27-cpu-onednn-2core/fp32-b1024/bench.json",
    "2026-11-27-cpu-onednn-2core/bf16-b4096/bench.json",
)
# the mini-cluster under a tc rate limit, each sweep with its prediction at that rate
NETLIMIT = (
    "2026-11-28-netlimit-2core/1gbit/bench.json",
    "2026-11-27-netlimit-2core/200mbit/bench.json",
    "2026-11-27-netlimit-2core/50mbit/bench.json",
)
GPU = (
    "2026-11-27-gpu-h200/run2-fp32-bench.json",
    "2026-11-27-gpu-h200/run2-tf32-bench.json",
    "2026-11-27-gpu-h200/run1-bf16-bench.json",
)


# --- reading ------------------------------------------------------------------------------


def load(root: Path, name: str) -> dict:
    path = root / MEASUREMENTS / name
    bench = json.loads(path.read_text())
    if bench.get("format") != BENCH_FORMAT or not bench.get("rows"):
        raise SystemExit(f"{path}: not a {BENCH_FORMAT} file with rows")
    bench["source"] = name
    return bench


def row(bench: dict, **match) -> dict:
    (found,) = [r for r in bench["rows"] if all(r[k] == v for k, v in match.items())]
    return found


def engine_rows(bench: dict, engine: str) -> list[dict]:
    return [r for r in bench["rows"] if r["engine"] == engine]


def keras_speedup(bench: dict) -> dict[str, float]:
    """optimizer -> Keras epoch time ÷ torch epoch time (above 1: torch is faster)."""
    return {
        o: row(bench, engine="keras", optimizer=o)["epoch_seconds"]
        / row(bench, engine="torch", optimizer=o)["epoch_seconds"]
        for o in bench["plan"]["optimizers"]
    }


def ddp_ratio(bench: dict) -> dict[str, float]:
    """optimizer -> DDP epoch time on the most nodes ÷ single-process torch's."""
    top = bench["plan"]["nodes"][-1]
    return {
        o: row(bench, engine="spark", nodes=top, optimizer=o)["epoch_seconds"]
        / row(bench, engine="torch", optimizer=o)["epoch_seconds"]
        for o in bench["plan"]["optimizers"]
    }


# --- formatting ---------------------------------------------------------------------------


def table(header: list[str], align: str, rows: list[list[str]]) -> list[str]:
    """A Markdown table; align has one letter per column: l(eft) or r(ight)."""
    rule = ["---:" if a == "r" else "---" for a in align]
    return [f"| {' | '.join(cells)} |" for cells in [header, rule, *rows]]


def pct(fraction: float) -> str:
    value = 100 * fraction
    return f"{value:.1f} %" if value < 10 else f"{value:.0f} %"


def span(values: list[float], fmt: str) -> str:
    low, high = min(values), max(values)
    return f"{low:{fmt}}–{high:{fmt}}" if f"{low:{fmt}}" != f"{high:{fmt}}" else f"{low:{fmt}}"


def machine(bench: dict) -> str:
    if bench["plan"]["device"] == "cuda":
        return bench["rows"][0]["device"].removeprefix("cuda (").removesuffix(")")
    m = bench["machine"]
    return f"{m['processor']}, {m['cpu_count']} CPUs"


def caption(*benches: dict) -> str:
    """Where a table comes from: machine, data, settings, versions, commit, files."""
    first = benches[0]
    plan, rows = first["plan"], first["data"]["rows"]
    kind = "generated" if first.get("generated_data") else "HIGGS"
    commits = ", ".join(
        dict.fromkeys(b["git_sha"][:7] for b in benches if b["git_sha"] != "unknown")
    )
    files = ", ".join(f"[{Path(b['source']).name}](measurements/{b['source']})" for b in benches)
    source = f"Commit {commits}; from {files}" if commits else f"From {files}"
    return (
        f"Machine: {machine(first)}, torch {first['versions']['torch']}. Data: "
        f"{sum(rows.values()):,} {kind} events ({rows['train']:,} train, {rows['val']:,} "
        f"validation, {rows['test']:,} test). Batch {plan['batch_size']}, {plan['epochs']} "
        f"epochs; times are the median epoch. {source}."
    )


# --- the tables ---------------------------------------------------------------------------


def torch_keras(root: Path) -> list[str]:
    bench = load(root, TORCH_KERAS[0])
    rows = []
    for opt, speedup in keras_speedup(bench).items():
        torch, keras = (row(bench, engine=e, optimizer=opt) for e in ("torch", "keras"))
        times = [f"{r['epoch_seconds']:.3f}" for r in (torch, keras)]
        rows.append([opt, *times, f"{speedup:.2f}", pct(torch["fraction_of_peak"])])
    header = ["optimizer", "torch epoch s", "Keras `model.fit` epoch s", "torch ÷ Keras speed"]
    return [caption(bench), "", *table([*header, "torch % of GEMM peak"], "lrrrr", rows)]


def spark(root: Path) -> list[str]:
    bench = load(root, SPARK[0])
    opts, nodes = bench["plan"]["optimizers"], bench["plan"]["nodes"]
    cores = row(bench, engine="spark", nodes=nodes[0], optimizer=opts[0])["cores_per_node"]
    torch = {o: row(bench, engine="torch", optimizer=o) for o in opts}
    sp = {(n, o): row(bench, engine="spark", nodes=n, optimizer=o) for n in nodes for o in opts}
    threads = torch[opts[0]]["cores_per_node"]
    rows = [
        [
            f"torch, 1 process × {threads} threads",
            *(f"{torch[o]['epoch_seconds']:.3f} s" for o in opts),
        ]
    ]
    for n in nodes:
        label = f"spark{' DDP' if n > 1 else ''}, {n} worker{'s' if n > 1 else ''} × {cores} core"
        rows.append([label, *(f"{sp[n, o]['epoch_seconds']:.3f} s" for o in opts)])
    top = nodes[-1]
    ratio = ddp_ratio(bench)
    rows.append(["DDP ÷ single process (target ≤ 1.15)", *(f"{ratio[o]:.2f}" for o in opts)])
    rows.append(
        [
            f"parallel efficiency {top} vs {nodes[0]} worker (target ≥ 85 %)",
            *(pct(sp[top, o]["efficiency"]) for o in opts),
        ]
    )
    return [caption(bench), "", *table(["", *opts], "l" + "r" * len(opts), rows)]


def ddp(root: Path) -> list[str]:
    """Spark DDP on 1 and 2 one-core workers against one process, every figure the median of
    the repeats with their range; efficiency and the DDP ratio paired repeat by repeat."""
    bench = load(root, DDP[0])
    (opt,) = bench["plan"]["optimizers"]
    torch = row(bench, engine="torch", optimizer=opt)
    rows = [
        [
            f"torch, 1 process × {torch['cores_per_node']} threads",
            times(_range(torch, "epoch_seconds")),
            spread(torch),
            "–",
        ]
    ]
    for n in bench["plan"]["nodes"]:
        r = row(bench, engine="spark", nodes=n, optimizer=opt)
        label = f"spark{' DDP' if n > 1 else ''}, {n} worker{'s' if n > 1 else ''} × "
        label += f"{r['cores_per_node']} core"
        eff = _range(r, "efficiency")
        efficiency = f"{pct(eff[0])} ({pct(eff[1])}–{pct(eff[2])})" if n > 1 else "the reference"
        rows.append([label, times(_range(r, "epoch_seconds")), spread(r), efficiency])
    top = row(bench, engine="spark", nodes=bench["plan"]["nodes"][-1], optimizer=opt)
    ratio = ratio_of(top, torch)
    head = ["", "epoch s", "events/s", "parallel efficiency (target ≥ 90 %)"]
    return [
        caption(bench),
        "",
        *table(head, "lrrr", rows),
        "",
        f"{opt}: DDP on {top['nodes']} workers ÷ one process with {torch['cores_per_node']} "
        f"threads, in events/s: {times(ratio)}.",
    ]


def engines(root: Path) -> list[str]:
    bench = load(root, ENGINES[0])
    rows = []
    for engine in bench["plan"]["engines"]:
        for r in engine_rows(bench, engine):
            rows.append(
                [
                    "spark (DDP)" if engine == "spark" else engine,
                    f"{r['nodes']} × {r['cores_per_node']}",
                    r["optimizer"],
                    f"{r['epoch_seconds']:.2f}",
                    f"{r['events_per_second']:,.0f}",
                    f"{r['test_auc']:.4f}",
                ]
            )
    epochs = bench["plan"]["epochs"]
    header = ["engine", "nodes × cores", "optimizer", "epoch s", "events/s"]
    return [caption(bench), "", *table([*header, f"test AUC ({epochs} epochs)"], "lllrrr", rows)]


def _range(r: dict, key: str) -> tuple[float, float, float]:
    """(median, min, max) of a row's repeated figure (one run: the figure thrice)."""
    return r[key], r.get(f"{key}_min", r[key]), r.get(f"{key}_max", r[key])


def ratio_of(a: dict, b: dict, key: str = "events_per_second") -> tuple[float, float, float]:
    """a ÷ b: of the medians, and its worst and best pairing of repeats (a's slowest over
    b's fastest, and the other way round). A target is met only if the worst meets it."""
    am, alo, ahi = _range(a, key)
    bm, blo, bhi = _range(b, key)
    return am / bm, alo / bhi, ahi / blo


def spread(r: dict, key: str = "events_per_second", scale: float = 1e3) -> str:
    median, low, high = (v / scale for v in _range(r, key))
    return f"{median:,.0f} k ({low:,.0f}–{high:,.0f})"


def times(x: tuple[float, float, float]) -> str:
    return f"{x[0]:.2f} ({x[1]:.2f}–{x[2]:.2f})"


def cpu_engines(root: Path) -> list[str]:
    """torch (oneDNN) against Keras in float32, at batch 4096 and 1024, every optimizer."""
    benches = [load(root, name) for name in CPU[:2]]
    rows = []
    for bench in benches:
        for opt in bench["plan"]["optimizers"]:
            torch, keras = (row(bench, engine=e, optimizer=opt) for e in ("torch", "keras"))
            r = ratio_of(torch, keras)
            rows.append(
                [
                    str(bench["plan"]["batch_size"]),
                    opt,
                    spread(torch),
                    spread(keras),
                    times(r),
                    "yes" if r[1] >= 1.2 else "no",
                ]
            )
    header = ["batch", "optimizer", "torch events/s", "Keras events/s", "torch ÷ Keras"]
    return [
        caption(*benches),
        "",
        *table([*header, "≥ 1.2 in the worst repeat"], "llrrrl", rows),
    ]


def cpu_bf16(root: Path) -> list[str]:
    """bfloat16 against float32 (torch) and against Keras's mixed_bfloat16, batch 4096."""
    fp32, bf16 = load(root, CPU[0]), load(root, CPU[2])
    rows = []
    for opt in bf16["plan"]["optimizers"]:
        t16, k16 = (row(bf16, engine=e, optimizer=opt) for e in ("torch", "keras"))
        t32 = row(fp32, engine="torch", optimizer=opt)
        rows.append(
            [
                opt,
                spread(t16),
                spread(t32),
                times(ratio_of(t16, t32)),
                spread(k16),
                times(ratio_of(t16, k16)),
                f"{t16['test_auc'] - t32['test_auc']:+.4f}",
            ]
        )
    header = ["optimizer", "torch bf16 events/s", "torch fp32 events/s", "bf16 ÷ fp32"]
    header += ["Keras bf16 events/s", "torch ÷ Keras (bf16)", "test AUC bf16 − fp32 (torch)"]
    return [caption(bf16, fp32), "", *table(header, "lrrrrrr", rows)]


def netlimit(root: Path) -> list[str]:
    """Spark epochs on the mini-cluster under a tc rate limit, against the scaling model's
    prediction at that rate (bench --predict --bandwidth RATE)."""
    benches = [load(root, name) for name in NETLIMIT]
    rows = []
    for bench in benches:
        p = bench["prediction"]
        for point in p["points"]:
            if "error" not in point:
                continue
            measured = row(bench, engine="spark", nodes=point["nodes"], optimizer=p["optimizer"])
            rows.append(
                [
                    p["bandwidth"],
                    str(point["nodes"]),
                    times(_range(measured, "epoch_seconds")),
                    f"{point['epoch_seconds']:.2f}",
                    f"{point['error']:+.0%}",
                    f"{p['measured_network_bits_per_second'] / 1e6:,.0f}",
                ]
            )
    header = ["tc rate", "workers", "epoch s, measured", "epoch s, predicted", "error"]
    header.append("network the ranks timed, Mbit/s")
    return [caption(*benches), "", *table(header, "lrrrrr", rows)]


def gpu(root: Path) -> list[str]:
    fp32, tf32, bf16 = (load(root, name) for name in GPU)
    rows = []
    for opt in fp32["plan"]["optimizers"]:
        cells = [opt]
        for bench in (fp32, tf32):
            r = row(bench, optimizer=opt)
            cells += [
                f"{r['epoch_seconds']:.3f} s",
                f"{r['events_per_second'] / 1e6:.1f} M",
                pct(r["fraction_of_peak"]),
            ]
        rows.append(cells)
    header = ["optimizer"]
    for p in ("fp32", "tf32"):
        header += [f"{p} epoch", f"{p} events/s", f"% {p.upper()} GEMM"]
    (b,) = bf16["rows"]
    return [
        caption(fp32, tf32, bf16),
        "",
        *table(header, "lrrrrrr", rows),
        "",
        f"BF16, {b['optimizer']} only: {b['epoch_seconds']:.3f} s per epoch, "
        f"{b['events_per_second'] / 1e6:.1f} M events/s.",
    ]


def summary(root: Path) -> list[str]:
    """The README's short table: one line per measurement, its headline figures."""
    tk, en, dp = (load(root, n[0]) for n in (TORCH_KERAS, ENGINES, DDP))
    fp32, tf32 = (load(root, n) for n in GPU[:2])

    def epochs(bench: dict, engine: str, fmt: str = ".2f") -> str:
        return span([r["epoch_seconds"] for r in engine_rows(bench, engine)], fmt) + " s"

    speed = list(keras_speedup(tk).values())
    peak = [100 * r["fraction_of_peak"] for r in engine_rows(tk, "torch")]
    (dp_opt,) = dp["plan"]["optimizers"]
    dp_top = row(dp, engine="spark", nodes=dp["plan"]["nodes"][-1], optimizer=dp_opt)
    dp_eff = _range(dp_top, "efficiency")
    dp_ratio = ratio_of(dp_top, row(dp, engine="torch", optimizer=dp_opt))
    b4096, b1024, bf16 = (load(root, n) for n in CPU)

    def medians(bench: dict) -> list[float]:
        return [
            ratio_of(*(row(bench, engine=e, optimizer=o) for e in ("torch", "keras")))[0]
            for o in bench["plan"]["optimizers"]
        ]

    bf16_gain = [
        ratio_of(row(bf16, engine="torch", optimizer=o), row(b4096, engine="torch", optimizer=o))
        for o in bf16["plan"]["optimizers"]
    ]
    limits = [load(root, n)["prediction"] for n in NETLIMIT]
    rows = [
        [
            f"torch (oneDNN) against Keras, {len(b4096['plan']['optimizers'])} optimizers, "
            f"{b4096['plan']['repeat']} repeats",
            machine(b4096),
            f"torch ÷ Keras {span(medians(b4096), '.2f')} at batch 4096, "
            f"{span(medians(b1024), '.2f')} at batch 1024 (medians)",
        ],
        [
            "bfloat16 against float32, torch, batch 4096",
            machine(bf16),
            f"bf16 ÷ fp32 {span([g[0] for g in bf16_gain], '.2f')} (worst repeat "
            f"{min(g[1] for g in bf16_gain):.2f})",
        ],
        [
            "the scaling model against tc rate limits, 2 workers",
            machine(load(root, NETLIMIT[0])),
            "prediction error "
            + ", ".join(
                f"{q['error']:+.0%} at {p['bandwidth']}"
                for p in limits
                for q in p["points"]
                if q.get("error") is not None and q["nodes"] > 1
            ),
        ],
        [
            f"torch against Keras before oneDNN, {len(tk['plan']['optimizers'])} optimizers, "
            f"batch {tk['plan']['batch_size']}",
            machine(tk),
            f"torch epoch {epochs(tk, 'torch')}, Keras {epochs(tk, 'keras')}; "
            f"torch ÷ Keras speed {span(speed, '.2f')}; torch at {span(peak, '.0f')} % "
            "of GEMM peak",
        ],
        [
            f"Spark DDP, 1 to {dp_top['nodes']} workers × {dp_top['cores_per_node']} core, "
            f"batch {dp['plan']['batch_size']}, {dp['plan']['repeat']} repeats",
            machine(dp),
            f"parallel efficiency {pct(dp_eff[0])} ({pct(dp_eff[1])}–{pct(dp_eff[2])}); "
            f"DDP ÷ one process (events/s) {times(dp_ratio)}",
        ],
        [
            f"{len(en['plan']['engines'])} engines, {en['machine']['cpu_count']} cores in all, "
            f"batch {en['plan']['batch_size']}",
            machine(en),
            "epoch " + ", ".join(f"{e} {epochs(en, e)}" for e in en["plan"]["engines"]),
        ],
        [
            f"one GPU, {fp32['data']['rows']['train'] / 1e6:.1f} M events, "
            f"batch {fp32['plan']['batch_size']}",
            machine(fp32),
            f"epoch tf32 {epochs(tf32, 'torch', '.3f')}, fp32 {epochs(fp32, 'torch', '.3f')} "
            f"({len(fp32['plan']['optimizers'])} optimizers)",
        ],
    ]
    return table(["measurement", "machine", "result"], "lll", rows)


# (file, marker name, writer)
TABLES: list[tuple[str, str, Callable[[Path], list[str]]]] = [
    ("README.md", "bench-summary", summary),
    ("docs/benchmarks.md", "cpu-engines", cpu_engines),
    ("docs/benchmarks.md", "cpu-bf16", cpu_bf16),
    ("docs/benchmarks.md", "torch-vs-keras", torch_keras),
    ("docs/benchmarks.md", "netlimit", netlimit),
    ("docs/benchmarks.md", "ddp", ddp),
    ("docs/benchmarks.md", "spark", spark),
    ("docs/benchmarks.md", "engines", engines),
    ("docs/benchmarks.md", "gpu", gpu),
]


def sources() -> set[str]:
    """Every bench.json the tables read (relative to docs/measurements/)."""
    return {*CPU, *NETLIMIT, *DDP, *TORCH_KERAS, *SPARK, *ENGINES, *GPU}


def render(root: Path) -> dict[str, str]:
    """file -> its text with every table rewritten."""
    out: dict[str, str] = {}
    for file, name, writer in TABLES:
        text = out.get(file) or (root / file).read_text()
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        start, stop = text.find(begin), text.find(end)
        if text.count(begin) != 1 or text.count(end) != 1 or stop < start:
            raise SystemExit(f"{file}: expected one {begin} … {end} block")
        note = "<!-- generated by scripts/docs-tables.py from docs/measurements: do not edit -->"
        block = "\n".join([begin, note, *writer(root), end])
        out[file] = text[:start] + block + text[stop + len(end) :]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    parser.add_argument("--root", type=Path, default=REPO, help="the repository")
    args = parser.parse_args(argv)
    stale = []
    for file, text in render(args.root).items():
        path = args.root / file
        if path.read_text() == text:
            continue
        stale.append(file)
        if not args.check:
            path.write_text(text)
    if args.check and stale:
        print(f"stale: {', '.join(stale)}: run `make docs` (scripts/docs-tables.py)")
        return 1
    print(f"{'updated' if stale else 'up to date'}: {', '.join(stale) or 'every table'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
