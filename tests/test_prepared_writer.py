"""The one writer behind `prepare` and `synth`: split sizes, order, statistics, atomicity."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from higgsbench.data.csv_source import Chunk
from higgsbench.data.prepared import PreparedDataset
from higgsbench.data.writer import SplitPlan, write_prepared
from higgsbench.errors import HiggsbenchError
from higgsbench.features import ALL_FEATURES, LABEL


def _stream(n: int, sizes: list[int], seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = (rng.uniform(size=n) < 0.5).astype(np.float32)
    feats = rng.normal(size=(n, 28)).astype(np.float32) * np.arange(1, 29, dtype=np.float32)
    feats[:, 0] = np.arange(n)  # row number, to check order
    chunks, start, i = [], 0, 0
    while start < n:
        size = sizes[i % len(sizes)]
        chunks.append(Chunk(labels[start : start + size], feats[start : start + size]))
        start += size
        i += 1
    return chunks, labels, feats


@pytest.mark.parametrize("sizes", [[1], [7], [1000], [3, 50, 11]])
def test_tail_becomes_val_and_test_in_order(tmp_path, sizes):
    chunks, labels, feats = _stream(500, sizes)
    stats = write_prepared(
        chunks, tmp_path / "p", SplitPlan(val_rows=30, test_rows=20), {"generated": True}
    )
    assert stats["rows"] == {"train": 450, "val": 30, "test": 20}
    order = np.concatenate(
        [
            pq.read_table(tmp_path / "p" / f"{s}.parquet").column(ALL_FEATURES[0]).to_numpy()
            for s in ("train", "val", "test")
        ]
    )
    np.testing.assert_array_equal(order, np.arange(500))
    # statistics from the training rows only
    np.testing.assert_allclose(stats["mean"], feats[:450].astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(
        stats["std"], feats[:450].astype(np.float64).std(0, ddof=1), rtol=1e-6
    )
    assert stats["signal_rows"]["test"] == int(labels[480:].sum())


def test_held_out_sets_are_capped_at_ten_percent(tmp_path):
    chunks, _, _ = _stream(1000, [64])
    stats = write_prepared(chunks, tmp_path / "p", SplitPlan(), {"generated": True})
    assert stats["rows"] == {"train": 800, "val": 100, "test": 100}


def test_existing_output_is_kept_unless_forced(tmp_path):
    out = tmp_path / "p"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    chunks, _, _ = _stream(100, [10])
    with pytest.raises(HiggsbenchError, match="already exists"):
        write_prepared(chunks, out, SplitPlan(), {"generated": True})
    assert (out / "keep.txt").read_text() == "mine"
    write_prepared(chunks, out, SplitPlan(), {"generated": True}, force=True)
    assert not (out / "keep.txt").exists()
    assert json.loads((out / "stats.json").read_text())["rows"]["test"] == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_loader_standardises_with_training_statistics_and_shards_equally(tmp_path):
    chunks, labels, feats = _stream(1000, [100])
    write_prepared(
        chunks, tmp_path / "p", SplitPlan(val_rows=100, test_rows=100), {"generated": True}
    )
    data = PreparedDataset(tmp_path / "p")
    train = data.load("train")
    assert abs(train.x[:, 5].mean()) < 1e-5 and abs(train.x[:, 5].std(ddof=1) - 1) < 1e-4
    test = data.load("test", "high")
    assert test.x.shape == (100, 7)
    mean, std = np.array(data.stats["mean"]), np.array(data.stats["std"])
    np.testing.assert_allclose(test.x[:, 0], (feats[900:, 21] - mean[21]) / std[21], rtol=1e-5)
    shards = [data.load("train", shard=i, num_shards=3) for i in range(3)]
    assert [len(s) for s in shards] == [266, 266, 266]
    np.testing.assert_array_equal(np.concatenate([s.y for s in shards]), labels[:798])
    assert pq.read_schema(tmp_path / "p" / "train.parquet").names[0] == LABEL
