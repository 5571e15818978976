"""Limits instead of allocator errors: settings the machine cannot honour,
inputs that lead nowhere and files that would not fit are refused with exit status 2 and one
line naming the option or file, before anything is written, never as an internal error."""

from __future__ import annotations

import contextlib
import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from higgsbench.common.limits import cpus
from higgsbench.core.network import NetworkSpec
from higgsbench.data.csv_source import MAX_LINE_BYTES
from tests.helpers import refused, run_cli


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# ---------------------------------------------------------------- run settings


@pytest.mark.parametrize("command", ["train", "bench"])
def test_more_threads_than_cpus_are_refused(toy_dataset, tmp_path, command):
    too_many = cpus() + 1
    proc = run_cli(command, "--data", toy_dataset, "--out", tmp_path / "r", "--threads", too_many)
    message = refused(proc, f"--threads {too_many}", f"the {cpus()} CPUs")
    assert f"at most {cpus()}" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command, seed",
    [("train", "-1"), ("train", str(2**32)), ("bench", str(10**30)), ("synth", "-1")],
)
def test_a_seed_outside_32_bits_is_refused(toy_dataset, tmp_path, command, seed):
    out = tmp_path / "r"
    if command == "synth":
        proc = run_cli("data", "synth", "--events", 100, "--out", out, "--seed", seed)
    else:
        proc = run_cli(command, "--data", toy_dataset, "--out", out, "--seed", seed)
    refused(proc, f"--seed {seed}", "from 0 to 4294967295")
    assert list(tmp_path.iterdir()) == []


def test_synth_takes_every_seed_of_32_bits_and_no_other(tmp_path):
    last = ["--seed", 2**32 - 1]
    run_cli("data", "synth", "--events", 100, "--out", tmp_path / "last", *last, check=True)
    proc = run_cli("data", "synth", "--events", 100, "--out", tmp_path / "over", "--seed", 2**32)
    refused(proc, f"--seed {2**32}")
    assert not (tmp_path / "over").exists()


@pytest.mark.parametrize(
    "engine, needs",
    [
        ("torch", "training a network"),  # trained here: weights, gradients, Adam, a batch
        ("spark", "the weights of a network"),  # the driver still receives the weights
    ],
)
def test_a_network_too_big_for_memory_is_refused(toy_dataset, tmp_path, engine, needs):
    """100 000 units × 50 layers is terabytes: refused naming --width and --layers before
    anything is made. Before: the allocator's RuntimeError, an internal error (exit 1),
    after the run directory was made and the GEMM peak measured."""
    network = ["--width", 100_000, "--layers", 50]
    where = ["--engine", engine, "--master", "spark://127.0.0.1:7077"]
    proc = run_cli("train", "--data", toy_dataset, "--out", tmp_path / "r", *where, *network)
    message = refused(proc, "--width 100000 --layers 50", f"{needs} of 490,007,900,001 param")
    assert "TiB of memory" in message and "is available" in message
    assert list(tmp_path.iterdir()) == []


def test_the_memory_estimate_is_of_the_whole_training():
    spec = NetworkSpec(inputs=28, layers=2, width=10)
    params = spec.parameters()  # 28·10+10 + 10·10+10 + 10+1 = 411
    assert params == 411
    # weights, gradients, Adam's two moments; a batch of 8 keeps 28 + 2·10 + 1 values twice
    assert spec.training_bytes(8, "adam") == 4 * (4 * params + 2 * 8 * 49)
    assert spec.training_bytes(8, "sgd") == 4 * (2 * params + 2 * 8 * 49)


# ---------------------------------------------------------------- symbolic link loops


@pytest.fixture
def loops(tmp_path) -> Path:
    """A folder holding ``self`` (a link to itself) and ``a`` and ``b`` (links to each other)."""
    folder = tmp_path / "links"
    folder.mkdir()
    (folder / "self").symlink_to("self")
    (folder / "a").symlink_to("b")
    (folder / "b").symlink_to("a")
    return folder


@pytest.mark.parametrize(
    "args, loop",
    [
        (["data", "prepare", "{self}", "--out", "{out}"], "self"),
        (["data", "prepare", "{a}", "--out", "{out}"], "a"),
        (["train", "--data", "{self}", "--out", "{out}"], "self"),
        (["bench", "--data", "{a}", "--out", "{out}"], "a"),
        (["data", "compare", "{self}", "{toy}", "--out", "{out}"], "self"),
        (["data", "compare", "{toy}", "{self}/HIGGS.csv", "--out", "{out}"], "self/HIGGS.csv"),
    ],
)
def test_a_symlink_loop_as_input_is_named(toy_dataset, tmp_path, loops, args, loop):
    """Before: `data prepare` an internal error (pathlib's RuntimeError), `data compare`
    "no such file", `train` and `bench` "not a prepared dataset"."""
    names = {"self": loops / "self", "a": loops / "a", "toy": toy_dataset, "out": tmp_path / "o"}
    before = _tree(tmp_path)
    proc = run_cli(*(arg.format(**names) for arg in args))
    refused(proc, f"{loops / loop}: a loop of symbolic links")
    assert _tree(tmp_path) == before


# ---------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    "address, why",
    [
        ("http://[::1", "Invalid IPv6 URL"),
        ("ftp:/x", "expected http://HOST/… or https://HOST/…"),
        ("HIGGS.csv.gz", "expected http://HOST/…"),
        ("http://", "no host"),
        ("http://127.0.0.1:99999/HIGGS.csv.gz", "Port out of range"),
        ("http://exa mple.org/HIGGS.csv.gz", "spaces"),
    ],
)
def test_fetch_refuses_an_address_that_does_not_parse(tmp_path, address, why):
    out = tmp_path / "data" / "HIGGS.csv.gz"
    proc = run_cli("data", "fetch", "--url", address, "--out", out, "--retries", 0)
    refused(proc, f"--url {address!r}", why)
    assert list(tmp_path.iterdir()) == [], "fetch made --out's folder for nothing"


@pytest.mark.parametrize("command", ["train", "bench"])
def test_track_refuses_an_address_that_does_not_parse(toy_dataset, tmp_path, command):
    proc = run_cli(command, "--data", toy_dataset, "--out", tmp_path / "r", "--track", "http://[x")
    refused(proc, "--track 'http://[x'", "Invalid IPv6 URL")
    assert list(tmp_path.iterdir()) == []


def test_a_password_in_an_address_is_not_shown(tmp_path):
    address = "http://user:hunter2@[::1/HIGGS.csv.gz"
    proc = run_cli("data", "fetch", "--url", address, "--out", tmp_path / "HIGGS.csv.gz")
    message = refused(proc, "--url", "user:***@")
    assert "hunter2" not in message


# ---------------------------------------------------------------- a full disk


@contextlib.contextmanager
def _small_disk(path: Path, kib: int):
    """A real file system of ``kib`` KiB at ``path`` (tmpfs: needs root, as in CI)."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def _checkpoint_and_half_a_model_kib() -> int:
    """Room for the first epoch's checkpoint (weights and Adam's two moments, float32) and
    for half of model.pt (the weights): the disk fills while model.pt is written."""
    params = NetworkSpec(inputs=28).parameters()
    return (4 * params * 3 + 4 * params // 2) // 1024 + 16


@pytest.mark.parametrize(
    "kib, full_at, left",
    [
        (1024, "checkpoint.pt", []),  # the first checkpoint does not fit: nothing stays
        # model.pt does not fit: the checkpoint stays for --resume, no partial model.pt
        (_checkpoint_and_half_a_model_kib(), "model.pt", ["checkpoint.pt", "config.json"]),
    ],
)
def test_a_full_disk_during_torch_save_is_named(toy_dataset, tmp_path, kib, full_at, left):
    """Before: torch's "unexpected pos …" RuntimeError, an internal error (exit 1), and a
    partial model.pt left in the run directory."""
    with _small_disk(tmp_path / "disk", kib) as disk:
        run = disk / "run"
        proc = run_cli(
            "train", "--data", toy_dataset, "--out", run, "--epochs", 1, "--batch-size", 256
        )
        refused(proc, f"{run / full_at}: the disk is full")
        files = [p.name for p in sorted(run.iterdir())] if run.exists() else []
        assert [name for name in files if name != ".higgsbench-output"] == left, files


# ---------------------------------------------------------------- CSV lines


def _rows(higgs_sample, n: int) -> list[bytes]:
    with gzip.open(higgs_sample, "rb") as f:
        return f.read().split(b"\r\n")[:n]


def _padded(row: bytes, length: int) -> bytes:
    """``row`` with its second feature written with as many digits as make it ``length``
    bytes long: still a valid row, only its length is at fault."""
    fields = row.split(b",")
    pad = length - (len(row) - len(fields[2])) - 3
    fields[2] = b"0." + b"0" * pad + b"1"
    return b",".join(fields)


def test_a_line_longer_than_the_bound_is_refused_naming_it(higgs_sample, tmp_path):
    """A row of exactly MAX_LINE_BYTES is read; one byte more is refused, naming its line.
    Before: pyarrow took any line shorter than its 4 MiB block."""
    rows = _rows(higgs_sample, 3000)
    src = tmp_path / "long.csv"
    for length, out in ((MAX_LINE_BYTES, "p"), (MAX_LINE_BYTES + 1, "q")):
        src.write_bytes(b"\n".join([*rows[:1500], _padded(rows[1500], length), *rows[1501:]]))
        proc = run_cli("data", "prepare", src, "--out", tmp_path / out)
    assert (tmp_path / "p" / "stats.json").exists(), "a row of MAX_LINE_BYTES was refused"
    refused(proc, f"{src}, line 1501: the line is longer than 1 MiB")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.csv", "p"]


def _peak_rss_mib(args: list, stderr: Path) -> tuple[int, float]:
    """Run `python -m higgsbench ARGS` and return (its exit status, its peak RSS in MiB)."""
    with open(stderr, "wb") as err:
        child = subprocess.Popen(
            [sys.executable, "-m", "higgsbench", *map(str, args)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "HIGGSBENCH_PROGRESS": "0"},
        )
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_maxrss / 1024  # Linux reports KiB


def test_a_huge_line_is_refused_in_bounded_memory(higgs_sample, tmp_path):
    """A 256 MiB line (a file without line ends looks the same) is refused while it streams
    past: reading it costs no more memory than a 2 MiB one. Before: pyarrow refused the
    block ("straddling object…") and the slow path read the whole line to explain it, 900 MB
    at its peak for a 200 MB line, and the message named the line before it."""
    rows = _rows(higgs_sample, 3000)
    peaks = {}
    for mib in (2, 256):
        src = tmp_path / f"line-{mib}.csv"
        with open(src, "wb") as f:
            f.write(b"\n".join(rows[:1500]) + b"\n" + rows[1500] + b",0.")
            for _ in range(mib):
                f.write(b"0" * (1 << 20))
            f.write(b"1\n" + b"\n".join(rows[1501:]) + b"\n")
        status, peaks[mib] = _peak_rss_mib(
            ["data", "prepare", src, "--out", tmp_path / "p"], tmp_path / "err"
        )
        message = (tmp_path / "err").read_text()
        assert status == 2 and f"{src}, line 1501: the line is longer" in message, message
        src.unlink()
    assert peaks[256] < peaks[2] + 64, f"peak RSS in MiB by line length: {peaks}"


def test_a_full_width_digit_keeps_its_line_number(higgs_sample, tmp_path):
    """'１' (U+FF11) matched the slow path's \\d and Python's float() took it for 1: the row
    passed there, and the message fell back to "could not be read … after line 0"."""
    rows = _rows(higgs_sample, 3000)
    fields = rows[1500].split(b",")
    fields[3] = "１".encode()
    rows[1500] = b",".join(fields)
    src = tmp_path / "wide.csv"
    src.write_bytes(b"\n".join(rows) + b"\n")
    proc = run_cli("data", "prepare", src, "--out", tmp_path / "p")
    refused(proc, f"{src}, line 1501: column 'lepton_phi' is '１', not a number")
    assert _tree(tmp_path) == ["wide.csv"]
