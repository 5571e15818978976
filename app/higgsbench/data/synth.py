"""A toy Monte Carlo of the HIGGS benchmark: four-vectors, not a random table.

Signal   gg → H⁰ (425) → W∓ H± (325) → W∓ W± h⁰ (125) → ℓν jj bb̄
Background  gg → tt̄ → W⁺b W⁻b̄ → ℓν jj bb̄

Each event is built from two-body decays in the rest frame of the parent and boosted into
the lab. The H⁰ is a scalar and decays isotropically; the tt̄ pair is not produced
isotropically: gg → tt̄ goes largely through t-channel top exchange, whose propagator
1/(1 − β² cos²θ) sends fast tops towards the beams, so that at a given m_tt̄ the
background's objects are softer and more forward than a scalar's decay products (an
isotropic tt̄ made the low-level features separate the classes far better than in the UCI
file). One W decays to a lepton and a neutrino, the other to two light-quark jets. The W
decays are polarised: in t → W b the W is longitudinal in 70 % of decays and left-handed in
30 % (the lepton then goes against the W's flight); in the signal both W's come from a
scalar decaying to a W and a scalar, so they are purely longitudinal. A simple detector
clusters partons closer than ΔR = 0.83 into one jet, smears jet energies (b jets more) and
angles, the lepton momentum and the missing transverse energy (semileptonic b decays add to
it), lets jets lose out-of-cone radiation and pick up soft radiation, lets one parton in
some events radiate a hard gluon that can make a jet of its own, and tags b jets with a
finite efficiency, c jets (from W → cs̄) and light jets with small mistag rates; events
with more than two tags are vetoed, as none are in the UCI file. Events outside the
acceptance (one lepton and four jets above a pT threshold, |η| < 2.5) are discarded. The 21
low-level features are read off the reconstructed objects, and the 7 high-level features
(m_jj, m_jjj, m_ℓν, m_jℓν, m_bb, m_Wbb, m_WWbb) are computed from the same four-vectors with
a fixed reconstruction recipe over every jet in the acceptance, the four written and any
beyond them (as in the UCI file, where one event in five has a b-tagged jet outside the
four), so that a network on the low-level features alone can in principle learn most of
what the high-level ones encode.

The features are written in the UCI file's conventions, so that generated and real rows go
through one pipeline unchanged: momenta and masses divided by a fixed scale that gives each
column the UCI file's median (its means are about 1), η divided by a scale that gives it
the UCI file's standard deviation (about 1), φ scaled from ±π to ±1.744, and the b-tag as
the UCI file's per-column level sets (0 and two tagged levels; at most two tagged jets per
event). As in the UCI file, the four jets are not written in decreasing pT: their order is
pT with a large random error (P(jet_i pT > jet_j pT) ≈ 0.5 for every pair in the written
units), which keeps a preference for the hard b jets to come first, as the file's
per-column tag rates show.

The free parameters (production pT, widths, resolutions, tag rates, thresholds) were fitted
to the genuine 10,984-row sample: two-sample KS per feature, over all events and within
each class, and the boosted-trees AUC on low, high and all features, on one large sample
(seed 100) and checked on others (see tests/test_data_compare.py). It reproduces the
structure of the problem, not the real detector: results on it are always labelled as
generated.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from collections.abc import Callable, Iterator

import numpy as np

from higgsbench.data import kinematics as kin
from higgsbench.data.csv_source import Chunk
from higgsbench.data.layout import ALL_FEATURES, SIGNAL_FRACTION

M_W, GAMMA_W = 80.4, 2.1
M_TOP, GAMMA_TOP = 172.7, 1.4
M_B = 4.8
M_H0, M_HPM, M_HIGGS = 425.0, 325.0, 125.0
# H⁰ and H± widths: the model leaves them free; these make the toy as hard to separate as the
# UCI file (boosted-trees AUC on the same split sizes) and give its m_Wbb, m_WWbb their width.
# The H± is narrow: the UCI file's m_Wbb has a sharp peak in the signal and long tails, which
# come from the reconstruction (wrong jets), not from the H± line shape.
GAMMA_H0, GAMMA_HPM, GAMMA_HIGGS = 55.4, 24.2, 0.5
# W helicity fractions (longitudinal, left-handed) in t → W b, as measured and predicted at
# NNLO (f0 ≈ 0.69, fL ≈ 0.31, fR ≈ 0). In the signal both W's come from a scalar decaying to
# a W and a scalar (H⁰ → W H±, H± → W h⁰), so they are purely longitudinal.
W_HELICITY_TOP, W_HELICITY_SIGNAL = (0.7, 0.3), (1.0, 0.0)
CHUNK_EVENTS = 100_000
# Production: the heavy system's transverse momentum (exponential, mean in GeV; the
# initial-state radiation it recoils against) and rapidity spread; tt̄ mass above threshold
# from a Gamma(TT_SHAPE, TT_SLOPE) spectrum, and the top's polar angle in the tt̄ frame from
# the t-channel propagator 1/(1 − a cos²θ) with a = TT_FORWARD · β_top² (at most 0.97;
# TT_FORWARD above 1 stands for the propagator appearing squared in |M|²). These, the
# widths, resolutions and tag rates below are fitted together to the KS and boosted-trees AUC
# of the genuine sample: on one 200,000-event sample (seed 100), checked on seeds 1–12, with
# seeds 13–15 held out (tests/test_synth.py compares those).
SIGNAL_PT, SYSTEM_PT, SYSTEM_RAPIDITY = 28.4, 25.5, 1.0
TT_SLOPE = 62.0
TT_FORWARD = 1.65
TT_SHAPE = 2.0
ISR_ETA_WIDTH = 2.12

# Detector model.
JET_STOCHASTIC, JET_CONSTANT = 0.60, 0.08  # σ(E)/E = 60 %/√E ⊕ 8 %
JET_ANGLE = 0.03
JET_RADIUS = 0.83  # partons closer than this in (η, φ) make one jet (a cone)
FSR_LOSS = 0.056  # mean fraction of a parton's energy radiated outside its jet
# GeV: mean soft radiation / underlying event that falls into a jet. More pushes every
# W → jj candidate up and smears its peak, and m_jj's W peak then sits below the column's
# median where the UCI file's sits above it.
JET_PICKUP = 3.0
# Hard final-state radiation: in FSR_JET_PROB of events one parton (of the four) radiates a
# gluon carrying a fraction z of its pT (dz/z between FSR_JET_Z[0] and FSR_JET_Z[1]) at a
# distance ΔR (dΔR/ΔR between FSR_JET_DR[0] and FSR_JET_DR[1]) from it; beyond the jet
# radius it is a jet of its own, which the four leading jets and the reconstruction can pick.
# Without it the only extra jet is the ISR one, and the masses can be made as hard to separate
# as the UCI file's only by broad H⁰/H± widths and poor jet resolution, which give m_Wbb, m_jj
# and the lepton pT the wrong shapes.
FSR_JET_PROB = 0.4
FSR_JET_Z = (0.1, 0.5)
FSR_JET_DR = (0.4, 1.6)
# Semileptonic b decays: with this probability a b jet loses a neutrino carrying a fraction of
# its energy drawn from Beta(SEMILEPTONIC_BETA), which adds to the missing momentum. 0.71 is
# far above the b → ℓνX branching ratio (≈ 0.2 with cascades): it also stands for the b jets'
# other losses (the smaller jet pickup leaves more of them to model), tuned to the UCI file's
# m_bb low tail. B_JET_RESPONSE: the b jets' extra relative response spread (heavy-flavour
# fragmentation), which the missing momentum sees.
SEMILEPTONIC_B, SEMILEPTONIC_BETA = 0.71, (2.0, 5.0)
B_JET_RESPONSE = 0.085
LEPTON_RESOLUTION = 0.055
# GeV per transverse component: underlying event and pile-up (small, as the b jets' losses
# supply much of the missing momentum's spread).
MET_SOFT = 5.95
# Acceptance: one lepton and at least four jets with pT above these and |η| < ETA_MAX. The
# UCI file's columns have their minima at 0.27–0.37 of their medians (lepton, jets 3 and 4),
# a harder spectrum relative to the threshold than this toy's at 20 GeV: lower thresholds
# stand in for that (only the shape matters once the columns are scaled). Not too low: at 12 and
# 9.3 GeV the scaled jet 4 and lepton columns reached well below the UCI file's minima.
PT_MIN, LEPTON_PT_MIN, ETA_MAX = 13.5, 10.8, 2.5
# b-tag: a b jet is tagged with BTAG_EFFICIENCY, a c jet (one of the W → cs̄ quarks, in
# CHARM_FRACTION of hadronic W decays) with MISTAG_C, a light or gluon jet with MISTAG_LIGHT;
# a tag is tight with BTAG_TIGHT (else loose). Events with more than BTAG_MAX tagged jets are
# vetoed: the UCI file never has more than two. It has 1 % of events with no tag among the
# four jets written and 15–22 % with one: there a b jet is outside the four.
BTAG_EFFICIENCY, BTAG_TIGHT, BTAG_MAX = 0.98, 0.835, 2
MISTAG_C, MISTAG_LIGHT = 0.085, 0.0041
CHARM_FRACTION = 0.5
# Solving for the neutrino, the W mass is known to this relative resolution (the UCI file's
# m_lv peak is ≈ 0.5 % wide, not a delta function).
W_CONSTRAINT_RESOLUTION = 0.0051
# The jets' written order: decreasing pT × exp(JET_ORDER_NOISE · N(0, 1)).
JET_ORDER_NOISE = 0.57

# The UCI file's units. Momenta and masses (GeV) are divided by these scales, which give each
# column on this generator's events the median of the UCI file's column (UCI_MEDIAN, whose
# means are about 1); η by a scale that gives its column the UCI file's standard deviation
# (about 1); calibrate() recomputes both. φ ∈ (−π, π] is mapped to ±PHI_MAX; the b-tag levels
# (loose, tight) are the UCI file's own per-column values.
GEV_SCALE = {  # GeV
    "lepton_pt": 49.87,
    "missing_energy_magnitude": 56.14,
    "jet1_pt": 85.24,
    "jet2_pt": 65.25,
    "jet3_pt": 49.59,
    "jet4_pt": 38.22,
    "m_jj": 93.18,
    "m_jjj": 179.81,
    "m_lv": 81.46,
    "m_jlv": 191.05,
    "m_bb": 122.03,
    "m_wbb": 292.34,
    "m_wwbb": 510.36,
}
ETA_SCALE = {
    "lepton_eta": 1.0798,
    "jet1_eta": 1.0294,
    "jet2_eta": 1.0866,
    "jet3_eta": 1.1316,
    "jet4_eta": 1.1912,
}
PHI_MAX = 1.744
# Medians and η standard deviations of the UCI file's columns (its genuine 10,984-row sample).
UCI_MEDIAN = {
    "lepton_pt": 0.8615,
    "missing_energy_magnitude": 0.88,
    "jet1_pt": 0.8994,
    "jet2_pt": 0.8903,
    "jet3_pt": 0.8968,
    "jet4_pt": 0.8668,
    "m_jj": 0.8976,
    "m_jjj": 0.9537,
    "m_lv": 0.9897,
    "m_jlv": 0.9166,
    "m_bb": 0.8749,
    "m_wbb": 0.9471,
    "m_wwbb": 0.8699,
}
UCI_ETA_STD = {
    "lepton_eta": 1.0083,
    "jet1_eta": 1.0143,
    "jet2_eta": 1.0013,
    "jet3_eta": 1.0025,
    "jet4_eta": 1.0012,
}
BTAG_LEVELS = {  # (loose, tight) as written in the UCI file
    "jet1_btag": (1.086538076, 2.173076153),
    "jet2_btag": (1.107436061, 2.214872122),
    "jet3_btag": (1.274112225, 2.548224449),
    "jet4_btag": (1.550980687, 3.101961374),
}

GENERATOR_INFO = {
    "generator": "higgsbench toy Monte Carlo",
    "signal": "gg -> H0(425) -> W H+-(325) -> W W h0(125) -> l nu j j b b",
    "background": "gg -> t tbar -> W+ b W- bbar -> l nu j j b b",
    "signal_fraction": SIGNAL_FRACTION,
    "acceptance": f"lepton pT > {LEPTON_PT_MIN} GeV and 4 jets with pT > {PT_MIN} GeV, "
    f"|eta| < {ETA_MAX}; at most {BTAG_MAX} b-tags",
    "production": "tt pair peaked along the beams (t-channel propagator), H0 isotropic",
    "decays": "W polarised: f0/fL = 0.7/0.3 in top decays, longitudinal in the signal",
    "detector": f"jets clustered at R = {JET_RADIUS}, energy {JET_STOCHASTIC:.0%}/sqrt(E)+"
    f"{JET_CONSTANT:.0%}, out-of-cone loss and soft pickup, hard FSR jet in "
    f"{FSR_JET_PROB:.0%} of events, b-jet response, semileptonic b "
    "decays, c and light mistags, ISR recoil jet, MET soft term, W-mass constraint "
    f"with {W_CONSTRAINT_RESOLUTION:.2%} resolution",
    "units": "UCI HIGGS conventions: momenta and masses scaled to mean ~1, eta standardised, "
    "phi to +-1.744, b-tag as UCI's per-column levels; jets not in pT order",
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
            # Ctrl-C reaches the workers too: they leave it to this process, which stops them
            spawn = multiprocessing.get_context("spawn")
            ignore_ctrl_c = (signal.SIGINT, signal.SIG_IGN)
            pool = stack.enter_context(
                spawn.Pool(jobs, initializer=signal.signal, initargs=ignore_ctrl_c)
            )
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
        features[rows] = to_uci_units(_accepted_events(rng, process, int(rows.sum())))
    return Chunk(labels, features)


def to_uci_units(feats: np.ndarray) -> np.ndarray:
    """Physical features (GeV, radians, b-tag 0/1/2) in the UCI file's units."""
    out = np.array(feats, dtype=np.float64)
    for i, name in enumerate(ALL_FEATURES):
        if name in GEV_SCALE:
            out[:, i] /= GEV_SCALE[name]
        elif name in ETA_SCALE:
            out[:, i] /= ETA_SCALE[name]
        elif name.endswith("_phi"):
            out[:, i] *= PHI_MAX / np.pi
        elif name in BTAG_LEVELS:
            loose, tight = BTAG_LEVELS[name]
            out[:, i] = np.select([out[:, i] == 1, out[:, i] == 2], [loose, tight], 0.0)
    return out.astype(np.float32)


def calibrate(events: int = 400_000, seed: int = 20140704) -> dict:
    """The GEV_SCALE and ETA_SCALE values that give this generator's columns the UCI file's
    medians (momenta, masses) and η standard deviations: rerun after changing the physics and
    paste the result."""
    chunks = list(synthesize(events, seed))
    x = np.concatenate([c.features for c in chunks]).astype(np.float64)
    scales = {}
    for i, name in enumerate(ALL_FEATURES):
        if name in GEV_SCALE:
            scales[name] = round(float(np.median(x[:, i]) * GEV_SCALE[name] / UCI_MEDIAN[name]), 2)
        elif name in ETA_SCALE:
            scales[name] = round(float(x[:, i].std() * ETA_SCALE[name] / UCI_ETA_STD[name]), 4)
    return scales


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


def _heavy_system(rng: np.random.Generator, m: np.ndarray, pt_mean: float) -> np.ndarray:
    """A system of mass ``m`` produced with some transverse momentum and a rapidity spread."""
    n = len(m)
    pt_sys = rng.exponential(pt_mean, n)
    rapidity = rng.normal(0.0, SYSTEM_RAPIDITY, n)
    ph = rng.uniform(-np.pi, np.pi, n)
    mt = np.sqrt(m**2 + pt_sys**2)
    return np.stack(
        [mt * np.cosh(rapidity), pt_sys * np.cos(ph), pt_sys * np.sin(ph), mt * np.sinh(rapidity)],
        axis=1,
    )


def _w_decay(rng, w_had, had_parent, w_lep, lep_parent, helicity):
    """W → q q̄' (two jets) and W → ℓ ν (massless daughters), with the decay angles that the
    W helicity fractions ``helicity`` = (f0, f_left) give in the rest frame of the W's parent
    (the lepton is emitted against the W's flight for a left-handed W, across it for a
    longitudinal one). Which quark is which jet is unknown, so the hadronic angle's sign is
    random."""
    n = len(w_had)
    cos_had = kin.w_decay_angle(rng, n, *helicity) * rng.choice([-1.0, 1.0], n)
    q1, q2 = kin.helicity_decay(rng, had_parent, w_had, 0.0, 0.0, cos_had)
    lep, nu = kin.helicity_decay(
        rng, lep_parent, w_lep, 0.0, 0.0, kin.w_decay_angle(rng, n, *helicity)
    )
    return q1, q2, lep, nu


def _resonance(rng: np.random.Generator, m0: float, width: float, n: int) -> np.ndarray:
    """Breit–Wigner masses truncated to m0 ± max(25 GeV, 2 Γ)."""
    half = max(25.0, 2.0 * width)
    return kin.breit_wigner(rng, m0, width, n, m0 - half, m0 + half)


def _signal_partons(rng: np.random.Generator, n: int):
    h0 = _heavy_system(rng, _resonance(rng, M_H0, GAMMA_H0, n), SIGNAL_PT)
    m_w1 = kin.breit_wigner(rng, M_W, GAMMA_W, n, 60.0, 100.0)
    m_hpm = _resonance(rng, M_HPM, GAMMA_HPM, n)
    w1, hpm = kin.two_body_decay(rng, h0, m_w1, m_hpm)
    m_w2 = kin.breit_wigner(rng, M_W, GAMMA_W, n, 60.0, 100.0)
    m_h = kin.breit_wigner(rng, M_HIGGS, GAMMA_HIGGS, n, 120.0, 130.0)
    w2, h = kin.two_body_decay(rng, hpm, m_w2, m_h)
    b1, b2 = kin.two_body_decay(rng, h, M_B, M_B)
    first_is_hadronic = rng.uniform(size=n) < 0.5
    w_had = np.where(first_is_hadronic[:, None], w1, w2)
    w_lep = np.where(first_is_hadronic[:, None], w2, w1)
    had_parent = np.where(first_is_hadronic[:, None], h0, hpm)
    lep_parent = np.where(first_is_hadronic[:, None], hpm, h0)
    return (h0, *_w_decay(rng, w_had, had_parent, w_lep, lep_parent, W_HELICITY_SIGNAL), b1, b2)


def _background_partons(rng: np.random.Generator, n: int):
    # tt̄ invariant mass: threshold plus a falling spectrum peaking near 400 GeV.
    m_tt = 2 * M_TOP + 5.0 + rng.gamma(TT_SHAPE, TT_SLOPE, n)
    system = _heavy_system(rng, m_tt, SYSTEM_PT)
    m_t1 = kin.breit_wigner(rng, M_TOP, GAMMA_TOP, n, 160.0, 185.0)
    m_t2 = kin.breit_wigner(rng, M_TOP, GAMMA_TOP, n, 160.0, 185.0)
    beta2 = 1.0 - (2 * M_TOP / m_tt) ** 2
    cos_t = kin.propagator_angle(rng, np.minimum(TT_FORWARD * beta2, 0.97))
    # keep the pair above threshold for the sampled top masses
    t1, t2 = kin.two_body_decay(
        rng, system, np.minimum(m_t1, m_tt / 2 - 1), np.minimum(m_t2, m_tt / 2 - 1), cos_t
    )
    m_wa = kin.breit_wigner(rng, M_W, GAMMA_W, n, 60.0, 100.0)
    m_wb = kin.breit_wigner(rng, M_W, GAMMA_W, n, 60.0, 100.0)
    w_had, b1 = kin.two_body_decay(rng, t1, m_wa, M_B)
    w_lep, b2 = kin.two_body_decay(rng, t2, m_wb, M_B)
    return (system, *_w_decay(rng, w_had, t1, w_lep, t2, W_HELICITY_TOP), b1, b2)


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


def _pickup(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """Soft radiation (other partons' radiation, the underlying event) that falls into a jet's
    cone: a massless deposit along the jet of exponential transverse momentum (mean
    JET_PICKUP GeV). It is not the parton's, so it does not change the missing energy."""
    n = len(p)
    if JET_PICKUP <= 0:
        return np.zeros_like(p)
    return kin.from_pt_eta_phi_m(rng.exponential(JET_PICKUP, n), kin.eta(p), kin.phi(p), 0.0)


def _btag(rng: np.random.Generator, flavour: np.ndarray) -> np.ndarray:
    """0 untagged, 1 loose, 2 tight, for jets of ``flavour`` 2 (b), 1 (c) or 0 (light)."""
    n = len(flavour)
    efficiency = np.choose(flavour, [MISTAG_LIGHT, MISTAG_C, BTAG_EFFICIENCY])
    tagged = rng.uniform(size=n) < efficiency
    tight = rng.uniform(size=n) < BTAG_TIGHT
    return np.where(tagged, np.where(tight, 2.0, 1.0), 0.0)


def _merge_close_jets(jets: list[np.ndarray], flavour: list[np.ndarray]) -> None:
    """Partons closer than JET_RADIUS in (η, φ) make one jet, as a cone or anti-kT algorithm
    would: the softer is added to the harder and leaves an empty (zero) jet; the merged jet
    has the heavier flavour. In place."""
    for i in range(len(jets)):
        for j in range(i + 1, len(jets)):
            pt_i, pt_j = kin.pt(jets[i]), kin.pt(jets[j])
            d_phi = np.angle(np.exp(1j * (kin.phi(jets[i]) - kin.phi(jets[j]))))
            close = np.hypot(kin.eta(jets[i]) - kin.eta(jets[j]), d_phi) < JET_RADIUS
            close &= (pt_i > 0) & (pt_j > 0)
            keep_i = close & (pt_i >= pt_j)
            keep_j = close & ~keep_i
            both = jets[i] + jets[j]
            heavier = np.maximum(flavour[i], flavour[j])
            jets[i] = np.where(keep_i[:, None], both, np.where(keep_j[:, None], 0.0, jets[i]))
            jets[j] = np.where(keep_j[:, None], both, np.where(keep_i[:, None], 0.0, jets[j]))
            flavour[i] = np.where(keep_i, heavier, np.where(keep_j, 0, flavour[i]))
            flavour[j] = np.where(keep_j, heavier, np.where(keep_i, 0, flavour[j]))


def _isr_jet(rng: np.random.Generator, system: np.ndarray) -> np.ndarray:
    """The initial-state radiation the heavy system recoils against: opposite in the
    transverse plane, spread in η. When it is hard it can displace a decay jet from the four
    leading jets, as on a real detector."""
    n = len(system)
    return kin.from_pt_eta_phi_m(
        kin.pt(system), rng.normal(0.0, ISR_ETA_WIDTH, n), kin.phi(system) + np.pi, 0.0
    )


def _fsr_jet(rng: np.random.Generator, jets: list[np.ndarray]) -> np.ndarray:
    """A hard gluon radiated by one of the four decay partons (``jets[:4]``), in
    FSR_JET_PROB of events: returned as a massless four-vector (zero where none), its
    three-momentum taken from the parton it comes from (in place), so the missing momentum
    does not change."""
    n = len(jets[0])
    which = rng.integers(0, 4, n)
    emit = rng.uniform(size=n) < FSR_JET_PROB
    z = FSR_JET_Z[0] * (FSR_JET_Z[1] / FSR_JET_Z[0]) ** rng.uniform(size=n)
    dr = FSR_JET_DR[0] * (FSR_JET_DR[1] / FSR_JET_DR[0]) ** rng.uniform(size=n)
    angle = rng.uniform(-np.pi, np.pi, n)
    source = np.take_along_axis(np.stack(jets[:4], axis=1), which[:, None, None], axis=1)[:, 0]
    gluon = kin.from_pt_eta_phi_m(
        np.where(emit, z * kin.pt(source), 0.0),
        kin.eta(source) + dr * np.cos(angle),
        kin.phi(source) + dr * np.sin(angle),
        0.0,
    )
    for k in range(4):
        jets[k] = np.where((which == k)[:, None], jets[k] - gluon, jets[k])
    return gluon


def _detector(rng, system, q1, q2, lep, nu, b1, b2):
    """Reconstruct the event: smeared objects, acceptance, low- and high-level features."""
    n = len(lep)
    lep_reco = kin.from_pt_eta_phi_m(
        kin.pt(lep) * (1 + LEPTON_RESOLUTION * rng.normal(size=n)), kin.eta(lep), kin.phi(lep), 0.0
    )
    # What falls inside each jet: the parton less its out-of-cone radiation (which the
    # calorimeter still measures, so it does not add to the missing energy).
    in_cone = [
        p * (1.0 - np.minimum(rng.exponential(FSR_LOSS, n), 0.5))[:, None] + _pickup(rng, p)
        for p in (q1, q2, b1, b2)
    ] + [_isr_jet(rng, system)]
    # A b that decays semileptonically loses its neutrino: a fraction of what is in the cone.
    neutrinos = []
    for k in (2, 3):
        lost = (rng.uniform(size=n) < SEMILEPTONIC_B) * rng.beta(*SEMILEPTONIC_BETA, size=n)
        # b jets respond worse than light ones (heavy-flavour fragmentation, soft muons)
        lost = np.clip(lost + B_JET_RESPONSE * rng.normal(size=n), -0.5, 0.9)
        neutrinos.append(in_cone[k] * lost[:, None])
        in_cone[k] = in_cone[k] * (1.0 - lost)[:, None]
    in_cone.append(_fsr_jet(rng, in_cone))
    # flavour: 2 b, 1 c (W → cs̄ in half the hadronic W decays), 0 light or gluon
    charm = rng.uniform(size=n) < CHARM_FRACTION
    flavour = [charm.astype(int), np.zeros(n, int), np.full(n, 2), np.full(n, 2)]
    flavour += [np.zeros(n, int), np.zeros(n, int)]
    _merge_close_jets(in_cone, flavour)
    jets = [_smear_jet(rng, j) for j in in_cone]
    tags = [_btag(rng, f) for f in flavour]
    # Missing transverse momentum: the neutrino plus every mismeasurement of visible objects.
    met = nu[:, 1:3] + lep[:, 1:3] - lep_reco[:, 1:3] + MET_SOFT * rng.normal(size=(n, 2))
    for lost in neutrinos:
        met += lost[:, 1:3]
    for true, reco in zip(in_cone, jets, strict=True):
        met += true[:, 1:3] - reco[:, 1:3]

    all_p, all_tag, good, jet_p, jet_tag = _leading_jets(rng, jets, tags)
    ok = (kin.pt(lep_reco) > LEPTON_PT_MIN) & (np.abs(kin.eta(lep_reco)) < ETA_MAX)
    ok &= good.sum(axis=1) >= 4
    n_tags = ((all_tag > 0) & good).sum(axis=1)
    ok &= n_tags <= BTAG_MAX

    feats = np.empty((n, 28))
    feats[:, 0], feats[:, 1], feats[:, 2] = kin.pt(lep_reco), kin.eta(lep_reco), kin.phi(lep_reco)
    feats[:, 3] = np.hypot(met[:, 0], met[:, 1])
    feats[:, 4] = np.arctan2(met[:, 1], met[:, 0])
    for j in range(4):
        pj = jet_p[:, j]
        feats[:, 5 + 4 * j : 9 + 4 * j] = np.stack(
            [kin.pt(pj), kin.eta(pj), kin.phi(pj), jet_tag[:, j]], axis=1
        )
    feats[:, 21:] = _high_level(rng, lep_reco, met, all_p, all_tag, good)
    return feats.astype(np.float32), ok


def _leading_jets(rng, jets: list, tags: list):
    """Every jet and tag stacked, which jets are inside the acceptance, and the four leading
    ones in the UCI file's loose order: decreasing pT measured with a large random error."""
    n = len(jets[0])
    all_p = np.stack(jets, axis=1)  # (n, 6 jets, 4)
    all_tag = np.stack(tags, axis=1)
    jet_pt = np.stack([kin.pt(j) for j in jets], axis=1)
    jet_eta = np.stack([kin.eta(j) for j in jets], axis=1)
    good = (jet_pt > PT_MIN) & (np.abs(jet_eta) < ETA_MAX)
    order = np.argsort(-np.where(good, jet_pt, -1.0), axis=1)[:, :4]
    key = np.log(
        np.maximum(np.take_along_axis(jet_pt, order, axis=1), 1e-3)
    ) + JET_ORDER_NOISE * rng.normal(size=(n, 4))
    order = np.take_along_axis(order, np.argsort(-key, axis=1), axis=1)
    jet_p = np.take_along_axis(all_p, order[:, :, None], axis=1)
    jet_tag = np.take_along_axis(all_tag, order, axis=1)
    return all_p, all_tag, good, jet_p, jet_tag


def _neutrino(rng: np.random.Generator, lep: np.ndarray, met: np.ndarray) -> np.ndarray:
    """Neutrino four-vector from the missing transverse momentum and the W-mass constraint
    (the W mass smeared by W_CONSTRAINT_RESOLUTION), taking the "+" root for p_z (the real
    part when there is none). Not the smaller |p_z|: with that, m_WWbb's upper tail is far
    shorter than the UCI file's, which the "+" root (either in half the events) matches."""
    pt_l2 = lep[:, 1] ** 2 + lep[:, 2] ** 2
    m_w = M_W * (1.0 + W_CONSTRAINT_RESOLUTION * rng.normal(size=len(lep)))
    mu = m_w**2 / 2 + lep[:, 1] * met[:, 0] + lep[:, 2] * met[:, 1]
    a = mu * lep[:, 3] / pt_l2
    met2 = met[:, 0] ** 2 + met[:, 1] ** 2
    disc = np.maximum(a**2 - (lep[:, 0] ** 2 * met2 - mu**2) / pt_l2, 0.0)
    pz = a + np.sqrt(disc)
    return np.stack([np.sqrt(met2 + pz**2), met[:, 0], met[:, 1], pz], axis=1)


def _high_level(rng, lep, met, jet_p, jet_tag, good) -> np.ndarray:
    """The seven masses, from a recipe that uses only reconstructed quantities and every jet
    in the acceptance (not only the four written, as in the UCI file, whose m_bb and m_jj
    use jets beyond them): the two jets with the highest b-tag (then highest pT) are the b
    candidates, the two leading others the W → jj candidates; the b that makes the hadronic
    top mass closest to m_t goes with the jj pair, the other with the lepton and the
    neutrino."""
    pt_ = np.hypot(jet_p[:, :, 1], jet_p[:, :, 2])
    rank = np.argsort(-np.where(good, 1e6 * jet_tag + pt_, -1.0), axis=1)
    by_tag = np.take_along_axis(jet_p, rank[:, :, None], axis=1)
    good_sorted = np.take_along_axis(good, rank, axis=1)
    b_a, b_b = by_tag[:, 0], by_tag[:, 1]
    rest = by_tag[:, 2:]  # the untagged (or less tagged) jets, highest pT first within a tag
    rest_pt = np.where(good_sorted[:, 2:], np.hypot(rest[:, :, 1], rest[:, :, 2]), -1.0)
    rest = np.take_along_axis(rest, np.argsort(-rest_pt, axis=1)[:, :, None], axis=1)
    jj = rest[:, 0] + rest[:, 1]
    use_a = np.abs(kin.mass(jj + b_a) - M_TOP) < np.abs(kin.mass(jj + b_b) - M_TOP)
    b_had = np.where(use_a[:, None], b_a, b_b)
    b_lep = np.where(use_a[:, None], b_b, b_a)
    nu = _neutrino(rng, lep, met)
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
