"""Checks a transfer study runs before its first query: every fit it will make, and the test split.

A study fits several classifiers one after another; a setting only the
third fit would refuse must not cost the queries of the first two.
:func:`check_fit` runs every check :meth:`BARClassifier.fit` makes before
its first query, on a stand-in that has the model's contract but answers
nothing (its first query stops the trial: nothing is sent, nothing
counted). :func:`check_test_split` checks the data the studies score on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bar_sdk.contract import check_model, has_gradients, is_label_only
from bar_sdk.errors import InvalidInputError

__all__ = ["StandIn", "check_fit", "check_test_split"]


class _Trial(Exception):
    """Raised by a stand-in at its first query: the fit's checks all passed."""


class StandIn:
    """A model's contract (classes, input shape, labels, label-only, gradients) without its answers."""

    def __init__(
        self,
        n_classes: int,
        input_shape: tuple[int, int, int],
        labels: Any = None,
        label_only: bool = False,
        gradients: bool = False,
    ):
        self.n_classes, self.input_shape, self.labels = n_classes, tuple(input_shape), labels
        self.label_only = label_only
        if gradients:
            self.log_proba_gradient = self._stop

    @classmethod
    def of(cls, model: Any, name: str = "model") -> "StandIn":
        n_classes, shape = check_model(model, name)
        return cls(n_classes, shape, getattr(model, "labels", None), is_label_only(model), has_gradients(model))

    def predict_proba(self, x: Any) -> np.ndarray:
        raise _Trial

    def _stop(self, x: Any, loss_fn: Any) -> Any:
        raise _Trial


def check_fit(clf: Any, X: Any, y: Any, model: Any = None) -> None:
    """Raise what ``clf.fit(X, y)`` would raise before its first query; send nothing.

    ``clf`` is a :class:`BARClassifier`; the trial fits a copy of it on a
    :class:`StandIn` (``model`` when given, else one for ``clf.model``),
    without a checkpoint (the trial must write nothing).
    """
    params = clf.get_params(deep=False)
    params["model"] = model if model is not None else StandIn.of(params["model"])
    if "checkpoint" in params:
        params["checkpoint"] = None
    try:
        type(clf)(**params).fit(X, y)
    except _Trial:
        return


def check_test_split(X_train: Any, y_train: Any, X_test: Any, y_test: Any, layout: Any = None) -> None:
    """``X_test`` shaped like ``X_train`` (readable by ``layout`` when given), ``y_test`` one known label each."""
    x_train, x_test = np.asarray(X_train), np.asarray(X_test)
    if x_test.ndim != x_train.ndim or x_test.shape[1:] != x_train.shape[1:]:
        raise InvalidInputError(
            f"X_test has shape {x_test.shape}; expected samples shaped like X_train's {x_train.shape[1:]}"
        )
    n = len(layout.transform(X_test)) if layout is not None else len(x_test)
    labels = np.asarray(y_test)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != n:
        raise InvalidInputError(
            f"y_test has shape {np.asarray(y_test).shape}; expected ({n},) labels, one per X_test sample"
        )
    known = np.asarray(y_train).ravel()
    numeric = "biuf"
    if (labels.dtype.kind in numeric) != (known.dtype.kind in numeric):
        raise InvalidInputError(
            f"y_test has dtype {labels.dtype}; expected labels of the kind y_train holds ({known.dtype})"
        )
    try:
        unknown = np.setdiff1d(np.unique(labels), np.unique(known))
    except TypeError:  # labels that cannot be compared (mixed objects)
        raise InvalidInputError(
            "y_test holds labels that cannot be compared with y_train's; expected labels of the same kind"
        ) from None
    if unknown.size:
        raise InvalidInputError(
            f"y_test has labels {unknown.tolist()[:10]} that y_train does not; expected "
            f"labels among {np.unique(known).tolist()[:10]}"
        )
