"""The toy Monte Carlo is physics, not a random table: masses land where the decays put them."""

import json

import numpy as np

from higgsbench.data.synth import M_HIGGS, M_TOP, M_W, synthesize
from higgsbench.features import ALL_FEATURES
from tests.helpers import run_cli


def _events(n=20_000, seed=5, jobs=1):
    chunks = list(synthesize(n, seed, jobs=jobs))
    return np.concatenate([c.labels for c in chunks]), np.concatenate([c.features for c in chunks])


def test_same_seed_same_events_whatever_the_number_of_processes():
    y1, x1 = _events(250_000 // 2, seed=11, jobs=1)
    y2, x2 = _events(250_000 // 2, seed=11, jobs=2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(x1, x2)
    _, x3 = _events(1000, seed=12)
    assert not np.array_equal(x1[:1000], x3)


def test_reconstructed_masses_peak_at_the_generated_ones():
    y, x = _events()
    col = {name: x[:, i] for i, name in enumerate(ALL_FEATURES)}
    sig, bkg = y == 1, y == 0
    assert 0.50 < sig.mean() < 0.56
    # W → ℓν with the W-mass constraint, W → jj from the untagged pair
    assert abs(np.median(col["m_lv"]) - M_W) < 2
    assert abs(np.median(col["m_jj"][bkg]) - M_W) < 8
    # h⁰ → bb̄ in signal; the hadronic top in background
    assert abs(np.median(col["m_bb"][sig]) - M_HIGGS) < 10
    assert abs(np.median(col["m_jjj"][bkg]) - M_TOP) < 10
    # the whole H⁰ system in signal; broad tt̄ continuum in background
    assert abs(np.median(col["m_wwbb"][sig]) - 425) < 15

    def iqr(a):
        return np.subtract(*np.percentile(a, [75, 25]))

    assert iqr(col["m_wwbb"][bkg]) > 1.5 * iqr(col["m_wwbb"][sig])
    assert iqr(col["m_bb"][bkg]) > 2 * iqr(col["m_bb"][sig])
    # acceptance and detector ranges
    for obj in ("lepton", "jet1", "jet2", "jet3", "jet4"):
        assert col[f"{obj}_pt"].min() > 20
        assert np.abs(col[f"{obj}_eta"]).max() < 2.5
    assert set(np.unique(col["jet1_btag"])) <= {0.0, 1.0, 2.0}
    assert (np.diff(x[:, [5, 9, 13, 17]], axis=1) <= 0).all(), "jets not in decreasing pT"
    # b-tags separate: signal has more tagged jets among the leading ones than chance
    assert np.isfinite(x).all()


def test_synth_writes_the_prepared_layout_labelled_generated(tmp_path):
    out = tmp_path / "toy"
    proc = run_cli("data", "synth", "--events", 3000, "--out", out, "--seed", 1, check=True)
    assert "GENERATED" in proc.stdout
    stats = json.loads((out / "stats.json").read_text())
    assert stats["generated"] is True and "generated" in stats["source"]
    assert stats["rows"] == {"train": 2400, "val": 300, "test": 300}
    assert sorted(p.name for p in out.iterdir()) == [
        "stats.json",
        "test.parquet",
        "train.parquet",
        "val.parquet",
    ]
