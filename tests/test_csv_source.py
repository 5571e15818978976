"""The loader reads the UCI format exactly: every value of the genuine first 11 rows."""

import gzip

import numpy as np
import pyarrow.parquet as pq

from higgsbench.data.csv_source import read_higgs_csv
from higgsbench.data.layout import COLUMNS
from tests.helpers import run_cli


def _expected(path) -> np.ndarray:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        return np.array(
            [[np.float32(float(v)) for v in line.strip().split(",")] for line in f if line.strip()],
            dtype=np.float32,
        )


def test_reads_every_value_of_the_first_11_rows(higgs_head):
    expected = _expected(higgs_head)
    assert expected.shape == (11, 29)
    chunks = list(read_higgs_csv(higgs_head))
    labels = np.concatenate([c.labels for c in chunks])
    features = np.concatenate([c.features for c in chunks])
    np.testing.assert_array_equal(labels, expected[:, 0])
    np.testing.assert_array_equal(features, expected[:, 1:])
    # spot-check against the text itself: row 1 starts 1, 0.8692932…, -0.6350818…
    assert labels[0] == 1.0
    assert features[0, 0] == np.float32(8.692932128906250000e-01)
    assert features[0, 1] == np.float32(-6.350818276405334473e-01)


def test_max_rows_stops_early(higgs_sample):
    chunks = list(read_higgs_csv(higgs_sample, max_rows=123))
    assert sum(len(c) for c in chunks) == 123
    np.testing.assert_array_equal(
        np.concatenate([c.features for c in chunks]), _expected(higgs_sample)[:123, 1:]
    )


def test_prepare_keeps_rows_in_file_order_and_values_exact(higgs_head, tmp_path):
    out = tmp_path / "prep"
    run_cli("data", "prepare", higgs_head, "--out", out, check=True)
    tables = [pq.read_table(out / f"{s}.parquet") for s in ("train", "val", "test")]
    # 11 rows: validation and test are capped at 10 % each, so 9 / 1 / 1, in file order.
    assert [t.num_rows for t in tables] == [9, 1, 1]
    got = np.concatenate(
        [np.stack([t.column(c).to_numpy() for c in COLUMNS], axis=1) for t in tables]
    )
    np.testing.assert_array_equal(got, _expected(higgs_head))
