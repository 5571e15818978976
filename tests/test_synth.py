"""The toy Monte Carlo is physics, not a random table: masses land where the decays put them;
and it writes them in the UCI file's conventions (units, jet order, b-tag levels)."""

import json

import numpy as np

from higgsbench.data.layout import ALL_FEATURES
from higgsbench.data.synth import (
    BTAG_LEVELS,
    ETA_SCALE,
    GEV_SCALE,
    LEPTON_PT_MIN,
    M_HIGGS,
    M_TOP,
    M_W,
    PHI_MAX,
    PT_MIN,
    synthesize,
)
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
    # back from the UCI file's units to GeV and pseudorapidity
    scale = {**GEV_SCALE, **ETA_SCALE}
    col = {name: x[:, i] * scale.get(name, 1.0) for i, name in enumerate(ALL_FEATURES)}
    sig, bkg = y == 1, y == 0
    assert 0.50 < sig.mean() < 0.56
    # W → ℓν with the W-mass constraint, W → jj from the untagged pair: a little above m_W,
    # as jets pick up soft radiation from the rest of the event
    assert abs(np.median(col["m_lv"]) - M_W) < 2
    assert M_W - 2 < np.median(col["m_jj"][bkg]) < M_W + 12
    # h⁰ → bb̄ in signal, below 125 GeV as on a real detector: b jets lose out-of-cone
    # radiation and semileptonic neutrinos; the hadronic top in background
    assert 0.75 * M_HIGGS < np.median(col["m_bb"][sig]) < M_HIGGS
    assert abs(np.median(col["m_jjj"][bkg]) - M_TOP) < 10
    # the whole H⁰ system in signal, above m_H⁰: the neutrino's "+" p_z root is the wrong one
    # in about half the events, which only adds mass; broad tt̄ continuum in background
    assert 425 < np.median(col["m_wwbb"][sig]) < 425 + 45

    def iqr(a):
        return np.subtract(*np.percentile(a, [75, 25]))

    assert iqr(col["m_wwbb"][bkg]) > 1.3 * iqr(col["m_wwbb"][sig])
    assert iqr(col["m_bb"][bkg]) > 1.8 * iqr(col["m_bb"][sig])
    # acceptance and detector ranges (float32 rounding of the scaled values aside)
    for obj in ("lepton", "jet1", "jet2", "jet3", "jet4"):
        assert col[f"{obj}_pt"].min() > (LEPTON_PT_MIN if obj == "lepton" else PT_MIN) - 1e-3
        assert np.abs(col[f"{obj}_eta"]).max() < 2.5 + 1e-3
        assert np.abs(col[f"{obj}_phi"]).max() <= PHI_MAX + 1e-6
    assert np.isfinite(x).all()


def test_written_in_the_uci_files_conventions():
    _, x = _events(10_000, seed=7)
    col = {name: x[:, i] for i, name in enumerate(ALL_FEATURES)}
    for name in GEV_SCALE:  # momenta and masses: mean about 1
        assert 0.85 < col[name].mean() < 1.2, name
    for name in ETA_SCALE:  # η standardised
        assert 0.9 < col[name].std() < 1.1, name
    # b-tag: each column's own UCI levels; events with more than two tags are vetoed
    tags = np.stack([col[name] for name in BTAG_LEVELS], axis=1)
    for j, (name, levels) in enumerate(BTAG_LEVELS.items()):
        assert set(np.unique(tags[:, j])) <= {0.0, *np.float32(levels)}, name
    tagged = (tags > 0).sum(axis=1)
    assert tagged.max() <= 2 and (tagged == 2).mean() > 0.6
    # jets are not written in decreasing pT: P(jet_i pT > jet_j pT) ≈ 0.5 for every pair
    pts = x[:, [5, 9, 13, 17]]
    for i in range(4):
        for j in range(i + 1, 4):
            assert 0.4 < (pts[:, i] > pts[:, j]).mean() < 0.6, (i, j)


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
