"""Vectorised relativistic kinematics for the toy Monte Carlo: four-vectors (E, px, py, pz).

Every function takes and returns arrays of shape (n, 4) (or (n,) for scalars), GeV units.
"""

from __future__ import annotations

import numpy as np


def mass(p: np.ndarray) -> np.ndarray:
    m2 = p[:, 0] ** 2 - p[:, 1] ** 2 - p[:, 2] ** 2 - p[:, 3] ** 2
    return np.sqrt(np.maximum(m2, 0.0))


def pt(p: np.ndarray) -> np.ndarray:
    return np.hypot(p[:, 1], p[:, 2])


def phi(p: np.ndarray) -> np.ndarray:
    return np.arctan2(p[:, 2], p[:, 1])


def eta(p: np.ndarray) -> np.ndarray:
    return np.arcsinh(p[:, 3] / np.maximum(pt(p), 1e-9))


def from_pt_eta_phi_m(pt_: np.ndarray, eta_: np.ndarray, phi_: np.ndarray, m: np.ndarray | float):
    px, py, pz = pt_ * np.cos(phi_), pt_ * np.sin(phi_), pt_ * np.sinh(eta_)
    e = np.sqrt(px**2 + py**2 + pz**2 + np.asarray(m) ** 2)
    return np.stack([e, px, py, pz], axis=1)


def boost(p: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Boost ``p``, given in the rest frame of ``parent``, into the frame where parent has its
    four-momentum ``parent``."""
    m = mass(parent)[:, None]
    beta = parent[:, 1:] / parent[:, :1]
    gamma = parent[:, :1] / m
    bp = (beta * p[:, 1:]).sum(axis=1, keepdims=True)
    b2 = (beta**2).sum(axis=1, keepdims=True)
    coef = np.where(b2 > 0, (gamma - 1.0) * bp / np.where(b2 > 0, b2, 1.0), 0.0)
    e = gamma * (p[:, :1] + bp)
    vec = p[:, 1:] + coef * beta + gamma * beta * p[:, :1]
    return np.concatenate([e, vec], axis=1)


def _daughter_momentum(parent: np.ndarray, m1, m2):
    """(events, m1, m2, p*) of a two-body decay: the daughters' masses as per-event arrays and
    their momentum in the parent's rest frame (Källén function; 0 below threshold)."""
    n = len(parent)
    big_m = mass(parent)
    m1 = np.broadcast_to(np.asarray(m1, dtype=float), (n,))
    m2 = np.broadcast_to(np.asarray(m2, dtype=float), (n,))
    lam = (big_m**2 - (m1 + m2) ** 2) * (big_m**2 - (m1 - m2) ** 2)
    return n, m1, m2, np.sqrt(np.maximum(lam, 0.0)) / (2.0 * big_m)


def two_body_decay(rng: np.random.Generator, parent: np.ndarray, m1, m2, cos_theta=None):
    """Decay parent → 1 + 2 in the parent's rest frame, returned in the lab frame: isotropic,
    or with daughter 1 at polar angle ``cos_theta`` (per event) to the beam (z) axis.

    ``m1``/``m2`` are arrays (per-event daughter masses, e.g. Breit–Wigner samples) or floats.
    """
    n, m1, m2, p_star = _daughter_momentum(parent, m1, m2)
    cos_t = rng.uniform(-1.0, 1.0, n) if cos_theta is None else np.asarray(cos_theta, float)
    sin_t = np.sqrt(1.0 - cos_t**2)
    ph = rng.uniform(-np.pi, np.pi, n)
    direction = np.stack([sin_t * np.cos(ph), sin_t * np.sin(ph), cos_t], axis=1)
    mom = p_star[:, None] * direction
    d1 = np.concatenate([np.sqrt(p_star**2 + m1**2)[:, None], mom], axis=1)
    d2 = np.concatenate([np.sqrt(p_star**2 + m2**2)[:, None], -mom], axis=1)
    return boost(d1, parent), boost(d2, parent)


def breit_wigner(rng: np.random.Generator, m0: float, width: float, n: int, lo: float, hi: float):
    """Masses from a Cauchy (non-relativistic Breit–Wigner) distribution truncated to [lo, hi]."""
    u_lo = np.arctan(2 * (lo - m0) / width)
    u_hi = np.arctan(2 * (hi - m0) / width)
    return m0 + 0.5 * width * np.tan(rng.uniform(u_lo, u_hi, n))


def rest_frame(p: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """``p`` (lab) seen in the rest frame of ``frame`` (the inverse of :func:`boost`)."""
    return boost(p, frame * np.array([1.0, -1.0, -1.0, -1.0]))


def helicity_decay(
    rng: np.random.Generator, grandparent: np.ndarray, parent: np.ndarray, m1, m2, cos_theta
):
    """Decay parent → 1 + 2 with daughter 1 at polar angle ``cos_theta`` (per event) to the
    helicity axis: the parent's flight direction in the rest frame of ``grandparent`` (e.g. a
    W from a top: the angle that the W helicity fractions set). The azimuth is uniform; the
    daughters are returned in the lab frame (boosted via the grandparent's frame, so no
    Wigner rotation is lost)."""
    n, m1, m2, p_star = _daughter_momentum(parent, m1, m2)
    in_gp = rest_frame(parent, grandparent)
    norm = np.linalg.norm(in_gp[:, 1:], axis=1, keepdims=True)
    # a parent at rest in the grandparent's frame (at threshold) has no direction: take z
    axis = np.where(norm > 0, in_gp[:, 1:] / np.where(norm > 0, norm, 1.0), [[0.0, 0.0, 1.0]])
    # two unit vectors perpendicular to the axis
    helper = np.where(np.abs(axis[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    e1 = np.cross(axis, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(axis, e1)
    cos_t = np.asarray(cos_theta, dtype=float)
    sin_t = np.sqrt(np.maximum(1.0 - cos_t**2, 0.0))
    ph = rng.uniform(-np.pi, np.pi, n)
    direction = (
        cos_t[:, None] * axis
        + (sin_t * np.cos(ph))[:, None] * e1
        + (sin_t * np.sin(ph))[:, None] * e2
    )
    mom = p_star[:, None] * direction
    d1 = np.concatenate([np.sqrt(p_star**2 + m1**2)[:, None], mom], axis=1)
    d2 = np.concatenate([np.sqrt(p_star**2 + m2**2)[:, None], -mom], axis=1)
    return tuple(boost(boost(d, in_gp), grandparent) for d in (d1, d2))


def w_decay_angle(rng: np.random.Generator, n: int, f0: float, f_left: float, f_right: float = 0.0):
    """cos θ* of the W's down-type daughter (the charged lepton) to the W helicity axis, for
    helicity fractions f0 (longitudinal: 3/4 sin²θ), f_left (3/8 (1 − cos θ)²) and f_right
    (3/8 (1 + cos θ)²); they are normalised to sum to one."""
    total = f0 + f_left + f_right
    u = rng.uniform(size=n)
    # longitudinal: the median of three uniforms on (−1, 1) has density 3/4 (1 − c²)
    three = rng.uniform(-1.0, 1.0, (n, 3))
    longitudinal = three.sum(axis=1) - three.max(axis=1) - three.min(axis=1)
    # transverse: 1 − c = 2 v^(1/3) has density 3/8 (1 − c)²
    left = 1.0 - 2.0 * np.cbrt(rng.uniform(size=n))
    return np.select([u < f0 / total, u < (f0 + f_left) / total], [longitudinal, left], -left)


def propagator_angle(rng: np.random.Generator, a: np.ndarray) -> np.ndarray:
    """cos θ from the density 1 / (1 − a cos²θ) on (−1, 1), 0 ≤ a < 1 per event (a t-channel
    propagator: a = β² of the produced particles peaks them along the beam)."""
    root = np.sqrt(np.clip(a, 1e-12, 1.0 - 1e-9))
    u = rng.uniform(-1.0, 1.0, len(root))
    return np.tanh(u * np.arctanh(root)) / root
