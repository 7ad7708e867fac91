"""Adversarial programs: how a parameter vector becomes the images a model sees.

A program has two parts, kept apart so each can change alone:

- a *parameterisation* decodes a parameter vector ``theta`` (d,) into a
  full-frame weight ``W`` (C, H, W): :class:`FullResolution` (one parameter per
  free pixel, as BAR), :class:`GridParameterization` (a coarse grid upsampled
  to the frame) and :class:`LowRankParameterization` (per channel ``A B^T``).
  Zeroth-order error grows with d, so the low-dimensional forms train far
  faster per query;
- a *frame* combines ``W`` with the (resized) target images:
  :class:`PadProgram` is BAR's pad-and-mask form ``X = pad(x) + tanh(W * M)``
  (in [-1, 1], mapped to [0, 1]), :class:`FullFrameProgram` the additive
  "watermark" form ``X = clip(x_resized + strength * tanh(W), 0, 1)``.

Everything is NumPy. Each piece also has its adjoint, so exact gradients
from a white-box model flow back to ``theta`` without autograd here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import lru_cache
from typing import Any

import numpy as np

from bar_sdk.contract import check_int
from bar_sdk.errors import InvalidInputError

__all__ = [
    "interpolation_matrix",
    "resize_images",
    "einsum_order",
    "Parameterization",
    "FullResolution",
    "GridParameterization",
    "LowRankParameterization",
    "PadProgram",
    "FullFrameProgram",
]


def interpolation_matrix(n_in: int, n_out: int, mode: str = "bilinear", dtype: Any = np.float32) -> np.ndarray:
    """The ``(n_out, n_in)`` matrix that resamples a 1-D signal (half-pixel centres).

    The one resampling rule of the package: ``"bilinear"`` matches
    ``torch.nn.functional.interpolate(..., align_corners=False)`` (the identity
    when ``n_in == n_out``); ``"area"`` averages when shrinking; ``"nearest"``.
    Programs, layouts and the attacks' upsampler (:mod:`bar_sdk.attacks.resize`)
    all use it; weights are computed in float64 and returned as ``dtype``.
    """
    if mode == "nearest":
        idx = np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(int), n_in - 1)
        mat = np.zeros((n_out, n_in), dtype=dtype)
        mat[np.arange(n_out), idx] = 1.0
        return mat
    if mode == "area" and n_out < n_in:
        edges = np.arange(n_out + 1) * n_in / n_out
        mat = np.zeros((n_out, n_in), dtype=np.float64)
        for i in range(n_out):
            for j in range(int(np.floor(edges[i])), int(np.ceil(edges[i + 1]))):
                mat[i, j] = min(edges[i + 1], j + 1) - max(edges[i], j)
        return (mat / mat.sum(1, keepdims=True)).astype(dtype)
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    mat = np.zeros((n_out, n_in), dtype=np.float64)
    np.add.at(mat, (np.arange(n_out), lo), 1 - frac)
    np.add.at(mat, (np.arange(n_out), hi), frac)
    return mat.astype(dtype, copy=False)


def resize_images(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``(n, C, h, w)`` images to ``size`` (area when shrinking, bilinear when growing)."""
    h, w = x.shape[2:]
    if (h, w) == tuple(size):
        return x.astype(np.float32, copy=False)
    rows = interpolation_matrix(h, size[0], "area" if size[0] < h else "bilinear")
    cols = interpolation_matrix(w, size[1], "area" if size[1] < w else "bilinear")
    out = np.einsum("Hh,nchw,Ww->ncHW", rows, x.astype(np.float32, copy=False), cols, optimize=True)
    return np.clip(out, 0.0, 1.0)  # interpolation of values in [0, 1] stays there up to rounding


@lru_cache(maxsize=64)
def einsum_order(subscripts: str, *shapes: tuple[int, ...]) -> list:
    """The order ``np.einsum(..., optimize=True)`` would choose for these shapes, searched once per shapes
    (the search cost more than the products in a step; the same order gives the same numbers)."""
    return np.einsum_path(subscripts, *(np.empty(s, np.float32) for s in shapes), optimize="greedy")[0]


class Parameterization(ABC):
    """Decodes ``theta`` (m, d) into full-frame weights (m, C, H, W)."""

    def bind(self, shape: tuple[int, int, int], mask: np.ndarray) -> "Parameterization":
        """Fix the frame shape and the mask of free pixels; return self."""
        self.shape = tuple(shape)
        self.mask = mask.astype(np.float32)
        self._setup()
        return self

    def _setup(self) -> None:  # noqa: B027 (an optional hook: most parameterizations need none)
        pass

    @property
    @abstractmethod
    def n_params(self) -> int:
        """d, the number of trainable parameters."""

    @abstractmethod
    def decode(self, theta: np.ndarray) -> np.ndarray:
        """``(m, d) -> (m, C, H, W)``; zero outside the mask."""

    @abstractmethod
    def adjoint(self, theta: np.ndarray, grad_w: np.ndarray) -> np.ndarray:
        """Chain rule: ``dL/dtheta (d,)`` from ``dL/dW (C, H, W)`` at ``theta (d,)``."""

    def init(self, rng: np.random.Generator, scale: float) -> np.ndarray:
        """A small random start (a uniform frame creates exact ties in max-pooling)."""
        return scale * rng.standard_normal(self.n_params)


class FullResolution(Parameterization):
    """One parameter per free pixel and channel (BAR's original program)."""

    def _setup(self):
        self._index = np.flatnonzero(self.mask.ravel() > 0)

    @property
    def n_params(self):
        return int(self._index.size)

    def decode(self, theta):
        theta = np.atleast_2d(theta)
        out = np.zeros((theta.shape[0], int(np.prod(self.shape))), dtype=np.float32)
        out[:, self._index] = theta
        return out.reshape((theta.shape[0],) + self.shape)

    def adjoint(self, theta, grad_w):
        return grad_w.ravel()[self._index].astype(np.float64)


class GridParameterization(Parameterization):
    """A coarse ``grid_size x grid_size`` grid per channel, upsampled bilinearly.

    Grid cells whose upsampled footprint lies entirely under the target (where
    the mask is zero) are dropped, so d counts only cells that can matter.
    """

    def __init__(self, grid_size: int = 8):
        self.grid_size = grid_size

    def _setup(self):
        g = check_int(self.grid_size, "grid_size", low=1)
        c, h, w = self.shape
        if g > 2 * max(h, w):  # bilinear upsampling reads two cells per pixel and axis: the rest reach no pixel
            raise InvalidInputError(
                f"grid_size={g} for a {h}x{w} frame; expected an integer in [1, {2 * max(h, w)}] (twice the "
                "frame's longer side: a finer grid has cells no pixel is drawn from)"
            )
        self._rows = interpolation_matrix(g, h, "bilinear")  # (H, g)
        self._cols = interpolation_matrix(g, w, "bilinear")  # (W, g)
        # footprint of cell (i, j) on the free pixels of each channel
        foot = np.einsum("Hi,cHW,Wj->cij", self._rows, self.mask, self._cols)
        self._keep = np.flatnonzero(foot.ravel() > 1e-6)

    @property
    def n_params(self):
        return int(self._keep.size)

    def decode(self, theta):
        theta = np.atleast_2d(theta)
        c, g = self.shape[0], self.grid_size
        full = np.zeros((theta.shape[0], c * g * g), dtype=np.float32)
        full[:, self._keep] = theta
        grid = full.reshape(theta.shape[0], c, g, g)
        path = einsum_order("Hi,mcij,Wj->mcHW", self._rows.shape, grid.shape, self._cols.shape)
        frame = np.einsum("Hi,mcij,Wj->mcHW", self._rows, grid, self._cols, optimize=path)
        return frame * self.mask

    def adjoint(self, theta, grad_w):
        g_grid = np.einsum("Hi,cHW,Wj->cij", self._rows, grad_w * self.mask, self._cols, optimize=True)
        return g_grid.ravel()[self._keep].astype(np.float64)


class LowRankParameterization(Parameterization):
    """Per channel ``W_c = A_c B_c^T`` with ``A_c (H, r)``, ``B_c (W, r)``; d = C r (H + W)."""

    def __init__(self, rank: int = 2):
        self.rank = rank

    def _setup(self):
        r = check_int(self.rank, "rank", low=1)
        c, h, w = self.shape
        if r > min(h, w):  # A B^T has rank at most min(H, W): more columns only add parameters (and memory)
            raise InvalidInputError(
                f"rank={r} for a {h}x{w} frame; expected an integer in [1, {min(h, w)}] "
                "(a product A B^T of H x r and W x r factors has rank at most min(H, W))"
            )

    @property
    def n_params(self):
        c, h, w = self.shape
        return c * self.rank * (h + w)

    def _split(self, theta):
        c, h, w = self.shape
        r = self.rank
        a = theta[:, : c * h * r].reshape(-1, c, h, r)
        b = theta[:, c * h * r :].reshape(-1, c, w, r)
        return a, b

    def decode(self, theta):
        a, b = self._split(np.atleast_2d(theta))
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused, with its own error, downstream
            return (np.einsum("mchr,mcwr->mchw", a, b) * self.mask).astype(np.float32)

    def adjoint(self, theta, grad_w):
        a, b = self._split(np.atleast_2d(theta))
        g = grad_w * self.mask
        ga = np.einsum("chw,cwr->chr", g, b[0])
        gb = np.einsum("chw,chr->cwr", g, a[0])
        return np.concatenate([ga.ravel(), gb.ravel()]).astype(np.float64)

    def init(self, rng, scale):
        # both factors random: A = B = 0 is a saddle with zero gradient
        return np.sqrt(scale) * rng.standard_normal(self.n_params)


class PadProgram:
    """BAR's program: the target, resized, sits in the centre; the frame around it is trained.

    ``X = (pad(2 x - 1) + tanh(W * M) + 1) / 2`` with ``M`` zero on the target
    and one elsewhere, so the target pixels are untouched and ``W = 0`` is a
    uniform grey frame.
    """

    def __init__(self, input_shape, target_hw, parameterization: Parameterization):
        c, h, w = input_shape
        th, tw = target_hw
        if th > h or tw > w:
            raise InvalidInputError(
                f"target_size={tuple(target_hw)} is larger than the model's input {h}x{w}; expected at most ({h}, {w})"
            )
        self.input_shape = tuple(input_shape)
        self.target_hw = (th, tw)
        self.top, self.left = (h - th) // 2, (w - tw) // 2
        mask = np.ones(input_shape, dtype=np.float32)
        mask[:, self.top : self.top + th, self.left : self.left + tw] = 0.0
        self.mask = mask
        self.param = parameterization.bind(input_shape, mask)

    @property
    def n_params(self) -> int:
        return self.param.n_params

    def frame(self, theta: np.ndarray) -> np.ndarray:
        """The program ``P = tanh(W * M)`` in [-1, 1]: ``(m, C, H, W)``."""
        return np.tanh(self.param.decode(theta))

    def embed(self, x: np.ndarray) -> np.ndarray:
        """Targets (n, C, th, tw) in [0, 1] -> padded (n, C, H, W) in [-1, 1], zero outside."""
        out = np.zeros((x.shape[0],) + self.input_shape, dtype=np.float32)
        out[:, :, self.top : self.top + self.target_hw[0], self.left : self.left + self.target_hw[1]] = 2 * x - 1
        return out

    def apply(self, theta: np.ndarray, embedded: np.ndarray) -> np.ndarray:
        """Images for every (program, target) pair: ``(m * n, C, H, W)`` in [0, 1], program-major."""
        frames = self.frame(theta)
        out = (embedded[None] + frames[:, None] + 1.0) * 0.5
        return out.reshape((-1,) + self.input_shape)

    def gradient(self, theta: np.ndarray, embedded: np.ndarray, grad_images: np.ndarray) -> np.ndarray:
        """Exact ``dL/dtheta`` from ``dL/dX`` of the images of one program (white-box)."""
        frame = self.frame(theta[None])[0]
        grad_w = 0.5 * grad_images.sum(axis=0) * (1.0 - frame**2) * self.mask
        return self.param.adjoint(theta, grad_w)


class FullFrameProgram(PadProgram):
    """Additive "watermark" program over the whole frame.

    The target is resized to the full input and ``X = clip(x + strength *
    tanh(W), 0, 1)``; ``strength`` bounds how far the program may move a pixel.
    """

    def __init__(self, input_shape, parameterization: Parameterization, strength: float = 0.5):
        self.input_shape = tuple(input_shape)
        self.target_hw = tuple(input_shape[1:])
        self.top = self.left = 0
        self.mask = np.ones(input_shape, dtype=np.float32)
        self.strength = strength
        self.param = parameterization.bind(input_shape, self.mask)

    def frame(self, theta):
        return self.strength * np.tanh(self.param.decode(theta))

    def embed(self, x):
        return x.astype(np.float32, copy=False)

    def apply(self, theta, embedded):
        out = np.clip(embedded[None] + self.frame(theta)[:, None], 0.0, 1.0)
        return out.reshape((-1,) + self.input_shape)

    def gradient(self, theta, embedded, grad_images):
        t = np.tanh(self.param.decode(theta[None])[0])
        raw = embedded + self.strength * t
        inside = (raw > 0) & (raw < 1)
        grad_w = (grad_images * inside).sum(axis=0) * self.strength * (1.0 - t**2)
        return self.param.adjoint(theta, grad_w)
