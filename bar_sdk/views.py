"""Several views of each target image, read together (``BARClassifier(views=N)``).

An API that answers its top k of 1,000 classes says nothing about the rest.
Read from a few views of the same image (the target as placed, mirrored, and
shifted by a seventh of its side, wrapping), each answer names another k, so
the readout sees more of the scores. Each view is one query. The views'
log-scores (a left-out score read as the readouts read it, half the row's
smallest: :func:`~bar_sdk.mapping.log_features`) are averaged, and the average
is what the readout and the label mapping read, as one answer.

Only the readout pass and predictions read several views at once. Training
reads each image once, as placed, or (``augment=True``) from one view drawn at
random at each step, at no extra query (:func:`random_views`).
Views are fixed transforms, the same at fit and at predict, so the readout
learns on them; a task where a mirror image means another class (digits,
text) should keep ``views=1``.

On EfficientNet-Lite0 with top-10 answers (test splits,
``benchmarks/results/reprogram_imagenet_128_notes.md``), four views lifted the
default program's balanced accuracy on brain MRI by 5 points and were level on
BreastMNIST and PneumoniaMNIST; the untrained grey frame read the same way
gained 3-6 points on all three.
"""

from __future__ import annotations

import numpy as np

from bar_sdk.mapping import log_features

__all__ = ["MAX_VIEWS", "VIEWS", "combine_views", "random_views", "view_images"]

VIEWS = ("as placed", "mirrored", "shifted right", "shifted down", "shifted left", "shifted up")
"""The views, in the order ``views=N`` takes the first N."""

MAX_VIEWS = len(VIEWS)


def _shift(side: int) -> int:
    return max(1, round(side / 7))


def _region_and_moves(program):
    """The target's region in the embedded image, and the moves of views 1.. (view 0 is the image itself)."""
    th, tw = program.target_hw
    region = (slice(None), slice(None), slice(program.top, program.top + th), slice(program.left, program.left + tw))
    dh, dw = _shift(th), _shift(tw)
    moves = (
        lambda r: r[..., ::-1],
        lambda r: np.roll(r, dw, axis=-1),
        lambda r: np.roll(r, dh, axis=-2),
        lambda r: np.roll(r, -dw, axis=-1),
        lambda r: np.roll(r, -dh, axis=-2),
    )
    return region, moves


def view_images(program, embedded: np.ndarray, views: int) -> np.ndarray:
    """The ``views`` views of embedded targets ``(n, C, H, W)``: ``(views * n, C, H, W)``, view-major.

    Only the target's own region (``program.top``, ``program.left``, ``program.target_hw``)
    moves; a pad program's frame stays where it is. ``views=1`` returns ``embedded`` itself.
    """
    if views == 1:
        return embedded
    region, moves = _region_and_moves(program)
    target = embedded[region]
    out = np.repeat(embedded[None], views, axis=0)
    for i in range(1, views):
        out[i][region] = moves[i - 1](target)
    return out.reshape((-1,) + embedded.shape[1:])


def random_views(program, embedded: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each embedded target ``(n, C, H, W)`` from one of the :data:`VIEWS`, drawn uniformly at random from
    ``rng`` (one draw of ``n`` integers): training data augmentation at no extra query. Each image is moved
    by its own view only."""
    pick = rng.integers(0, MAX_VIEWS, size=len(embedded))
    region, moves = _region_and_moves(program)
    out = embedded.copy()
    for i in range(1, MAX_VIEWS):
        rows = np.flatnonzero(pick == i)
        if len(rows):
            index = (rows,) + region[1:]  # these images' target regions
            out[index] = moves[i - 1](embedded[index])
    return out


def combine_views(scores: np.ndarray, views: int) -> np.ndarray:
    """One score row per image from the ``(views * n, n_source)`` view-major scores: the views' log-scores
    averaged, exponentiated. ``views=1`` returns ``scores`` unchanged."""
    if views == 1:
        return scores
    logs = log_features(scores).reshape(views, -1, scores.shape[1])
    return np.exp(logs.mean(axis=0))
