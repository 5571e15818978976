"""Write the prepared dataset layout every engine reads: Parquet train|val|test + stats.json.

One writer serves `data prepare` (real HIGGS) and `data synth` (toy Monte Carlo), so both
produce the same layout. Rows arrive as a stream of chunks in file order. The last
``test_rows`` rows become the test set and the ``val_rows`` before them the validation set,
as in Baldi et al. (2014); since the stream's length is unknown until it ends, the newest
``val_rows + test_rows`` rows are held back in a bounded buffer and everything older goes
straight to the training file. Standardisation statistics come from training rows only.

Everything is written under a temporary directory beside the destination and renamed into
place when complete, so an interrupted or failed run leaves nothing half written. The
destination is checked before anything is read: ``--force`` replaces only a dataset this
writer made (its stats.json says so), never an ordinary directory, a file, or a directory
that holds the input being read.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from higgsbench.atomic import rename_noreplace
from higgsbench.data.csv_source import Chunk
from higgsbench.errors import HiggsbenchError
from higgsbench.features import ALL_FEATURES, HIGH_LEVEL, LABEL, LOW_LEVEL
from higgsbench.paths import make_dirs, new_dir, remove_made

FORMAT_NAME = "higgsbench-prepared"  # stats.json's "format" starts so: a prepared dataset
FORMAT = f"{FORMAT_NAME}/1"
SPLITS = ("train", "val", "test")
# What a prepared dataset's directory holds; --force replaces these and nothing else.
DATASET_FILES = (*(f"{split}.parquet" for split in SPLITS), "stats.json")
DEFAULT_HELD_OUT_ROWS = 500_000  # Baldi et al. 2014: 500 k validation, 500 k test events
MAX_HELD_OUT_FRACTION = 0.10  # small inputs: at most 10 % each for validation and test
ROW_GROUP_ROWS = 65_536  # Spark ranks read whole row groups of their shard

SCHEMA = pa.schema(
    [pa.field(LABEL, pa.float32())] + [pa.field(name, pa.float32()) for name in ALL_FEATURES]
)


@dataclass
class SplitPlan:
    val_rows: int = DEFAULT_HELD_OUT_ROWS
    test_rows: int = DEFAULT_HELD_OUT_ROWS

    def sizes(self, total: int) -> tuple[int, int, int]:
        """(train, val, test) row counts for a stream of ``total`` rows, 10 % caps applied."""
        cap = int(total * MAX_HELD_OUT_FRACTION)
        val, test = min(self.val_rows, cap), min(self.test_rows, cap)
        return total - val - test, val, test


class _RunningStats:
    """Per-feature mean and standard deviation over many chunks (Chan et al.'s parallel update)."""

    def __init__(self, width: int):
        self.n = 0
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)

    def add(self, x: np.ndarray) -> None:
        # in slices: float64 temporaries of a whole large chunk would dominate peak memory
        for start in range(0, len(x), ROW_GROUP_ROWS):
            self._add(x[start : start + ROW_GROUP_ROWS])

    def _add(self, x: np.ndarray) -> None:
        if len(x) == 0:
            return
        x = x.astype(np.float64)
        n_b, mean_b = len(x), x.mean(axis=0)
        m2_b = ((x - mean_b) ** 2).sum(axis=0)
        delta, n = mean_b - self.mean, self.n + n_b
        self.mean = self.mean + delta * n_b / n
        self.m2 = self.m2 + m2_b + delta**2 * self.n * n_b / n
        self.n = n

    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.n - 1, 1))


class _SplitFile:
    def __init__(self, path: Path):
        self.writer = pq.ParquetWriter(path, SCHEMA, compression="zstd")
        self.rows = 0
        self.signal = 0

    def write(self, chunk: Chunk) -> None:
        for start in range(0, len(chunk), ROW_GROUP_ROWS):
            labels = chunk.labels[start : start + ROW_GROUP_ROWS]
            feats = chunk.features[start : start + ROW_GROUP_ROWS]
            arrays = [pa.array(labels)] + [pa.array(feats[:, i]) for i in range(feats.shape[1])]
            self.writer.write_table(pa.Table.from_arrays(arrays, schema=SCHEMA))
            self.rows += len(labels)
            self.signal += int(labels.sum())

    def close(self) -> None:
        self.writer.close()


def write_prepared(
    chunks: Iterable[Chunk],
    out: str | os.PathLike,
    plan: SplitPlan,
    provenance: dict,
    force: bool = False,
    inputs: Iterable[str | os.PathLike] = (),
) -> dict:
    """Consume ``chunks`` and write the prepared layout at ``out``; return the stats record.

    ``provenance`` says where the rows came from; it must carry ``generated`` (bool) so that
    every downstream output can say whether it ran on real or generated data. ``inputs`` are
    the files the chunks are read from: ``out`` may not be or hold any of them.
    """
    out = Path(out)
    check_destination(out, force, inputs)
    if out.is_symlink():
        out = out.resolve()  # replace the dataset the link points to, and keep the link
    made = make_dirs(out.parent)
    tmp = None
    try:
        tmp = new_dir(out.parent, f".{out.name}.tmp-")  # the umask's mode, as for any dataset
        stats = _write_splits(chunks, tmp, plan, provenance)
        _replace_dir(tmp, out, force)
        return stats
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        remove_made(made)
        raise


def check_destination(out: Path, force: bool, inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse an ``out`` that cannot be written without losing something."""
    target = out.resolve()
    for src in inputs:
        for path in {Path(os.path.abspath(src)), Path(src).resolve()}:
            if target == path or target in path.parents:
                raise HiggsbenchError(
                    f"--out {out}: is or holds the input {src}, which writing there would delete; "
                    f"choose an --out outside {path.parent}"
                )
    if not (out.exists() or out.is_symlink()):
        return
    if not out.is_dir():
        raise HiggsbenchError(
            f"--out {out}: exists and is not a directory, so it is not a prepared dataset; "
            "choose another --out"
        )
    if not is_prepared(out):
        raise HiggsbenchError(
            f"--out {out}: already exists and is not a prepared dataset (no stats.json of "
            f"format {FORMAT}); --force replaces only a prepared dataset: choose another --out"
        )
    if not force:
        raise HiggsbenchError(
            f"{out}: already exists; choose another --out or pass --force to replace it"
        )
    foreign = foreign_entries(out)
    if foreign:
        raise HiggsbenchError(
            f"--out {out}: holds {', '.join(foreign[:5])}{' …' if len(foreign) > 5 else ''}, "
            "which is not part of the prepared dataset; --force replaces only the dataset's "
            f"own files ({', '.join(DATASET_FILES)}): move the rest or choose another --out"
        )


def foreign_entries(out: Path) -> list[str]:
    """What in a prepared dataset's directory the writer did not put there (a user's notes,
    a runs/ folder), directories marked with a slash."""
    return sorted(
        p.name + ("/" if p.is_dir() else "") for p in out.iterdir() if p.name not in DATASET_FILES
    )


def is_prepared(path: Path) -> bool:
    """Whether ``path`` holds a dataset this writer made: its stats.json names the format."""
    try:
        stats = json.loads((path / "stats.json").read_text())
    except (OSError, ValueError):  # missing, unreadable, not JSON or not UTF-8
        return False
    fmt = stats.get("format") if isinstance(stats, dict) else None
    return isinstance(fmt, str) and fmt.startswith(f"{FORMAT_NAME}/")


def _write_splits(chunks: Iterable[Chunk], tmp: Path, plan: SplitPlan, provenance: dict) -> dict:
    held_capacity = plan.val_rows + plan.test_rows
    held: deque[Chunk] = deque()
    held_rows = 0
    train = _SplitFile(tmp / "train.parquet")
    running = _RunningStats(len(ALL_FEATURES))

    def to_train(chunk: Chunk) -> None:
        train.write(chunk)
        running.add(chunk.features)

    for chunk in chunks:
        held.append(chunk)
        held_rows += len(chunk)
        # Release the oldest rows to training once more than the held-out sets are buffered.
        while held_rows - len(held[0]) >= held_capacity:
            held_rows -= len(held[0])
            to_train(held.popleft())
        overflow = held_rows - held_capacity
        if overflow > 0:
            first = held[0]
            to_train(Chunk(first.labels[:overflow], first.features[:overflow]))
            held[0] = Chunk(first.labels[overflow:], first.features[overflow:])
            held_rows -= overflow

    total = train.rows + held_rows
    n_train, n_val, n_test = plan.sizes(total)
    if n_train <= 0 or n_val <= 0 or n_test <= 0:
        raise HiggsbenchError(
            f"only {total} rows: too few to split into train, validation and test sets "
            "(at least 10 rows are needed)"
        )

    def take(n: int):
        """The next ``n`` held rows, chunk by chunk, in order."""
        while n > 0:
            first = held.popleft()
            if len(first) > n:
                held.appendleft(Chunk(first.labels[n:], first.features[n:]))
                first = Chunk(first.labels[:n], first.features[:n])
            n -= len(first)
            yield first

    for chunk in take(held_rows - n_val - n_test):
        to_train(chunk)
    train.close()
    counts = {"train": train.rows}
    signal = {"train": train.signal}
    for name, n in (("val", n_val), ("test", n_test)):
        split = _SplitFile(tmp / f"{name}.parquet")
        for chunk in take(n):
            split.write(chunk)
        split.close()
        counts[name], signal[name] = split.rows, split.signal

    std = running.std()
    if np.any(std == 0):
        flat = [f for f, s in zip(ALL_FEATURES, std, strict=True) if s == 0]
        print(f"warning: features constant in the training split: {', '.join(flat)}")
    stats = {
        "format": FORMAT,
        "label": LABEL,
        "features": ALL_FEATURES,
        "low_level": LOW_LEVEL,
        "high_level": HIGH_LEVEL,
        "mean": running.mean.tolist(),
        "std": std.tolist(),
        "rows": counts,
        "signal_rows": signal,
        **provenance,
    }
    (tmp / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def _replace_dir(tmp: Path, out: Path, force: bool) -> None:
    """Move a finished directory into place. Whatever is at ``out`` now is checked again (it
    may have appeared while the rows were read): only a prepared dataset is replaced, and only
    with ``force``. The old dataset is renamed aside first and put back if the new one cannot
    follow it; its own files are deleted once the new one is in place."""
    try:
        rename_noreplace(tmp, out)
        return
    except FileExistsError:
        pass
    try:
        check_destination(out, force)
    except HiggsbenchError as exc:
        raise HiggsbenchError(
            f"{exc} (found when the new dataset was ready to move in: it appeared or changed "
            "while this command ran; nothing was replaced, the new dataset was not kept)"
        ) from None
    old = out.with_name(f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
    out.rename(old)
    try:
        rename_noreplace(tmp, out)
    except BaseException:
        old.rename(out)
        raise
    _remove_dataset(old, out)


def _remove_dataset(old: Path, out: Path) -> None:
    """Delete a replaced dataset: its own files, then its directory. What cannot be removed
    (something that appeared in it meanwhile, a permission) stays where it is, and a warning
    says where: the new dataset is complete and in place, so this is no failure."""
    try:
        for name in DATASET_FILES:
            (old / name).unlink(missing_ok=True)
        old.rmdir()
    except OSError as exc:
        print(
            f"warning: {out} was replaced, but the old dataset moved to {old} could not be "
            f"removed ({exc}); delete it by hand",
            file=sys.stderr,
        )
