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


def two_body_decay(rng: np.random.Generator, parent: np.ndarray, m1, m2):
    """Isotropic decay parent → 1 + 2 in the parent's rest frame, returned in the lab frame.

    ``m1``/``m2`` are arrays (per-event daughter masses, e.g. Breit–Wigner samples) or floats.
    """
    n = len(parent)
    big_m = mass(parent)
    m1 = np.broadcast_to(np.asarray(m1, dtype=float), (n,))
    m2 = np.broadcast_to(np.asarray(m2, dtype=float), (n,))
    # Daughter momentum in the rest frame (Källén function); 0 below threshold.
    lam = (big_m**2 - (m1 + m2) ** 2) * (big_m**2 - (m1 - m2) ** 2)
    p_star = np.sqrt(np.maximum(lam, 0.0)) / (2.0 * big_m)
    cos_t = rng.uniform(-1.0, 1.0, n)
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
