"""Serve any Python function of an image batch as a black box."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from bar_sdk.adapters._checks import check_batch, check_input_shape, check_label_names
from bar_sdk.contract import check_int, check_scores
from bar_sdk.errors import InvalidInputError

__all__ = ["CallableModel"]


class CallableModel:
    """A function ``fn(x) -> scores`` behind the black-box contract.

    Parameters
    ----------
    fn : callable
        Takes a float32 batch ``(n, C, H, W)`` in [0, 1] and returns scores
        ``(n, n_classes)`` (finite, non-negative; they need not sum to one).
    n_classes : int
        Number of scores per image, >= 2.
    input_shape : tuple of int
        ``(C, H, W)``, C in (1, 3).
    labels : sequence of str, optional
        Class names, one per score.

    Examples
    --------
    >>> import numpy as np
    >>> from bar_sdk.adapters import CallableModel
    >>> brightness = CallableModel(lambda x: np.stack([1 - x.mean((1, 2, 3)), x.mean((1, 2, 3))], 1), 2, (1, 8, 8))
    >>> brightness.predict_proba(np.ones((1, 1, 8, 8), np.float32))
    array([[0., 1.]])
    """

    def __init__(self, fn: Callable[[np.ndarray], Any], n_classes: int, input_shape: Any, labels: Any = None) -> None:
        if not callable(fn):
            raise InvalidInputError(f"fn={fn!r}; expected a callable taking an image batch and returning scores")
        self.fn = fn
        self.n_classes = check_int(n_classes, "n_classes", low=2)
        self.input_shape = check_input_shape(input_shape)
        self.labels = check_label_names(labels, self.n_classes)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Scores from ``fn``, checked for shape and values; float64 ``(n, n_classes)``."""
        x = check_batch(x, self.input_shape)
        return check_scores(self.fn(x), len(x), self.n_classes, name="fn")

    def __repr__(self) -> str:
        name = getattr(self.fn, "__qualname__", type(self.fn).__name__)
        return f"CallableModel({name}, n_classes={self.n_classes}, input_shape={self.input_shape})"
