"""Small real models shared by the transfer tests (digits 16x16, trained in seconds, cached per session)."""

from __future__ import annotations

import functools

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split


@functools.lru_cache(maxsize=None)
def digits():
    from bar_sdk.adapters.nets import digits_images

    return digits_images(16)


@functools.lru_cache(maxsize=None)
def cnn(width: int = 8, seed: int = 0):
    """SmallCNN on digits (about 0.97 training accuracy) behind TorchModel."""
    from bar_sdk.adapters import TorchModel
    from bar_sdk.adapters.nets import SmallCNN, train_classifier

    x, y = digits()
    net = train_classifier(
        SmallCNN(1, 10, 16, width=width, random_state=seed), x, y, epochs=8, lr=3e-3, batch_size=64, random_state=seed
    )
    return TorchModel(net, (1, 16, 16))


@functools.lru_cache(maxsize=None)
def mlp(seed: int = 0):
    """A one-hidden-layer perceptron on digits behind TorchModel."""
    from bar_sdk.adapters import TorchModel
    from bar_sdk.adapters.nets import MLPNet, train_classifier

    x, y = digits()
    net = train_classifier(
        MLPNet((1, 16, 16), 10, hidden=64, random_state=seed), x, y, epochs=30, lr=3e-3, random_state=seed
    )
    return TorchModel(net, (1, 16, 16))


@functools.lru_cache(maxsize=None)
def breast_cancer(test_size: float = 0.5):
    """Wisconsin breast cancer (scikit-learn), stratified split: (Xa, Xb, ya, yb)."""
    data = load_breast_cancer()
    return tuple(train_test_split(data.data, data.target, test_size=test_size, stratify=data.target, random_state=0))


class Counting:
    """Pass-through that records every batch a model receives (to check counts and 8-bit inputs)."""

    def __init__(self, model):
        self.model = model
        self.n_classes = model.n_classes
        self.input_shape = model.input_shape
        self.batches: list[np.ndarray] = []

    @property
    def seen(self) -> int:
        return sum(len(b) for b in self.batches)

    def predict_proba(self, x):
        self.batches.append(np.array(x, copy=True))
        return self.model.predict_proba(x)


#: the ways spoiled_split spoils a test split, with the message each must be refused with
SPOILED_SPLITS = [
    ("X_test-features", r"X_test has shape \(\d+, 29\); expected samples shaped like X_train's \(30,\)"),
    ("y_test-length", r"y_test has shape \(\d+,\); expected \(\d+,\) labels, one per X_test sample"),
    ("y_test-strings", r"y_test has dtype <U\d+; expected labels of the kind y_train holds"),
    ("y_test-unknown", r"y_test has labels \[7\] that y_train does not"),
]


def spoiled_split(bad: str, X_test, y_test):
    """A test split made wrong one way (``bad``): a missing feature, short or string or unknown labels."""
    if bad == "X_test-features":
        return X_test[:, :-1], y_test
    if bad == "y_test-length":
        return X_test, y_test[:-3]
    if bad == "y_test-strings":
        return X_test, np.where(y_test == 1, "benign", "malignant")
    if bad == "y_test-unknown":
        y_test = y_test.copy()
        y_test[0] = 7
        return X_test, y_test
    return X_test, y_test
