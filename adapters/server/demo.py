"""A tiny deterministic model to serve when you have none at hand."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bar_sdk.contract import check_images, check_int

__all__ = ["DemoModel"]


class DemoModel:
    """Softmax of a fixed random linear map of the pixels (NumPy only).

    Satisfies the black-box contract; meant for rehearsing against the local
    server (``python -m bar_sdk.adapters.server --model demo``) and for tests.

    Parameters
    ----------
    input_shape : tuple (C, H, W)
    n_classes : int
    labels : sequence of str, optional
        Default ``class_0``, ``class_1``, ...
    random_state : int
        Seed of the weights.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 8, 8),
        n_classes: int = 10,
        labels: Sequence[str] | None = None,
        random_state: int = 0,
    ) -> None:
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_classes = check_int(n_classes, "n_classes", low=2)
        self.labels = tuple(labels) if labels is not None else tuple(f"class_{i}" for i in range(self.n_classes))
        rng = np.random.default_rng(random_state)
        d = int(np.prod(self.input_shape))
        self._w = rng.normal(0.0, 4.0 / np.sqrt(d), size=(d, self.n_classes)).astype(np.float32)
        self._b = rng.normal(0.0, 0.1, size=self.n_classes).astype(np.float32)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = check_images(x, "x", allow_nhwc=False)
        logits = (x.reshape(len(x), -1) - 0.5) @ self._w + self._b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        probs: np.ndarray = p / p.sum(axis=1, keepdims=True)
        return probs

    def __repr__(self) -> str:
        return f"DemoModel(input_shape={self.input_shape}, n_classes={self.n_classes})"
