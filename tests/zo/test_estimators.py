"""Gradient estimators against analytic functions with known gradients."""

import numpy as np
import pytest

from bar_sdk.attacks.normalized_sgd import NormalizedSGD
from bar_sdk.zo import (
    ESTIMATORS,
    SGD,
    SPSAGC,
    Adam,
    AntitheticEstimator,
    CoordinateEstimator,
    RandomGradientEstimator,
    SignSGD,
    SPSAEstimator,
    zo_step,
)

D = 20
A = np.linspace(0.5, 2.0, D)


def quad(points):
    """f(x) = 0.5 * sum a_i x_i^2 (+ a linear term), gradient a * x + c."""
    points = np.atleast_2d(points)
    return 0.5 * (points**2 * A).sum(1) + points @ np.ones(D)


def quad_grad(x):
    return A * x + 1.0


def mean_estimate(est, theta, rng, reps):
    return np.mean([est.tell(quad(est.ask(theta, rng))) for _ in range(reps)], axis=0)


def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize(
    "est",
    [
        RandomGradientEstimator(n_directions=10, smoothing=1e-3),
        RandomGradientEstimator(n_directions=10, smoothing=1e-3, baseline="mean"),
        AntitheticEstimator(n_directions=10, smoothing=1e-3),
        SPSAEstimator(n_directions=10, smoothing=1e-3),
        CoordinateEstimator(n_directions=10, smoothing=1e-3),
    ],
)
def test_estimate_points_along_true_gradient(est):
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(D)
    true = quad_grad(theta)
    single = [cosine(est.tell(quad(est.ask(theta, rng))), true) for _ in range(200)]
    assert np.mean(single) > 0.3
    # averaged over many steps the estimate is (nearly) unbiased: b = d scaling
    avg = mean_estimate(est, theta, rng, 3000)
    assert cosine(avg, true) > 0.97
    # coordinate-wise differences are exact partials on the k coordinates drawn (ZOO), so their
    # mean is (k / d) times the gradient; the random-direction estimators are scaled by b = d
    scale = 10 / D if isinstance(est, CoordinateEstimator) else 1.0
    assert np.linalg.norm(avg) / np.linalg.norm(true) == pytest.approx(scale, abs=0.15 * scale)


def test_more_directions_give_better_estimates():
    rng = np.random.default_rng(1)
    theta = rng.standard_normal(D)
    true = quad_grad(theta)
    cos = {}
    for q in (1, 20):
        est = AntitheticEstimator(n_directions=q, smoothing=1e-3)
        cos[q] = np.mean([cosine(est.tell(quad(est.ask(theta, rng))), true) for _ in range(300)])
    assert cos[20] > cos[1] + 0.2


def test_two_sided_removes_offset_at_a_kink():
    """At a kink f(x)=|x|_1-like, one-sided differences share a constant offset."""

    def kink(points):
        return np.abs(np.atleast_2d(points)).sum(1)

    rng = np.random.default_rng(2)
    theta = np.zeros(D)
    one = RandomGradientEstimator(n_directions=5, smoothing=1e-2)
    two = AntitheticEstimator(n_directions=5, smoothing=1e-2)
    g2 = np.mean([two.tell(kink(two.ask(theta, rng))) for _ in range(2000)], axis=0)
    # the subgradient at 0 contains 0; two-sided estimate averages to ~0, one-sided does not vanish per draw
    assert np.linalg.norm(g2) < 0.3 * np.sqrt(D)
    norms_one = [np.linalg.norm(one.tell(kink(one.ask(theta, rng)))) for _ in range(50)]
    norms_two = [np.linalg.norm(two.tell(kink(two.ask(theta, rng)))) for _ in range(50)]
    assert np.mean(norms_two) < 0.5 * np.mean(norms_one)


@pytest.mark.parametrize("est", [cls(5, 0.01) for cls in ESTIMATORS.values()])  # every registered estimator
def test_evaluations_match_points_asked(est):
    theta = np.zeros(D)
    assert est.ask(theta, np.random.default_rng(0)).shape == (est.evaluations(D), D)


def test_smoothing_bias_is_second_order():
    """For a quadratic, the two-sided estimate is exact along each direction: no smoothing bias."""
    rng = np.random.default_rng(3)
    theta = rng.standard_normal(D)
    est = CoordinateEstimator(n_directions=D, smoothing=0.5)
    g = est.tell(quad(est.ask(theta, rng)))
    np.testing.assert_allclose(g, quad_grad(theta), rtol=1e-9)


@pytest.mark.parametrize("opt", [SGD(lr=0.1), Adam(lr=0.1), SignSGD(lr=0.02), SPSAGC(lr=0.05)])
def test_optimizers_descend_with_zo_gradients(opt):
    rng = np.random.default_rng(4)
    theta = np.full(D, 2.0)
    start = quad(theta)[0]
    est = AntitheticEstimator(n_directions=5, smoothing=1e-3)
    for t in range(300):
        theta, _, _ = zo_step(theta, quad, est, opt, rng, t / 300)
    best = quad(-1.0 / A)[0]
    assert quad(theta)[0] - best < 0.1 * (start - best)


def test_optimizer_state_round_trip():
    rng = np.random.default_rng(5)
    theta = rng.standard_normal(D)
    a, b = Adam(lr=0.1), Adam(lr=0.1)
    for _ in range(3):
        theta = a.step(theta, quad_grad(theta), 0.0)
    b.load_state_dict(a.state_dict())
    g = quad_grad(theta)
    np.testing.assert_array_equal(a.step(theta, g, 0.5), b.step(theta, g, 0.5))


@pytest.mark.parametrize("make", [SGD, Adam, SignSGD, SPSAGC, NormalizedSGD])
def test_weight_decay_shrinks_by_lr_times_decay_when_the_gradient_is_zero(make):
    theta = np.linspace(-1.0, 1.0, D)
    opt = make(lr=0.2, lr_decay=0.1, weight_decay=0.5)
    lr = opt.learning_rate(0.5)
    np.testing.assert_allclose(opt.step(theta, np.zeros(D), 0.5), theta * (1 - lr * 0.5), rtol=1e-12)
    plain = make(lr=0.2, lr_decay=0.1)  # no decay: the rule alone, unchanged
    np.testing.assert_array_equal(plain.step(theta, np.zeros(D), 0.5), theta)


def test_sgd_weight_decay_is_an_l2_penalty_and_adam_decay_is_decoupled():
    rng = np.random.default_rng(6)
    theta, g = rng.standard_normal(D), rng.standard_normal(D)
    np.testing.assert_allclose(
        SGD(lr=0.1, weight_decay=0.3).step(theta, g, 0.0), SGD(lr=0.1).step(theta, g + 0.3 * theta, 0.0), rtol=1e-12
    )
    # Adam: the decay is added after the normalised step (AdamW), not fed through the moments
    np.testing.assert_allclose(
        Adam(lr=0.1, weight_decay=0.3).step(theta, g, 0.0),
        Adam(lr=0.1).step(theta, g, 0.0) - 0.1 * 0.3 * theta,
        rtol=1e-12,
    )
    assert "weight_decay=0.3" in repr(Adam(weight_decay=0.3)) and "weight_decay" not in repr(Adam())


def test_an_optimizer_that_overrides_step_itself_still_works_and_overshooting_decay_is_refused():
    from bar_sdk import InvalidInputError
    from bar_sdk.zo import Optimizer

    class HalfStep(Optimizer):  # written against the API before _update: it overrides step
        def step(self, theta, grad, progress):
            return theta - 0.5 * grad

    np.testing.assert_array_equal(HalfStep().step(np.ones(3), np.ones(3), 0.0), np.full(3, 0.5))
    with pytest.raises(NotImplementedError, match="_update"):
        Optimizer().step(np.ones(3), np.ones(3), 0.0)
    with pytest.raises(InvalidInputError, match="weight_decay=25"):
        SGD(lr=0.05, weight_decay=25).step(np.ones(3), np.ones(3), 0.0)


def test_lr_decays_to_the_final_ratio():
    opt = SGD(lr=0.2, lr_decay=0.1)
    assert opt.learning_rate(0.0) == pytest.approx(0.2)
    assert opt.learning_rate(1.0) == pytest.approx(0.02)


def test_guided_estimator_without_prior_is_unbiased_and_a_good_prior_helps():
    from bar_sdk.zo import GuidedEstimator

    rng = np.random.default_rng(6)
    theta = rng.standard_normal(D)
    true = quad_grad(theta)
    plain = GuidedEstimator(n_directions=4, smoothing=1e-3)
    avg = mean_estimate(plain, theta, rng, 4000)
    assert cosine(avg, true) > 0.97
    assert np.linalg.norm(avg) / np.linalg.norm(true) == pytest.approx(1.0, abs=0.15)
    guided = GuidedEstimator(n_directions=4, smoothing=1e-3, prior_weight=0.8)
    noisy_prior = true + 0.3 * np.linalg.norm(true) / np.sqrt(D) * rng.standard_normal(D)
    guided.set_prior(noisy_prior)
    cos_plain = np.mean([cosine(plain.tell(quad(plain.ask(theta, rng))), true) for _ in range(300)])
    cos_guided = np.mean([cosine(guided.tell(quad(guided.ask(theta, rng))), true) for _ in range(300)])
    assert cos_guided > cos_plain + 0.3


def test_history_estimator_starts_as_bar_and_stays_unbiased_with_any_prior():
    from bar_sdk.zo import HistoryEstimator

    rng = np.random.default_rng(7)
    theta = rng.standard_normal(D)
    true = quad_grad(theta)
    # before any step there is no prior: the very points BAR's estimator asks, the same estimate
    hist, bar = HistoryEstimator(n_directions=4, smoothing=1e-3), RandomGradientEstimator(4, 1e-3)
    pts = hist.ask(theta, np.random.default_rng(1))
    np.testing.assert_array_equal(pts, bar.ask(theta, np.random.default_rng(1)))
    np.testing.assert_allclose(hist.tell(quad(pts)), bar.tell(quad(pts)))
    # with a prior (here a poor, fixed one) the first direction is the prior, the rest unit and orthogonal
    # to it, and with explore=1 the mean estimate is still the gradient
    prior = rng.standard_normal(D)
    fixed = HistoryEstimator(n_directions=4, smoothing=1e-3, memory=1.0)
    fixed.load_state_dict({"mean": prior})
    pts = fixed.ask(theta, rng)
    dirs = (pts[1:] - theta) / 1e-3
    np.testing.assert_allclose(dirs[0], prior / np.linalg.norm(prior), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(dirs[1:] @ dirs[0], 0.0, atol=1e-9)
    fixed.tell(quad(pts))
    avg = mean_estimate(fixed, theta, rng, 4000)
    assert cosine(avg, true) > 0.97
    assert np.linalg.norm(avg) / np.linalg.norm(true) == pytest.approx(1.0, abs=0.15)


def test_history_estimator_prior_learns_the_gradient_and_lowers_the_variance():
    from bar_sdk.zo import HistoryEstimator

    rng = np.random.default_rng(8)
    d = 200
    grad = rng.standard_normal(d)  # a linear objective: the same gradient at every step

    def linear(points):
        return points @ grad

    theta = np.zeros(d)
    hist = HistoryEstimator(n_directions=5, smoothing=1e-3, memory=0.95, explore=0.1)
    bar = RandomGradientEstimator(n_directions=5, smoothing=1e-3)
    cos_hist, cos_bar = [], []
    for _ in range(300):
        cos_hist.append(cosine(hist.tell(linear(hist.ask(theta, rng))), grad))
        cos_bar.append(cosine(bar.tell(linear(bar.ask(theta, rng))), grad))
    prior = hist.state_dict()["mean"]
    assert cosine(prior, grad) > 0.8  # the running mean found the gradient
    assert np.mean(cos_hist[100:]) > np.mean(cos_bar[100:]) + 0.5  # so each estimate points along it


def test_history_estimator_state_round_trips_and_bad_settings_are_refused():
    from bar_sdk.errors import InvalidInputError
    from bar_sdk.zo import HistoryEstimator

    rng = np.random.default_rng(9)
    theta = rng.standard_normal(D)
    a = HistoryEstimator(n_directions=3, smoothing=1e-3)
    for _ in range(5):
        a.tell(quad(a.ask(theta, rng)))
    b = HistoryEstimator(n_directions=3, smoothing=1e-3)
    b.load_state_dict(a.state_dict())
    ra, rb = np.random.default_rng(2), np.random.default_rng(2)
    np.testing.assert_array_equal(a.tell(quad(a.ask(theta, ra))), b.tell(quad(b.ask(theta, rb))))
    for kw, name in (({"memory": 1.5}, "memory"), ({"explore": 0.0}, "explore"), ({"memory": float("nan")}, "memory")):
        with pytest.raises(InvalidInputError, match=name):
            HistoryEstimator(**kw).ask(theta, rng)


def test_history_estimator_ignores_estimates_that_are_not_finite():
    from bar_sdk.zo import HistoryEstimator

    rng = np.random.default_rng(10)
    theta = rng.standard_normal(D)
    est = HistoryEstimator(n_directions=3, smoothing=1e-3)
    est.tell(quad(est.ask(theta, rng)))
    before = est.state_dict()["mean"].copy()
    pts = est.ask(theta, rng)
    losses = quad(pts)
    losses[1] = np.nan  # one bad reading: this step's estimate is NaN, the running mean keeps its value
    est.tell(losses)
    np.testing.assert_array_equal(est.state_dict()["mean"], before)
    est.load_state_dict({"mean": np.full(D, np.inf)})  # a prior that is not finite is not used
    assert np.all(np.isfinite(est.ask(theta, rng)))
