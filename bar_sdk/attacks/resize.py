"""Attack-space reduction: a small perturbation grid, bilinearly upsampled.

ZOO and the universal perturbation search a ``(C, h, w)`` grid smaller
than the image; :class:`Upsampler` maps it linearly to ``(C, H, W)``
(bilinear, half-pixel centres like ``torch.nn.functional.interpolate``
with ``align_corners=False``). Being linear, ``up(a + t * e_k)`` is
``up(a) + t * up(e_k)``, which ZOO uses to build its probes cheaply.
"""

from __future__ import annotations

import numpy as np

from bar_sdk.program import einsum_order, interpolation_matrix

__all__ = ["bilinear_matrix", "Upsampler"]


def bilinear_matrix(n_out: int, n_in: int) -> np.ndarray:
    """``(n_out, n_in)`` float64 matrix of 1-D bilinear interpolation (identity when equal).

    :func:`bar_sdk.program.interpolation_matrix` in float64, rows first.
    """
    return interpolation_matrix(n_in, n_out, "bilinear", dtype=np.float64)


class Upsampler:
    """Linear map from a ``(C, h, w)`` grid to ``(C, H, W)`` images."""

    def __init__(self, grid: tuple[int, int, int], image: tuple[int, int, int]) -> None:
        self.grid = (int(grid[0]), int(grid[1]), int(grid[2]))
        self.image = (int(image[0]), int(image[1]), int(image[2]))
        self.rows = bilinear_matrix(self.image[1], self.grid[1])
        self.cols = bilinear_matrix(self.image[2], self.grid[2])
        self.identity = self.grid == self.image

    @property
    def size(self) -> int:
        return int(np.prod(self.grid))

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        """Upsample flat grids ``(..., d)`` to images ``(..., C, H, W)``."""
        theta = np.asarray(theta)
        grids = theta.reshape(theta.shape[:-1] + self.grid)
        if self.identity:
            return grids
        path = einsum_order("hi,...cij,wj->...chw", self.rows.shape, grids.shape, self.cols.shape)
        images: np.ndarray = np.einsum("hi,...cij,wj->...chw", self.rows, grids, self.cols, optimize=path)
        return images

    def basis(self, coords: np.ndarray) -> np.ndarray:
        """``up(e_k)`` for flat grid coordinates ``coords``: ``(k, C, H, W)``."""
        c, i, j = np.unravel_index(np.asarray(coords), self.grid)
        out = np.zeros((len(c),) + self.image)
        out[np.arange(len(c)), c] = self.rows[:, i].T[:, :, None] * self.cols[:, j].T[:, None, :]
        return out
