"""Tiny real models for the attack tests: scikit-learn digits, fitted in a second.

Not a test module (no ``test_`` prefix); imported by tests/attacks/test_attacks*.py
and tests/attacks/test_audit.py.
"""

from __future__ import annotations

import functools

import numpy as np


def digits():
    """scikit-learn digits as float32 (n, 1, 8, 8) in [0, 1] and int labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    return x, d.target.astype(np.int64)


class SoftmaxModel:
    """Multinomial logistic regression as a black box, with exact input gradients."""

    def __init__(self, weights, bias, input_shape):
        self.weights = np.asarray(weights, dtype=np.float64)
        self.bias = np.asarray(bias, dtype=np.float64)
        self.input_shape = tuple(input_shape)
        self.n_classes = int(self.weights.shape[0])

    def _log_proba(self, x):
        z = np.asarray(x, dtype=np.float64).reshape(len(x), -1) @ self.weights.T + self.bias
        z -= z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def predict_proba(self, x):
        return np.exp(self._log_proba(x))

    def log_proba_gradient(self, x, loss_fn):
        logp = self._log_proba(x)
        loss, g = loss_fn(logp)
        g = np.asarray(g, dtype=np.float64)
        dz = g - np.exp(logp) * g.sum(axis=1, keepdims=True)
        return loss, (dz @ self.weights).reshape(np.shape(x)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _fitted():
    from sklearn.linear_model import LogisticRegression

    x, y = digits()
    clf = LogisticRegression(max_iter=2000, C=10.0).fit(x[:1200].reshape(1200, -1), y[:1200])
    return clf.coef_, clf.intercept_


def softmax_digits():
    """A fresh logistic-regression model on digits (trained on the first 1200 images)."""
    w, b = _fitted()
    return SoftmaxModel(w, b, (1, 8, 8))


def held_out(n=40, model=None):
    """``n`` held-out digits the model classifies correctly."""
    x, y = digits()
    x, y = x[1200:], y[1200:]
    model = model or softmax_digits()
    ok = model.predict_proba(x).argmax(1) == y
    return x[ok][:n], y[ok][:n]


class Counting:
    """Wraps a model; counts every image it is asked about, batch by batch."""

    def __init__(self, model):
        self.model = model
        self.n_classes = model.n_classes
        self.input_shape = model.input_shape
        self.batches = []

    @property
    def seen(self):
        return int(sum(self.batches))

    def predict_proba(self, x):
        self.batches.append(len(x))
        return self.model.predict_proba(x)


class CountedSoftmax(SoftmaxModel):
    """The digits softmax model, counting every image it sees (scores and gradients) in ``seen``."""

    def __init__(self):
        base = softmax_digits()
        super().__init__(base.weights, base.bias, base.input_shape)
        self.seen = 0

    def predict_proba(self, x):
        self.seen += len(x)
        return super().predict_proba(x)

    def log_proba_gradient(self, x, loss_fn):
        self.seen += len(x)
        return super().log_proba_gradient(x, loss_fn)


class LabelOnly:
    """Answers one-hot top-1 labels and says so (``label_only=True``)."""

    label_only = True

    def __init__(self, model):
        self.model = model
        self.n_classes = model.n_classes
        self.input_shape = model.input_shape

    def predict_proba(self, x):
        top = self.model.predict_proba(x).argmax(axis=1)
        return np.eye(self.n_classes)[top]


class MLPModel(SoftmaxModel):
    """A one-hidden-layer ReLU network (scikit-learn MLPClassifier weights), with exact input gradients."""

    def __init__(self, layers, input_shape):
        (self.w1, self.b1), (self.w2, self.b2) = layers
        self.input_shape = tuple(input_shape)
        self.n_classes = int(self.w2.shape[1])

    def _forward(self, x):
        hidden = np.maximum(np.asarray(x, dtype=np.float64).reshape(len(x), -1) @ self.w1 + self.b1, 0.0)
        z = hidden @ self.w2 + self.b2
        z -= z.max(axis=1, keepdims=True)
        return hidden, z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def _log_proba(self, x):
        return self._forward(x)[1]

    def log_proba_gradient(self, x, loss_fn):
        hidden, logp = self._forward(x)
        loss, g = loss_fn(logp)
        g = np.asarray(g, dtype=np.float64)
        dz = g - np.exp(logp) * g.sum(axis=1, keepdims=True)
        dh = (dz @ self.w2.T) * (hidden > 0)
        return loss, (dh @ self.w1.T).reshape(np.shape(x)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _fitted_mlp():
    import warnings

    from sklearn.neural_network import MLPClassifier

    x, y = digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(32,), solver="lbfgs", max_iter=200, random_state=0).fit(
            x[:1200].reshape(1200, -1), y[:1200]
        )
    return tuple(zip(clf.coefs_, clf.intercepts_, strict=False))


def mlp_digits():
    """A fresh ReLU network on digits (trained on the first 1200 images in a fraction of a second)."""
    return MLPModel(_fitted_mlp(), (1, 8, 8))
