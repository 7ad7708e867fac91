"""Norms, projections onto the threat model, and 8-bit quantisation.

Images are float arrays in [0, 1]; ``x0`` is one clean image ``(C, H, W)``
and ``x`` one image or a stack ``(m, C, H, W)`` around it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NORMS", "clip01", "distance", "project", "quantize", "on_grid"]

NORMS = ("linf", "l2")

#: relative and absolute slack when checking that a point lies inside the ball
_TOL_REL, _TOL_ABS = 1e-5, 1e-6


def clip01(x: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] (``np.clip`` costs several times more on the tiny arrays of per-sample loops)."""
    clipped: np.ndarray = np.minimum(np.maximum(x, 0.0), 1.0)
    return clipped


def _flat(delta: np.ndarray) -> np.ndarray:
    return delta.reshape(-1, int(np.prod(delta.shape[-3:])))


def distance(x: np.ndarray, x0: np.ndarray, norm: str) -> np.ndarray:
    """``||x - x0||`` per image, as float64 ``(m,)`` (a scalar array for one image)."""
    delta = _flat(np.asarray(x, dtype=np.float64) - np.asarray(x0, dtype=np.float64))
    out = np.abs(delta).max(axis=1) if norm == "linf" else np.sqrt((delta * delta).sum(axis=1))
    projected: np.ndarray = out if np.ndim(x) == 4 else out[0]
    return projected


def inside(dist: np.ndarray | float, eps: float | None) -> np.ndarray:
    """``dist <= eps`` up to float rounding (always true for ``eps=None``)."""
    if eps is None:
        return np.ones(np.shape(dist), dtype=bool)
    return np.asarray(dist) <= eps * (1 + _TOL_REL) + _TOL_ABS


def project(x: np.ndarray, x0: np.ndarray, norm: str, eps: float | None) -> np.ndarray:
    """Bring ``x`` into the ``eps``-ball around ``x0`` and into [0, 1].

    L2: the perturbation is scaled down to length ``eps`` and then clipped
    to the box (clipping only shortens it, so the result stays in the ball).
    """
    x = np.asarray(x, dtype=np.float32)
    if eps is not None:
        if norm == "linf":
            x = np.minimum(np.maximum(x, x0 - eps), x0 + eps)
        else:
            delta = x - x0
            n = np.sqrt((_flat(delta).astype(np.float64) ** 2).sum(axis=1))
            scale = np.minimum(1.0, eps / np.maximum(n, 1e-12)).astype(np.float32)
            delta = delta * scale.reshape((-1,) + (1,) * 3) if x.ndim == 4 else delta * scale[0]
            x = x0 + delta
    return clip01(x).astype(np.float32, copy=False)


def on_grid(x: np.ndarray) -> np.ndarray:
    """True per image when every value is ``k / 255`` (what PNG keeps exactly)."""
    scaled = _flat(np.asarray(x, dtype=np.float64)) * 255.0
    on_grid: np.ndarray = np.abs(scaled - np.round(scaled)).max(axis=1) <= 1e-3
    return on_grid


def quantize(x: np.ndarray, x0: np.ndarray, norm: str, eps: float | None) -> np.ndarray:
    """Round ``x`` to the 8-bit grid ``k / 255`` and stay inside the threat model.

    Pixels are rounded to the nearest level; an image that this pushes
    outside the ``eps``-ball is rounded toward ``x0`` instead, which never
    lengthens the perturbation of a pixel when ``x0`` is itself 8-bit (e.g.
    loaded from uint8). Both roundings stay in [0, 1].
    """
    x = np.asarray(x, dtype=np.float32)
    single = x.ndim == 3
    xs = x[None] if single else x
    q = (np.round(xs.astype(np.float64) * 255.0) / 255.0).astype(np.float32)
    if eps is not None:
        outside = ~inside(distance(q, x0, norm), eps)
        if outside.any():
            lo = np.floor(xs[outside].astype(np.float64) * 255.0 + 1e-6) / 255.0
            hi = np.ceil(xs[outside].astype(np.float64) * 255.0 - 1e-6) / 255.0
            x0b = np.broadcast_to(x0, xs[outside].shape)
            toward = np.where(np.abs(lo - x0b) <= np.abs(hi - x0b), lo, hi)
            q[outside] = toward.astype(np.float32)
    q = np.clip(q, 0.0, 1.0)
    return q[0] if single else q
