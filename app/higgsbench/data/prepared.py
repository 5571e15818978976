"""Read a prepared dataset (the layout written by data.writer) the same way in every engine.

Standardisation uses the training split's statistics from stats.json, for every split and
every engine: (x - mean) / std, with a zero std treated as 1 so constant columns stay 0.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from higgsbench.common.errors import UsageError
from higgsbench.common.shapes import COUNT, FINITE, NON_NEGATIVE, Items, Maybe, Related, read_record
from higgsbench.data.layout import ALL_FEATURES, FORMAT_NAME, LABEL, SPLITS, feature_columns


def _format_problem(value: str, name: str) -> str | None:
    if value.startswith(f"{FORMAT_NAME}/"):
        return None
    return f"{name} is {value[:40]!r}, expected {FORMAT_NAME}/…"


def _features_problem(value: list, name: str) -> str | None:
    """The 28 HIGGS feature names, each once, in any order (mean and std follow it). The shape
    has counted 28 entries already, so a name twice or a name not HIGGS's leaves one missing."""
    missing = [f for f in ALL_FEATURES if f not in value]
    return f"{name} lacks {missing[0]!r}" if missing else None


# What every engine reads from stats.json: the training split's statistics of each feature,
# in the order of "features", and the row counts of the splits.
STATS_SHAPE = {
    "format": Related(str, _format_problem),
    "features": Related(Items(str, length=len(ALL_FEATURES)), _features_problem),
    "mean": Items(FINITE, length=len(ALL_FEATURES)),
    "std": Items(NON_NEGATIVE, length=len(ALL_FEATURES)),
    "rows": dict.fromkeys(SPLITS, COUNT),
    "generated": Maybe(bool),
}


@dataclass
class Split:
    """Standardised float32 features (rows × features) and 0/1 float32 labels."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def digest(self) -> str:
        """sha256 of the rows as loaded (features, then labels): which rows a rank trained on,
        comparable with a load of the same split and shard anywhere else."""
        digest = hashlib.sha256(np.ascontiguousarray(self.x, dtype=np.float32).tobytes())
        digest.update(np.ascontiguousarray(self.y, dtype=np.float32).tobytes())
        return digest.hexdigest()


class PreparedDataset:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        stats_path = self.root / "stats.json"
        if not stats_path.exists():
            raise UsageError(
                f"{self.root}: not a prepared dataset (no stats.json); make one with "
                "`higgsbench data prepare` or `higgsbench data synth`"
            )
        self.stats = read_record(
            stats_path, STATS_SHAPE, "the stats.json of a prepared dataset (prepare it again)"
        )
        for split in SPLITS:
            if not self.path(split).exists():
                raise UsageError(f"{self.path(split)}: missing; prepare the dataset again")

    def path(self, split: str) -> Path:
        return self.root / f"{split}.parquet"

    @property
    def generated(self) -> bool:
        return bool(self.stats.get("generated", False))

    @property
    def source(self) -> str:
        return str(self.stats.get("source", "unknown"))

    def rows(self, split: str) -> int:
        return int(self.stats["rows"][split])

    def describe(self) -> dict:
        """What the result record says about the data."""
        return {
            "path": str(self.root),
            "source": self.source,
            "generated": self.generated,
            "rows": self.stats["rows"],
        }

    def load(
        self,
        split: str,
        feature_set: str = "all",
        shard: int = 0,
        num_shards: int = 1,
        max_rows: int | None = None,
    ) -> Split:
        """Read one split (or one rank's contiguous shard of it), standardised.

        Shards are equal in size (the remainder rows are left out) so that every rank of a
        synchronous data-parallel job takes the same number of batches.
        """
        columns = feature_columns(feature_set)
        pf = pq.ParquetFile(self.path(split))
        total = pf.metadata.num_rows if max_rows is None else min(max_rows, pf.metadata.num_rows)
        per_shard = total // num_shards
        start, stop = shard * per_shard, (shard + 1) * per_shard
        table = _read_rows(pf, [LABEL, *columns], start, stop)
        x = np.stack([table.column(c).to_numpy() for c in columns], axis=1).astype(
            np.float32, copy=False
        )
        y = table.column(LABEL).to_numpy().astype(np.float32)
        return Split(self.standardise(x, columns), y)

    def standardise(self, x: np.ndarray, columns: list[str]) -> np.ndarray:
        index = [self.stats["features"].index(c) for c in columns]
        mean = np.asarray(self.stats["mean"], dtype=np.float32)[index]
        std = np.asarray(self.stats["std"], dtype=np.float32)[index]
        std[std == 0] = 1.0
        x -= mean
        x /= std
        return x


def _read_rows(pf: pq.ParquetFile, columns: list[str], start: int, stop: int):
    """Rows [start, stop) reading only the row groups that hold them."""
    import pyarrow as pa

    groups, offset, first_offset = [], 0, None
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if offset + n > start and offset < stop:
            groups.append(g)
            if first_offset is None:
                first_offset = offset
        offset += n
    if not groups:
        return pa.table({c: pa.array([], type=pa.float32()) for c in columns})
    table = pf.read_row_groups(groups, columns=columns)
    return table.slice(start - first_offset, stop - start)
