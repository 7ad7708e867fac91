"""The readouts' logistic regression: Newton's method for small problems, scikit-learn's lbfgs for large ones."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from bar_sdk import logistic
from bar_sdk.logistic import NEWTON_MAX_PARAMS, fit_logistic


def _task(n, n_features, k, seed=0):
    """Log-scores of ``n`` rows over ``n_features`` source labels, unbalanced classes, a signal in one label each."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(k), rng.choice(k, n - k, p=np.arange(1, k + 1) / (k * (k + 1) / 2))])
    scores = rng.dirichlet(np.ones(n_features), n)
    scores[np.arange(n), y % n_features] += 0.3
    return np.log(scores / scores.sum(1, keepdims=True)), y


def _objective_and_gradient(features, y, k, C, coef, intercept):
    """scikit-learn's objective for class_weight="balanced", and its gradient over the fitted parameters."""
    w = len(y) / (k * np.bincount(y, minlength=k))
    z = features @ coef + intercept
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    Y = np.eye(k)[y]
    fitted = slice(1, 2) if k == 2 else slice(None)  # two classes: only the logit of class 1 is a parameter
    loss = -np.sum(w[y] * np.log(p[np.arange(len(y)), y])) + np.sum(coef[:, fitted] ** 2) / (2 * C)
    residual = (w[y][:, None] * (p - Y))[:, fitted]
    return loss, features.T @ residual + coef[:, fitted] / C, residual.sum(0)


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("C", [0.001, 0.1, 1.0])
def test_newton_reaches_the_optimum_of_scikit_learns_objective(k, C):
    features, y = _task(240, 10, k)
    ((coef, intercept),) = fit_logistic(features, y, k, [C], np.ones((1, len(y)), bool))[0]
    loss, grad_coef, grad_intercept = _objective_and_gradient(features, y, k, C, coef, intercept)
    # at the optimum the gradient vanishes; rounding leaves it near 1e-12 of the loss's scale
    assert np.abs(grad_coef).max() < 1e-8 * loss and np.abs(grad_intercept).max() < 1e-8 * loss
    tight = LogisticRegression(C=C, class_weight="balanced", tol=1e-12, max_iter=10_000).fit(features, y)
    sk_coef, sk_intercept = tight.coef_.T, tight.intercept_
    if k == 2:
        sk_coef = np.concatenate([np.zeros_like(sk_coef), sk_coef], axis=1)
        sk_intercept = np.concatenate([[0.0], sk_intercept])
    sk_loss = _objective_and_gradient(features, y, k, C, sk_coef, sk_intercept)[0]
    assert loss <= sk_loss * (1 + 1e-12)  # no worse than lbfgs run to its tightest tolerance
    np.testing.assert_allclose(_proba(features, coef, intercept), tight.predict_proba(features), atol=1e-4)


def _proba(features, coef, intercept):
    z = features @ coef + intercept
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def test_every_C_and_mask_is_the_fit_on_those_rows_alone():
    features, y = _task(200, 10, 3, seed=1)
    masks = np.stack([np.arange(len(y)) % 4 != j for j in range(4)])
    fits = fit_logistic(features, y, 3, [0.01, 1.0], masks)
    for c, C in enumerate([0.01, 1.0]):
        for m, rows in enumerate(masks):
            ((coef, intercept),) = fit_logistic(features[rows], y[rows], 3, [C], np.ones((1, rows.sum()), bool))[0]
            got = _proba(features, *fits[c][m])
            np.testing.assert_allclose(got, _proba(features, coef, intercept), atol=1e-9)
    # a mask's fit is not the fit on every row
    everything = fit_logistic(features, y, 3, [1.0], np.ones((1, len(y)), bool))[0][0]
    assert not np.allclose(_proba(features, *fits[1][0]), _proba(features, *everything), atol=1e-3)


def test_two_classes_come_back_with_a_zero_column_for_class_0():
    features, y = _task(120, 10, 2, seed=2)
    ((coef, intercept),) = fit_logistic(features, y, 2, [0.1], np.ones((1, len(y)), bool))[0]
    assert coef.shape == (10, 2) and intercept.shape == (2,)
    assert not coef[:, 0].any() and intercept[0] == 0.0


def test_large_problems_go_to_scikit_learn_and_agree_with_newton(monkeypatch):
    features, y = _task(150, 70, 4, seed=3)  # (70 + 1) * 4 parameters: over Newton's limit
    assert (features.shape[1] + 1) * 4 > NEWTON_MAX_PARAMS
    called = []
    real = logistic._sklearn
    monkeypatch.setattr(logistic, "_sklearn", lambda *a: called.append(1) or real(*a))
    ((coef, intercept),) = fit_logistic(features, y, 4, [0.05], np.ones((1, len(y)), bool), tol=1e-10)[0]
    assert called == [1]
    monkeypatch.setattr(logistic, "NEWTON_MAX_PARAMS", 10_000)
    ((n_coef, n_intercept),) = fit_logistic(features, y, 4, [0.05], np.ones((1, len(y)), bool))[0]
    np.testing.assert_allclose(_proba(features, coef, intercept), _proba(features, n_coef, n_intercept), atol=1e-4)
