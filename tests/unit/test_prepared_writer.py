"""The one writer behind `prepare` and `synth`: split sizes, order, statistics, atomicity."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from higgsbench.common.errors import HiggsbenchError
from higgsbench.data import writer
from higgsbench.data.csv_source import Chunk
from higgsbench.data.layout import ALL_FEATURES, LABEL, feature_columns
from higgsbench.data.prepared import PreparedDataset
from higgsbench.data.writer import SplitPlan, write_prepared


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


def test_force_replaces_a_prepared_dataset_and_nothing_a_user_put_beside_it(tmp_path):
    out = tmp_path / "p"
    chunks, _, _ = _stream(100, [10])
    write_prepared(chunks, out, SplitPlan(), {"generated": True})
    (out / "note.txt").write_text("the user's")
    with pytest.raises(HiggsbenchError, match="already exists"):
        write_prepared(chunks, out, SplitPlan(), {"generated": True})
    chunks, _, _ = _stream(200, [10])
    with pytest.raises(HiggsbenchError, match=r"holds note\.txt, which is not part of"):
        write_prepared(chunks, out, SplitPlan(), {"generated": True}, force=True)
    assert (out / "note.txt").read_text() == "the user's"
    assert json.loads((out / "stats.json").read_text())["rows"]["test"] == 10
    (out / "note.txt").unlink()
    chunks, _, _ = _stream(200, [10])
    write_prepared(chunks, out, SplitPlan(), {"generated": True}, force=True)
    assert json.loads((out / "stats.json").read_text())["rows"]["test"] == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"], "old or temporary dirs left"


@pytest.mark.parametrize(
    "make",
    [
        lambda out: (out.mkdir(), (out / "keep.txt").write_text("mine")),
        lambda out: (out.mkdir(), (out / "stats.json").write_text('{"format": "other/1"}')),
        lambda out: (out.mkdir(), (out / "stats.json").write_text("not json")),
    ],
    ids=["ordinary directory", "foreign stats.json", "broken stats.json"],
)
def test_force_refuses_a_directory_that_is_not_a_prepared_dataset(tmp_path, make):
    out = tmp_path / "p"
    make(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    chunks, _, _ = _stream(100, [10])
    with pytest.raises(HiggsbenchError, match="not a prepared dataset") as err:
        write_prepared(chunks, out, SplitPlan(), {"generated": True}, force=True)
    assert str(out) in str(err.value) and "\n" not in str(err.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


@pytest.mark.parametrize("force", [False, True])
def test_an_out_that_is_a_file_is_refused(tmp_path, force):
    out = tmp_path / "p"
    out.write_text("a file")
    chunks, _, _ = _stream(100, [10])
    with pytest.raises(HiggsbenchError, match="not a directory"):
        write_prepared(chunks, out, SplitPlan(), {"generated": True}, force=force)
    assert out.read_text() == "a file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_a_failed_move_puts_the_old_dataset_back(tmp_path, monkeypatch):
    out = tmp_path / "p"
    chunks, _, _ = _stream(100, [10])
    write_prepared(chunks, out, SplitPlan(), {"generated": True})
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_rename = writer.rename_noreplace

    def rename(src, dst):
        if src.name.startswith(".p.tmp-") and not dst.exists():  # the move into place
            raise OSError(28, "No space left on device", str(src))
        return real_rename(src, dst)

    monkeypatch.setattr(writer, "rename_noreplace", rename)
    chunks, _, _ = _stream(200, [10])
    with pytest.raises(OSError, match="No space left"):
        write_prepared(chunks, out, SplitPlan(), {"generated": True}, force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_an_old_dataset_that_cannot_be_removed_is_named(tmp_path, monkeypatch, capsys):
    out = tmp_path / "p"
    chunks, _, _ = _stream(100, [10])
    write_prepared(chunks, out, SplitPlan(), {"generated": True})

    real_rmdir = Path.rmdir

    def rmdir(self):
        if self.name.startswith(".p.old-"):
            raise PermissionError(13, "Permission denied", str(self))
        return real_rmdir(self)

    monkeypatch.setattr(Path, "rmdir", rmdir)
    chunks, _, _ = _stream(200, [10])
    write_prepared(chunks, out, SplitPlan(), {"generated": True}, force=True)
    assert json.loads((out / "stats.json").read_text())["rows"]["test"] == 20
    left = [p for p in tmp_path.iterdir() if p.name != "p"]
    assert len(left) == 1 and left[0].name.startswith(".p.old-")
    warning = capsys.readouterr().err
    assert str(left[0]) in warning and "Permission denied" in warning


def test_out_may_not_hold_the_input(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    src = data / "HIGGS.csv"
    src.write_text("the input")
    for out in (data, tmp_path, src):
        chunks, _, _ = _stream(100, [10])
        with pytest.raises(HiggsbenchError, match="holds the input"):
            write_prepared(chunks, out, SplitPlan(), {"generated": True}, inputs=[src])
    assert src.read_text() == "the input"
    # beside the input is fine
    chunks, _, _ = _stream(100, [10])
    write_prepared(chunks, data / "prepared", SplitPlan(), {"generated": True}, inputs=[src])
    assert sorted(p.name for p in data.iterdir()) == ["HIGGS.csv", "prepared"]


def test_parents_made_for_a_failed_write_are_removed(tmp_path):
    def failing():
        yield from _stream(100, [10])[0][:3]
        raise HiggsbenchError("bad row")

    with pytest.raises(HiggsbenchError, match="bad row"):
        write_prepared(failing(), tmp_path / "a" / "b" / "p", SplitPlan(), {"generated": True})
    assert list(tmp_path.iterdir()) == []


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


def test_a_constant_feature_loads_as_finite_zeros(tmp_path, capsys):
    # jet1_btag (column 8) the same in every event, as when a sample has no tagged jet:
    # its std is 0, and standardising by it must not give NaN
    chunks, _, _ = _stream(500, [64])
    for chunk in chunks:
        chunk.features[:, 8] = 1.0
    stats = write_prepared(chunks, tmp_path / "p", SplitPlan(), {"generated": True})
    assert stats["std"][8] == 0.0 and "jet1_btag" in capsys.readouterr().out
    data = PreparedDataset(tmp_path / "p")
    for split in ("train", "val", "test"):
        x = data.load(split).x
        assert np.isfinite(x).all(), split
        np.testing.assert_array_equal(x[:, 8], np.zeros(len(x)))


# UCI HIGGS's columns after the label, as its description lists them: 21 low-level ones (the
# lepton, the missing energy, four jets with their b-tags), then 7 high-level masses
UCI_LOW_LEVEL = [
    "lepton_pt", "lepton_eta", "lepton_phi", "missing_energy_magnitude", "missing_energy_phi",
    "jet1_pt", "jet1_eta", "jet1_phi", "jet1_btag", "jet2_pt", "jet2_eta", "jet2_phi", "jet2_btag",
    "jet3_pt", "jet3_eta", "jet3_phi", "jet3_btag", "jet4_pt", "jet4_eta", "jet4_phi", "jet4_btag",
]  # fmt: skip
UCI_HIGH_LEVEL = ["m_jj", "m_jjj", "m_lv", "m_jlv", "m_bb", "m_wbb", "m_wwbb"]


@pytest.mark.parametrize(
    ("feature_set", "names", "first_column"),
    [
        ("low", UCI_LOW_LEVEL, 0),
        ("high", UCI_HIGH_LEVEL, 21),
        ("all", UCI_LOW_LEVEL + UCI_HIGH_LEVEL, 0),
    ],
)
def test_a_feature_set_is_exactly_baldis_columns_in_uci_order(
    tmp_path, feature_set, names, first_column
):
    assert (len(UCI_LOW_LEVEL), len(UCI_HIGH_LEVEL)) == (21, 7)
    assert feature_columns(feature_set) == names
    # and the loader gives those columns, in that order: column j of the loaded split is
    # UCI column first_column + j, standardised
    chunks, _, feats = _stream(300, [100])
    write_prepared(chunks, tmp_path / "p", SplitPlan(), {"generated": True})
    data = PreparedDataset(tmp_path / "p")
    x = data.load("train", feature_set).x
    assert x.shape == (240, len(names))
    uci = feats[:240, first_column : first_column + len(names)].astype(np.float64)
    expected = (uci - uci.mean(0)) / uci.std(0, ddof=1)
    np.testing.assert_allclose(x, expected, rtol=1e-4, atol=1e-5)


def test_stats_json_names_the_columns_and_counts_the_signal_in_every_split(tmp_path, capsys):
    chunks, labels, _ = _stream(500, [64])
    stats = write_prepared(
        chunks, tmp_path / "p", SplitPlan(val_rows=30, test_rows=20), {"generated": True}
    )
    text = (tmp_path / "p" / "stats.json").read_text()
    assert text == json.dumps(stats, indent=2) + "\n"  # readable: one key a line
    assert (stats["label"], stats["low_level"], stats["high_level"]) == (
        LABEL, ALL_FEATURES[:21], ALL_FEATURES[21:]
    )  # fmt: skip
    assert stats["signal_rows"] == {
        "train": int(labels[:450].sum()),
        "val": int(labels[450:480].sum()),
        "test": int(labels[480:].sum()),
    }
    assert "warning" not in capsys.readouterr().out  # no feature is constant here


def test_every_constant_feature_is_named_in_one_warning(tmp_path, capsys):
    chunks, _, _ = _stream(500, [64])
    for chunk in chunks:
        chunk.features[:, [8, 12]] = 1.0  # jet1_btag and jet2_btag
    write_prepared(chunks, tmp_path / "p", SplitPlan(), {"generated": True})
    assert capsys.readouterr().out == (
        "warning: features constant in the training split: jet1_btag, jet2_btag\n"
    )


@pytest.mark.parametrize(
    ("rows", "plan"),
    # the CLI refuses --val-rows 0 and --test-rows 0 itself (data/prepare.py); the writer
    # still refuses a split left empty, whoever calls it
    [(9, SplitPlan()), (100, SplitPlan(val_rows=0, test_rows=5)),
     (100, SplitPlan(val_rows=5, test_rows=0))],
    ids=["9 rows", "no validation rows", "no test rows"],
)  # fmt: skip
def test_a_split_left_empty_is_refused_and_nothing_written(tmp_path, rows, plan):
    chunks, _, _ = _stream(rows, [7])
    with pytest.raises(HiggsbenchError, match="too few to split") as refused:
        write_prepared(chunks, tmp_path / "p", plan, {"generated": True})
    if rows == 9:
        assert str(refused.value) == (
            "only 9 rows: too few to split into train, validation and test sets "
            "(at least 10 rows are needed)"
        )
    assert not (tmp_path / "p").exists()
