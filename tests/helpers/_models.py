"""Small real models shared by the core tests (trained on scikit-learn data; the linear one's weights stored)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split

from bar_sdk.program import resize_images


@functools.lru_cache(maxsize=None)
def cancer_split():
    """The Wisconsin breast-cancer table split 70/30, stratified: ``(Xa, Xb, ya, yb)``."""
    data = load_breast_cancer()
    return train_test_split(data.data, data.target, test_size=0.3, random_state=0, stratify=data.target)


def digits16():
    d = load_digits()
    x = resize_images((d.images / 16.0).astype(np.float32)[:, None], (16, 16))
    return x, d.target.astype(np.int64)


#: The weights LinearSoftmax answers with, trained once by :func:`train_weights` and stored: lbfgs stops at
#: its iteration cap at a point that depends on the CPU's arithmetic (its SIMD and BLAS kernels), and the
#: checkpoint files in tests/fixtures/checkpoints hold runs against exactly these weights.
WEIGHTS = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "linear_softmax_digits16.npz"


def train_weights(path=WEIGHTS):
    """Fit the multinomial logistic regression on 16x16 digits and store its weights (how WEIGHTS was made)."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    x, y = digits16()
    with threadpool_limits(limits=1):
        clf = LogisticRegression(max_iter=300, C=0.5).fit(x.reshape(len(x), -1), y)
    np.savez(path, w=clf.coef_.astype(np.float64), b=clf.intercept_.astype(np.float64))


class LinearSoftmax:
    """Multinomial logistic regression on 16x16 digits, with exact input gradients.

    A real trained classifier (0.98 accuracy on its training digits) that answers in microseconds; its
    weights are stored (``WEIGHTS``), so every machine answers with the same ones.
    """

    n_classes = 10
    input_shape = (1, 16, 16)

    def __init__(self):
        with np.load(WEIGHTS) as f:
            self.w, self.b = f["w"], f["b"]
        self.calls = 0
        self.seen = 0

    def _logp(self, x):
        z = x.reshape(len(x), -1) @ self.w.T + self.b
        z -= z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def predict_proba(self, x):
        self.calls += 1
        self.seen += len(x)
        return np.exp(self._logp(np.asarray(x, np.float64)))

    def log_proba_gradient(self, x, loss_fn):
        self.seen += len(x)
        logp = self._logp(np.asarray(x, np.float64))
        loss, g = loss_fn(logp)
        p = np.exp(logp)
        dz = g - p * g.sum(axis=1, keepdims=True)
        return loss, (dz @ self.w).reshape(x.shape)


@functools.lru_cache(maxsize=None)
def trained_linear():
    return LinearSoftmax()


def fresh_linear():
    """A counting copy sharing the trained weights."""
    base = trained_linear()
    m = LinearSoftmax.__new__(LinearSoftmax)
    m.w, m.b, m.calls, m.seen = base.w, base.b, 0, 0
    return m
