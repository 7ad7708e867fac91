"""Class-weighted, L2-regularised logistic regression for the readouts, many fits at once.

The objective is scikit-learn's (``LogisticRegression(C=C, class_weight="balanced")``):
``sum_i w_i * loss_i + ||coef||^2 / (2 C)``, the intercept unpenalised, ``w_i``
the balanced class weight of row ``i`` among the rows of that fit, a binary
logit for two classes and a softmax over ``k`` penalised columns otherwise.
Choosing C fits it for every C and fold (35 fits); where the parameters are
few (a source model with ten classes) those are solved together by Newton's
method, to a far tighter optimum than lbfgs at ``tol=1e-3``, in a few
milliseconds instead of scikit-learn's 2-7 ms of per-call overhead each. Larger
problems (1,000 ImageNet scores) go to scikit-learn's lbfgs one by one.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logsumexp, softmax

__all__ = ["fit_logistic"]

#: at most this many parameters per fit ((n_features + 1) times 1 for two classes, k otherwise) go to Newton
NEWTON_MAX_PARAMS = 256

#: Newton stops when no fit's step moves a parameter by more than this
NEWTON_STEP_TOL = 1e-9
NEWTON_MAX_ITER = 100


def fit_logistic(features, y, n_target, Cs, masks, tol=1e-4):
    """Fits for every ``C`` of ``Cs`` on the rows of every boolean mask of ``masks``.

    Returns ``fits[c][m] = (coef (n_features, k), intercept (k,))``; for two
    classes column 0 is zeros (the binary logit is column 1), as the readouts
    use it. ``tol`` is the lbfgs tolerance where scikit-learn fits.
    """
    features, y = np.asarray(features, np.float64), np.asarray(y)
    masks = np.atleast_2d(np.asarray(masks, bool))
    n_out = 1 if n_target == 2 else n_target
    if (features.shape[1] + 1) * n_out <= NEWTON_MAX_PARAMS:
        coefs = _newton(features, y, n_target, np.asarray(Cs, np.float64), masks)
        return [[_split(coefs[c, m], n_target) for m in range(len(masks))] for c in range(len(Cs))]
    return [[_sklearn(features[m], y[m], n_target, C, tol) for m in masks] for C in Cs]


def _split(theta, n_target):
    """``(n_features + 1, n_out)`` parameters, the intercept last: ``(coef, intercept)`` in the readouts' shape."""
    coef, intercept = theta[:-1], theta[-1]
    if n_target == 2:
        coef = np.concatenate([np.zeros_like(coef), coef], axis=1)
        intercept = np.concatenate([[0.0], intercept])
    return coef, intercept


def _sklearn(features, y, n_target, C, tol):
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=C, class_weight="balanced", max_iter=2000, tol=tol).fit(features, y)
    theta = np.concatenate([lr.coef_.T, lr.intercept_[None]], axis=0)
    return _split(np.asarray(theta, np.float64), n_target)


def _newton(features, y, n_target, Cs, masks):
    """``(n_C, n_masks, n_features + 1, n_out)``: every (C, mask) fit, solved together by damped Newton steps."""
    n, d = features.shape
    X = np.concatenate([features, np.ones((n, 1))], axis=1)
    n_out = 1 if n_target == 2 else n_target
    counts = np.stack([np.bincount(y[m], minlength=n_target) for m in masks])  # (M, k)
    weight = masks.sum(1, keepdims=True) / (n_target * np.maximum(counts, 1))  # balanced, per mask
    sw = np.where(masks, np.take_along_axis(weight, np.broadcast_to(y, masks.shape), 1), 0.0)  # (M, n)
    sw = np.broadcast_to(sw, (len(Cs), *sw.shape)).reshape(-1, n)  # (B, n), B = n_C * M
    Y = np.eye(n_target)[y][:, -n_out:]  # (n, n_out): the class-1 indicator for two classes
    penalty = np.ones((d + 1, n_out))
    penalty[-1] = 0.0  # the intercept is not penalised
    lam = np.repeat(1.0 / Cs, len(masks))[:, None, None] * penalty  # (B, d + 1, n_out)
    theta = np.zeros((len(sw), d + 1, n_out))

    def objective(th):
        z = X @ th  # (B, n, n_out)
        if n_out == 1:
            nll = np.logaddexp(0.0, z[..., 0]) - z[..., 0] * Y[:, 0]
        else:
            nll = logsumexp(z, axis=2) - (z * Y).sum(axis=2)
        return (sw * nll).sum(axis=1) + 0.5 * (lam * th * th).sum(axis=(1, 2)), z

    P = (d + 1) * n_out
    # the softmax does not change when one constant is added to every intercept: a flat direction of the
    # objective, made curved by adding (sum of intercepts)^2 at the scale of the weights, which leaves the
    # solution where it was (the intercepts start at zero and each step keeps their sum there)
    flat = np.zeros((d + 1, n_out, d + 1, n_out))
    if n_out > 1:
        flat[-1, :, -1, :] = 1.0
    flat = sw.sum(1)[:, None, None] * flat.reshape(P, P)
    f, z = objective(theta)
    for _ in range(NEWTON_MAX_ITER):
        p = _probabilities(z, n_out)  # (B, n, n_out)
        grad = X.T @ (sw[..., None] * (p - Y)) + lam * theta
        hess = _hessian(X, sw, p).reshape(len(sw), P, P) + flat
        hess[:, np.arange(P), np.arange(P)] += lam.reshape(len(sw), P)
        step = np.linalg.solve(hess, grad.reshape(len(sw), P, 1)).reshape(theta.shape)
        t = np.ones(len(sw))
        for _ in range(30):  # halve each fit's step until its objective does not rise
            new_f, new_z = objective(theta - t[:, None, None] * step)
            worse = new_f > f + 1e-12 * np.abs(f)
            if not worse.any():
                break
            t = np.where(worse, t / 2, t)
        else:  # a step that still raises its objective is not taken (and f, z stay those of the theta kept)
            t = np.where(worse, 0.0, t)
            new_f, new_z = objective(theta - t[:, None, None] * step)
        theta = theta - t[:, None, None] * step
        f, z = new_f, new_z
        if np.max(np.abs(t[:, None, None] * step)) < NEWTON_STEP_TOL:
            break
    return theta.reshape(len(Cs), len(masks), d + 1, n_out)


def _probabilities(z, n_out):
    return expit(z) if n_out == 1 else softmax(z, axis=2)


def _hessian(X, sw, p):
    """``(B, d + 1, n_out, d + 1, n_out)``: the weighted log-loss's Hessian at probabilities ``p``."""
    B, n_out = len(sw), p.shape[2]
    hess = np.empty((B, X.shape[1], n_out, X.shape[1], n_out))
    for o in range(n_out):  # block (o, q) is X' diag(curvature) X, one batched matrix product each
        for q in range(o, n_out):
            curv = sw * p[..., o] * ((o == q) - p[..., q])
            hess[:, :, o, :, q] = (curv[:, :, None] * X).transpose(0, 2, 1) @ X
            hess[:, :, q, :, o] = hess[:, :, o, :, q]
    return hess
