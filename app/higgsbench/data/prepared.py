"""Read a prepared dataset (the layout written by data.writer) the same way in every engine.

Standardisation uses the training split's statistics from stats.json, for every split and
every engine: (x - mean) / std, with a zero std treated as 1 so constant columns stay 0.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from higgsbench.data.writer import SPLITS
from higgsbench.errors import HiggsbenchError
from higgsbench.features import LABEL, feature_columns


@dataclass
class Split:
    """Standardised float32 features (rows × features) and 0/1 float32 labels."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


class PreparedDataset:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        stats_path = self.root / "stats.json"
        if not stats_path.exists():
            raise HiggsbenchError(
                f"{self.root}: not a prepared dataset (no stats.json); make one with "
                "`higgsbench data prepare` or `higgsbench data synth`"
            )
        try:
            self.stats = json.loads(stats_path.read_text())
        except json.JSONDecodeError as exc:
            raise HiggsbenchError(f"{stats_path}: not valid JSON ({exc})") from None
        for split in SPLITS:
            if not self.path(split).exists():
                raise HiggsbenchError(f"{self.path(split)}: missing; prepare the dataset again")

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
