"""Make any model answer like a real API: top-k scores, rounded scores, label only.

Each wrapper is itself a model (``predict_proba``, ``n_classes``,
``input_shape``, ``labels`` passed through), so wrappers compose:
``Rounded(TopK(model, 5), 2)`` behaves like an API returning its five best
labels with two decimals. Wrappers never offer gradients, even around a model
that has them: a restricted model is a black box.

Label-only convention
---------------------
A model whose scores carry no more than the predicted label has the
attribute ``label_only = True`` (:class:`LabelOnly` sets it, and the other
wrappers pass it through). Score-based attacks and reprogramming check
``getattr(model, "label_only", False)`` and refuse such a model with a clear
error instead of estimating gradients from flat one-hot answers. A model
without the attribute is taken to return real scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bar_sdk.contract import check_int, check_model, check_scores

__all__ = ["TopK", "Rounded", "LabelOnly"]


class _Restricted:
    """Shared plumbing: hold the inner model and pass its description through."""

    def __init__(self, model: Any) -> None:
        self.n_classes, self.input_shape = check_model(model)
        self.model = model
        self.labels = getattr(model, "labels", None)
        self.label_only = bool(getattr(model, "label_only", False))

    def _scores(self, x: np.ndarray) -> np.ndarray:
        return check_scores(self.model.predict_proba(x), len(x), self.n_classes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model!r}{self._extra()})"

    def _extra(self) -> str:
        return ""


class TopK(_Restricted):
    """Keep the ``k`` largest scores of each row and zero the rest, like a top-k API.

    Parameters
    ----------
    model : black box
    k : int
        Scores kept per image, 1 <= k <= n_classes. Ties are broken by the
        lower class index, so exactly ``k`` entries are kept.
    """

    def __init__(self, model: Any, k: int) -> None:
        super().__init__(model)
        self.k = check_int(k, "k", low=1, high=self.n_classes)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        scores = self._scores(x)
        # Stable sort on the negated scores: largest first, ties to the lower index.
        keep = np.argsort(-scores, axis=1, kind="stable")[:, : self.k]
        out = np.zeros_like(scores)
        np.put_along_axis(out, keep, np.take_along_axis(scores, keep, axis=1), axis=1)
        return out

    def _extra(self) -> str:
        return f", k={self.k}"


class Rounded(_Restricted):
    """Round every score to ``decimals`` places, like an API printing two decimals.

    Parameters
    ----------
    model : black box
    decimals : int, default 2
        Decimal places kept, >= 0.
    """

    def __init__(self, model: Any, decimals: int = 2) -> None:
        super().__init__(model)
        self.decimals = check_int(decimals, "decimals", low=0)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.round(self._scores(x), self.decimals)

    def _extra(self) -> str:
        return f", decimals={self.decimals}"


class LabelOnly(_Restricted):
    """Answer with the predicted label only: a one-hot row at the argmax.

    Sets ``label_only = True`` (see the module docstring): score-based
    attacks refuse it. Ties go to the lower class index.
    """

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.label_only = True

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        scores = self._scores(x)
        out = np.zeros_like(scores)
        out[np.arange(len(scores)), np.argmax(scores, axis=1)] = 1.0
        return out
