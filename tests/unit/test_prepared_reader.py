"""Reading a prepared dataset: each rank's shard is exactly its rows of the split, across row
groups; --rows caps the split; what the record says about the data; a folder that is not a
prepared dataset is named with what to do."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from higgsbench.common.errors import UsageError
from higgsbench.data import writer
from higgsbench.data.csv_source import Chunk
from higgsbench.data.layout import LABEL, feature_columns
from higgsbench.data.prepared import PreparedDataset
from higgsbench.data.writer import SplitPlan, write_prepared

ROWS, GROUP = 1_000, 64  # row groups of 64 rows: shards begin and end inside them


@pytest.fixture
def prepared(tmp_path, monkeypatch):
    """1 000 rows, 800 for training, whose first feature is the row's number."""
    monkeypatch.setattr(writer, "ROW_GROUP_ROWS", GROUP)
    rng = np.random.default_rng(5)
    labels = (rng.uniform(size=ROWS) < 0.5).astype(np.float32)
    features = rng.normal(size=(ROWS, 28)).astype(np.float32)
    features[:, 0] = np.arange(ROWS)
    chunks = [Chunk(labels[i : i + 300], features[i : i + 300]) for i in range(0, ROWS, 300)]
    out = tmp_path / "p"
    write_prepared(chunks, out, SplitPlan(val_rows=100, test_rows=100), {"source": "hand"})
    return PreparedDataset(out), labels


def _row_numbers(data: PreparedDataset, split) -> np.ndarray:
    """The first feature unstandardised: which rows of the input a split holds."""
    mean, std = data.stats["mean"][0], data.stats["std"][0]
    return np.rint(split.x[:, 0].astype(np.float64) * std + mean).astype(int)


@pytest.mark.parametrize("num_shards", [1, 3, 7])
def test_each_shard_is_exactly_its_ranks_rows_of_the_split(prepared, num_shards):
    data, labels = prepared
    per = 800 // num_shards  # equal shards: the remainder is left out
    for rank in range(num_shards):
        shard = data.load("train", shard=rank, num_shards=num_shards)
        rows = np.arange(rank * per, (rank + 1) * per)
        np.testing.assert_array_equal(_row_numbers(data, shard), rows)
        np.testing.assert_array_equal(shard.y, labels[rows])
        assert shard.x.dtype == np.float32 and shard.y.dtype == np.float32
        assert shard.x.shape == (per, 28)


def test_the_held_out_splits_and_a_cap_on_rows(prepared):
    data, labels = prepared
    test = data.load("test")
    np.testing.assert_array_equal(_row_numbers(data, test), np.arange(900, 1000))
    np.testing.assert_array_equal(test.y, labels[900:])
    capped = data.load("train", max_rows=130, shard=1, num_shards=2)  # rows 65…129
    np.testing.assert_array_equal(_row_numbers(data, capped), np.arange(65, 130))
    # a cap above the split: the split, shared as without a cap
    above = data.load("val", max_rows=5000, shard=1, num_shards=2)
    np.testing.assert_array_equal(_row_numbers(data, above), np.arange(850, 900))
    empty = data.load("val", shard=2, num_shards=200)  # fewer rows than shards: none each
    assert empty.x.shape == (0, 28) and len(empty) == 0


def test_what_the_record_says_about_the_data(prepared):
    data, _ = prepared
    assert data.rows("train") == 800 and data.rows("val") == data.rows("test") == 100
    assert data.source == "hand" and data.generated is False
    assert data.describe() == {
        "path": str(data.root),
        "source": "hand",
        "generated": False,
        "rows": {"train": 800, "val": 100, "test": 100},
    }


def test_a_folder_that_is_not_a_prepared_dataset_is_named(prepared, tmp_path):
    data, _ = prepared
    with pytest.raises(UsageError) as refused:
        PreparedDataset(tmp_path)
    assert str(refused.value) == (
        f"{tmp_path}: not a prepared dataset (no stats.json); make one with "
        "`higgsbench data prepare` or `higgsbench data synth`"
    )
    (data.root / "val.parquet").unlink()
    with pytest.raises(UsageError, match=r"val\.parquet: missing; prepare the dataset again"):
        PreparedDataset(data.root)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s: s.update(format="other/1"), "expected higgsbench"),
        (lambda s: s["features"].__setitem__(3, "jet9_pt"), "lacks 'missing_energy_magnitude'"),
        (lambda s: s["features"].__setitem__(3, s["features"][4]), "lacks"),
        (lambda s: s["std"].__setitem__(0, -1.0), "std"),
        (lambda s: s["rows"].pop("val"), "val"),
        (lambda s: s.update(format="x" * 50), f"is {'x' * 40!r}, expected higgsbench-prepared/"),
    ],
)
def test_a_stats_json_that_no_engine_could_read_is_refused(prepared, change, problem):
    data, _ = prepared
    stats = json.loads((data.root / "stats.json").read_text())
    change(stats)
    (data.root / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(UsageError, match=r"stats\.json") as refused:
        PreparedDataset(data.root)
    assert problem in str(refused.value)
    assert "the stats.json of a prepared dataset (prepare it again)" in str(refused.value)


def test_a_shards_digest_names_its_rows(prepared):
    data, _ = prepared
    one, again, other = (data.load("train", shard=r, num_shards=3) for r in (1, 1, 0))
    assert one.digest() == again.digest() != other.digest()
    expected = hashlib.sha256(one.x.astype("<f4").tobytes() + one.y.astype("<f4").tobytes())
    assert one.digest() == expected.hexdigest()
    one.y[5] = 1.0 - one.y[5]  # one label flipped: another set of rows
    assert one.digest() != again.digest()


def test_a_shard_reads_only_the_row_groups_and_columns_that_hold_it(prepared, monkeypatch):
    data, _ = prepared
    asked = []
    real = pq.ParquetFile.read_row_groups

    def recorded(self, groups, columns=None, **kwargs):
        asked.append((list(groups), columns))
        return real(self, groups, columns=columns, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", recorded)
    meta = pq.ParquetFile(data.path("train")).metadata
    bounds = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
    edge = int(bounds[2])  # where group 2 begins
    data.load("train", "low", max_rows=edge)  # rows [0, edge): groups 0 and 1, not 2
    assert asked == [([0, 1], [LABEL, *feature_columns("low")])]
    asked.clear()
    data.load("train", shard=1, num_shards=2, max_rows=2 * edge)  # rows [edge, 2·edge)
    groups = asked[0][0]
    assert groups[0] == 2  # group 1 ends where the shard begins: not read
    assert groups == [g for g in range(len(bounds) - 1) if bounds[g] < 2 * edge <= bounds[-1]
                      and bounds[g + 1] > edge]  # fmt: skip


def test_standardising_is_float32_arithmetic_with_the_training_statistics(prepared):
    data, _ = prepared
    raw = pq.read_table(data.path("val")).to_pandas()
    columns = list(data.stats["features"])
    mean = np.asarray(data.stats["mean"], dtype=np.float32)
    std = np.asarray(data.stats["std"], dtype=np.float32)
    expected = (raw[columns].to_numpy(np.float32) - mean) / std
    loaded = data.load("val").x
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, expected)  # bit for bit: no float64 detour
