"""Serve a fitted scikit-learn classifier as a black box."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from bar_sdk.adapters._checks import check_batch, check_input_shape, check_label_names
from bar_sdk.errors import InvalidInputError

__all__ = ["SklearnModel"]


class SklearnModel:
    """A fitted scikit-learn classifier with ``predict_proba`` behind the contract.

    Images are flattened to ``(n, C*H*W)`` (C-order) before they reach the
    estimator, so it must have been fitted on images flattened the same way,
    with values in [0, 1].

    Parameters
    ----------
    estimator : sklearn classifier
        Fitted, with ``predict_proba`` and ``classes_``.
    input_shape : tuple of int
        ``(C, H, W)`` with ``C*H*W`` equal to the estimator's feature count.
    labels : sequence of str, optional
        Class names; defaults to ``estimator.classes_`` as strings, in the
        column order of the scores.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> from bar_sdk.adapters import SklearnModel
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = LogisticRegression(max_iter=200).fit(X / 16, y)
    >>> model = SklearnModel(clf, (1, 8, 8))
    >>> model.predict_proba((X[:2] / 16).reshape(2, 1, 8, 8).astype("float32")).shape
    (2, 10)
    """

    def __init__(self, estimator: Any, input_shape: Any, labels: Any = None) -> None:
        if not callable(getattr(estimator, "predict_proba", None)):
            raise InvalidInputError(
                f"estimator={type(estimator).__name__} has no predict_proba; expected a fitted classifier "
                "with predict_proba (e.g. LogisticRegression, or SVC(probability=True))"
            )
        try:
            check_is_fitted(estimator)
        except NotFittedError:
            raise InvalidInputError(
                f"estimator={type(estimator).__name__} is not fitted; expected a fitted classifier (call fit first)"
            ) from None
        except TypeError:
            raise InvalidInputError(
                f"estimator={type(estimator).__name__}; expected a scikit-learn estimator"
            ) from None
        classes = getattr(estimator, "classes_", None)
        if classes is None or np.ndim(classes) != 1 or len(classes) < 2:
            raise InvalidInputError(
                f"estimator={type(estimator).__name__} has classes_={classes!r}; expected a single-output "
                "classifier with at least two classes"
            )
        self.input_shape = check_input_shape(input_shape)
        n_features = getattr(estimator, "n_features_in_", None)
        size = int(np.prod(self.input_shape))
        if n_features is not None and int(n_features) != size:
            raise InvalidInputError(
                f"input_shape={self.input_shape} gives {size} features; expected the estimator's "
                f"n_features_in_={int(n_features)}"
            )
        self.estimator = estimator
        self.n_classes = len(classes)
        self.labels = check_label_names(labels if labels is not None else [str(c) for c in classes], self.n_classes)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Scores ``(n, n_classes)`` as float64, columns in ``estimator.classes_`` order."""
        x = check_batch(x, self.input_shape)
        return np.asarray(self.estimator.predict_proba(x.reshape(len(x), -1)), dtype=np.float64)

    def __repr__(self) -> str:
        return (
            f"SklearnModel({type(self.estimator).__name__}, n_classes={self.n_classes}, input_shape={self.input_shape})"
        )
