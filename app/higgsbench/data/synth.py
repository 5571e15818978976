"""A toy Monte Carlo of the HIGGS benchmark: four-vectors, not a random table.

Signal   gg → H⁰ (425) → W∓ H± (325) → W∓ W± h⁰ (125) → ℓν jj bb̄
Background  gg → tt̄ → W⁺b W⁻b̄ → ℓν jj bb̄

Each event is built from two-body decays in the rest frame of the parent and boosted into
the lab; one W decays to a lepton and a neutrino, the other to two light-quark jets. A
simple detector smears jet energies and angles, the lepton momentum and the missing
transverse energy, and tags b jets with a finite efficiency and a mistag rate. Events
outside the acceptance (one lepton and four jets with pT > 20 GeV, |η| < 2.5) are
discarded. The 21 low-level features are read off the reconstructed objects, and the 7
high-level features (m_jj, m_jjj, m_ℓν, m_jℓν, m_bb, m_Wbb, m_WWbb) are computed from the
same four-vectors with a fixed reconstruction recipe, so that a network on the low-level
features alone can in principle learn what the high-level ones encode.

It reproduces the structure of the problem, not the real detector: results on it are
always labelled as generated.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable, Iterator

import numpy as np

from higgsbench.data import kinematics as kin
from higgsbench.data.csv_source import Chunk

M_W, GAMMA_W = 80.4, 2.1
M_TOP, GAMMA_TOP = 172.7, 1.4
M_B = 4.8
M_H0, M_HPM, M_HIGGS = 425.0, 325.0, 125.0
GAMMA_H0, GAMMA_HPM, GAMMA_HIGGS = 5.0, 3.0, 0.5
SIGNAL_FRACTION = 0.53  # as in the UCI file (5.83 M of 11 M events are signal)
CHUNK_EVENTS = 100_000

# Detector model.
JET_STOCHASTIC, JET_CONSTANT = 0.8, 0.05  # σ(E)/E = 80 %/√E ⊕ 5 %
JET_ANGLE = 0.03
FSR_LOSS = 0.05  # mean fraction of a parton's energy radiated outside its jet
LEPTON_RESOLUTION = 0.02
MET_SOFT = 12.0  # GeV per transverse component: underlying event and pile-up
ISR_ETA_WIDTH = 1.5
PT_MIN, ETA_MAX = 20.0, 2.5
# b-tag score 0 (untagged), 1 (loose), 2 (tight): probabilities for b and light jets.
BTAG_B = (0.25, 0.15, 0.60)
BTAG_LIGHT = (0.90, 0.08, 0.02)

GENERATOR_INFO = {
    "generator": "higgsbench toy Monte Carlo",
    "signal": "gg -> H0(425) -> W H+-(325) -> W W h0(125) -> l nu j j b b",
    "background": "gg -> t tbar -> W+ b W- bbar -> l nu j j b b",
    "signal_fraction": SIGNAL_FRACTION,
    "acceptance": f"lepton and 4 jets with pT > {PT_MIN} GeV, |eta| < {ETA_MAX}",
    "detector": "jet energy 80%/sqrt(E)+5%, out-of-cone FSR loss, ISR recoil jet, MET soft term",
}


def synthesize(
    events: int,
    seed: int,
    on_progress: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> Iterator[Chunk]:
    """Yield ``events`` accepted events in chunks of CHUNK_EVENTS.

    The same seed gives the same events whatever ``jobs`` is: chunk i is always generated
    from the i-th child of the seed, in a pool of ``jobs`` processes when jobs > 1.
    """
    sizes = [min(CHUNK_EVENTS, events - start) for start in range(0, events, CHUNK_EVENTS)]
    tasks = list(zip(np.random.SeedSequence(seed).spawn(len(sizes)), sizes, strict=True))
    done = 0
    with contextlib.ExitStack() as stack:
        if jobs > 1 and len(tasks) > 1:
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(jobs))
            chunks = pool.imap(_chunk, tasks)
        else:
            chunks = map(_chunk, tasks)
        for chunk in chunks:
            done += len(chunk)
            if on_progress:
                on_progress(done, events)
            yield chunk


def _chunk(task: tuple[np.random.SeedSequence, int]) -> Chunk:
    child, n = task
    rng = np.random.default_rng(child)
    labels = (rng.uniform(size=n) < SIGNAL_FRACTION).astype(np.float32)
    features = np.empty((n, 28), dtype=np.float32)
    for label, process in ((1.0, _signal_partons), (0.0, _background_partons)):
        rows = labels == label
        features[rows] = _accepted_events(rng, process, int(rows.sum()))
    return Chunk(labels, features)


def _accepted_events(rng: np.random.Generator, process, n: int) -> np.ndarray:
    """Generate until ``n`` events pass the acceptance; return their 28 features."""
    out, have = [], 0
    while have < n:
        batch = max(1024, int((n - have) * 1.6))
        partons = process(rng, batch)
        feats, ok = _detector(rng, *partons)
        out.append(feats[ok])
        have += int(ok.sum())
    return np.concatenate(out)[:n]


def _heavy_system(rng: np.random.Generator, m: np.ndarray) -> np.ndarray:
    """A system of mass ``m`` produced with some transverse momentum and a rapidity spread."""
    n = len(m)
    pt_sys = rng.exponential(30.0, n)
    rapidity = rng.normal(0.0, 1.0, n)
    ph = rng.uniform(-np.pi, np.pi, n)
    mt = np.sqrt(m**2 + pt_sys**2)
    return np.stack(
        [mt * np.cosh(rapidity), pt_sys * np.cos(ph), pt_sys * np.sin(ph), mt * np.sinh(rapidity)],
        axis=1,
    )


def _w_decay(rng, w_had, w_lep):
    """W → q q̄' (two jets) and W → ℓ ν (massless daughters)."""
    q1, q2 = kin.two_body_decay(rng, w_had, 0.0, 0.0)
    lep, nu = kin.two_body_decay(rng, w_lep, 0.0, 0.0)
    return q1, q2, lep, nu


def _signal_partons(rng: np.random.Generator, n: int):
    h0 = _heavy_system(rng, kin.breit_wigner(rng, M_H0, GAMMA_H0, n, 400.0, 450.0))
    m_w1 = kin.breit_wigner(rng, M_W, GAMMA_W, n, 60.0, 100.0)
    m_hpm = kin.breit_wigner(rng, M_HPM, GAMMA_HPM, n, 300.0, 345.0)
    w1, hpm = kin.two_body_decay(rng, h0, m_w1, m_hpm)
    m_w2 = kin.breit_wigner(rng, M_W, GAMMA_W, n, 60.0, 100.0)
    m_h = kin.breit_wigner(rng, M_HIGGS, GAMMA_HIGGS, n, 120.0, 130.0)
    w2, h = kin.two_body_decay(rng, hpm, m_w2, m_h)
    b1, b2 = kin.two_body_decay(rng, h, M_B, M_B)
    first_is_hadronic = rng.uniform(size=n) < 0.5
    w_had = np.where(first_is_hadronic[:, None], w1, w2)
    w_lep = np.where(first_is_hadronic[:, None], w2, w1)
    return (h0, *_w_decay(rng, w_had, w_lep), b1, b2)


def _background_partons(rng: np.random.Generator, n: int):
    # tt̄ invariant mass: threshold plus a falling spectrum peaking near 400 GeV.
    m_tt = 2 * M_TOP + 5.0 + rng.gamma(2.0, 60.0, n)
    system = _heavy_system(rng, m_tt)
    m_t1 = kin.breit_wigner(rng, M_TOP, GAMMA_TOP, n, 160.0, 185.0)
    m_t2 = kin.breit_wigner(rng, M_TOP, GAMMA_TOP, n, 160.0, 185.0)
    # keep the pair above threshold for the sampled top masses
    t1, t2 = kin.two_body_decay(
        rng, system, np.minimum(m_t1, m_tt / 2 - 1), np.minimum(m_t2, m_tt / 2 - 1)
    )
    m_wa = kin.breit_wigner(rng, M_W, GAMMA_W, n, 60.0, 100.0)
    m_wb = kin.breit_wigner(rng, M_W, GAMMA_W, n, 60.0, 100.0)
    w_had, b1 = kin.two_body_decay(rng, t1, m_wa, M_B)
    w_lep, b2 = kin.two_body_decay(rng, t2, m_wb, M_B)
    return (system, *_w_decay(rng, w_had, w_lep), b1, b2)


def _smear_jet(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    e = np.maximum(p[:, 0], 1.0)
    sigma = np.hypot(JET_STOCHASTIC / np.sqrt(e), JET_CONSTANT)
    scale = np.maximum(1.0 + sigma * rng.normal(size=len(p)), 0.05)
    return kin.from_pt_eta_phi_m(
        kin.pt(p) * scale,
        kin.eta(p) + JET_ANGLE * rng.normal(size=len(p)),
        kin.phi(p) + JET_ANGLE * rng.normal(size=len(p)),
        kin.mass(p) * scale,
    )


def _btag(rng: np.random.Generator, n: int, probabilities) -> np.ndarray:
    return rng.choice(3, size=n, p=probabilities).astype(np.float64)


def _isr_jet(rng: np.random.Generator, system: np.ndarray) -> np.ndarray:
    """The initial-state radiation the heavy system recoils against: opposite in the
    transverse plane, spread in η. When it is hard it can displace a decay jet from the four
    leading jets, as on a real detector."""
    n = len(system)
    return kin.from_pt_eta_phi_m(
        kin.pt(system), rng.normal(0.0, ISR_ETA_WIDTH, n), kin.phi(system) + np.pi, 0.0
    )


def _detector(rng, system, q1, q2, lep, nu, b1, b2):
    """Reconstruct the event: smeared objects, acceptance, low- and high-level features."""
    n = len(lep)
    lep_reco = kin.from_pt_eta_phi_m(
        kin.pt(lep) * (1 + LEPTON_RESOLUTION * rng.normal(size=n)), kin.eta(lep), kin.phi(lep), 0.0
    )
    # What falls inside each jet: the parton less its out-of-cone radiation (which the
    # calorimeter still measures, so it does not add to the missing energy).
    in_cone = [
        p * (1.0 - np.minimum(rng.exponential(FSR_LOSS, n), 0.5))[:, None] for p in (q1, q2, b1, b2)
    ] + [_isr_jet(rng, system)]
    jets = [_smear_jet(rng, j) for j in in_cone]
    tags = [
        _btag(rng, n, BTAG_LIGHT),
        _btag(rng, n, BTAG_LIGHT),
        _btag(rng, n, BTAG_B),
        _btag(rng, n, BTAG_B),
        _btag(rng, n, BTAG_LIGHT),
    ]
    # Missing transverse momentum: the neutrino plus every mismeasurement of visible objects.
    met = nu[:, 1:3] + lep[:, 1:3] - lep_reco[:, 1:3] + MET_SOFT * rng.normal(size=(n, 2))
    for true, reco in zip(in_cone, jets, strict=True):
        met += true[:, 1:3] - reco[:, 1:3]

    # The four leading jets inside the acceptance, in decreasing pT as in the UCI file.
    jet_p = np.stack(jets, axis=1)  # (n, 5 jets, 4)
    jet_tag = np.stack(tags, axis=1)
    jet_pt = np.stack([kin.pt(j) for j in jets], axis=1)
    jet_eta = np.stack([kin.eta(j) for j in jets], axis=1)
    good = (jet_pt > PT_MIN) & (np.abs(jet_eta) < ETA_MAX)
    order = np.argsort(-np.where(good, jet_pt, -1.0), axis=1)[:, :4]
    jet_p = np.take_along_axis(jet_p, order[:, :, None], axis=1)
    jet_tag = np.take_along_axis(jet_tag, order, axis=1)
    ok = (kin.pt(lep_reco) > PT_MIN) & (np.abs(kin.eta(lep_reco)) < ETA_MAX)
    ok &= good.sum(axis=1) >= 4

    feats = np.empty((n, 28))
    feats[:, 0], feats[:, 1], feats[:, 2] = kin.pt(lep_reco), kin.eta(lep_reco), kin.phi(lep_reco)
    feats[:, 3] = np.hypot(met[:, 0], met[:, 1])
    feats[:, 4] = np.arctan2(met[:, 1], met[:, 0])
    for j in range(4):
        pj = jet_p[:, j]
        feats[:, 5 + 4 * j : 9 + 4 * j] = np.stack(
            [kin.pt(pj), kin.eta(pj), kin.phi(pj), jet_tag[:, j]], axis=1
        )
    feats[:, 21:] = _high_level(lep_reco, met, jet_p, jet_tag)
    return feats.astype(np.float32), ok


def _neutrino(lep: np.ndarray, met: np.ndarray) -> np.ndarray:
    """Neutrino four-vector from the missing transverse momentum and the W-mass constraint,
    taking the solution for p_z with the smaller magnitude (the real part when there is none)."""
    pt_l2 = lep[:, 1] ** 2 + lep[:, 2] ** 2
    mu = M_W**2 / 2 + lep[:, 1] * met[:, 0] + lep[:, 2] * met[:, 1]
    a = mu * lep[:, 3] / pt_l2
    met2 = met[:, 0] ** 2 + met[:, 1] ** 2
    disc = np.maximum(a**2 - (lep[:, 0] ** 2 * met2 - mu**2) / pt_l2, 0.0)
    root = np.sqrt(disc)
    pz = np.where(np.abs(a - root) < np.abs(a + root), a - root, a + root)
    return np.stack([np.sqrt(met2 + pz**2), met[:, 0], met[:, 1], pz], axis=1)


def _high_level(lep, met, jet_p, jet_tag) -> np.ndarray:
    """The seven masses, from a recipe that uses only reconstructed quantities:
    the two jets with the highest b-tag (then highest pT) are the b candidates, the other
    two the W → jj candidates; the b that makes the hadronic top mass closest to m_t goes
    with the jj pair, the other with the lepton and the neutrino."""
    # Highest tag first, ties by position (jets are already in decreasing pT).
    rank = np.argsort(-4 * jet_tag + np.arange(4), axis=1)
    by_tag = np.take_along_axis(jet_p, rank[:, :, None], axis=1)
    b_a, b_b, j_a, j_b = by_tag[:, 0], by_tag[:, 1], by_tag[:, 2], by_tag[:, 3]
    jj = j_a + j_b
    use_a = np.abs(kin.mass(jj + b_a) - M_TOP) < np.abs(kin.mass(jj + b_b) - M_TOP)
    b_had = np.where(use_a[:, None], b_a, b_b)
    b_lep = np.where(use_a[:, None], b_b, b_a)
    nu = _neutrino(lep, met)
    lv = lep + nu
    bb = b_a + b_b
    return np.stack(
        [
            kin.mass(jj),
            kin.mass(jj + b_had),
            kin.mass(lv),
            kin.mass(lv + b_lep),
            kin.mass(bb),
            kin.mass(jj + bb),
            kin.mass(jj + bb + lv),
        ],
        axis=1,
    )
