"""MIFGSM: momentum iterative FGSM with input diversity, the transfer-oriented white-box attack."""

import numpy as np
import pytest
from _attack_models import Counting, held_out, softmax_digits

from bar_sdk import InvalidInputError
from bar_sdk.attacks import PGD
from bar_sdk.attacks.geometry import on_grid
from bar_sdk.attacks.mifgsm import MIFGSM


def _margin(model, x, y):
    logp = np.log(model.predict_proba(x))
    rows = np.arange(len(y))
    other = logp.copy()
    other[rows, y] = -np.inf
    return logp[rows, y] - other.max(axis=1)


def test_full_schedule_costs_exactly_steps_plus_two_queries_per_image():
    x, y = held_out(30)
    counting = Counting(softmax_digits())
    counting.log_proba_gradient = counting.model.log_proba_gradient
    result = MIFGSM(counting, eps=0.1, steps=7, random_state=0).run(x, y)
    assert np.all(result.queries == 7 + 2)
    assert result.total_queries == 30 * 9


@pytest.mark.parametrize("norm, eps", [("linf", 0.15), ("l2", 1.0)])
def test_final_iterate_stays_in_the_ball_and_on_the_grid(norm, eps):
    x, y = held_out(30)
    result = MIFGSM(
        softmax_digits(), norm=norm, eps=eps, steps=5, quantize=True, diversity_prob=0.5, random_state=0
    ).run(x, y)
    assert np.all(result.distortion <= eps * (1 + 1e-5) + 1e-6)
    assert on_grid(result.x_adv).all()
    assert result.success.mean() > 0.5


def test_success_is_judged_on_the_returned_image():
    x, y = held_out(40)
    model = softmax_digits()
    result = MIFGSM(model, eps=0.08, steps=5, random_state=0).run(x, y)
    fooled = model.predict_proba(result.x_adv).argmax(1) != y
    assert np.array_equal(fooled, result.success)


def test_examples_end_far_past_the_boundary_unlike_early_stopped_pgd():
    x, y = held_out(40)
    model = softmax_digits()
    mi = MIFGSM(model, eps=0.15, steps=10, random_state=0).run(x, y)
    pgd = PGD(model, eps=0.15, steps=10, random_state=0).run(x, y)
    both = mi.success & pgd.success
    assert both.sum() >= 20
    # the source is far more confident in the wrong class after the full schedule
    assert (
        np.median(_margin(model, mi.x_adv[both], y[both])) < np.median(_margin(model, pgd.x_adv[both], y[both])) - 1.0
    )
    assert np.median(mi.distortion[both]) == pytest.approx(0.15)


def test_early_stop_stops_at_the_first_success():
    x, y = held_out(30)
    result = MIFGSM(softmax_digits(), eps=0.15, steps=10, early_stop=True, random_state=0).run(x, y)
    full = MIFGSM(softmax_digits(), eps=0.15, steps=10, random_state=0).run(x, y)
    assert np.all(result.queries <= full.queries) and result.queries.sum() < full.queries.sum()
    assert np.median(result.queries[result.success]) < 10 + 2


def test_diversity_adjoint_is_the_transpose():
    attack = MIFGSM(None, diversity_prob=1.0, diversity_scale=0.7)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.random((3, 12, 10))
        view, back = attack._diversify(x, np.random.default_rng(int(rng.integers(100))))
        g = rng.standard_normal(view.shape)
        # <T x, g> = <x, T^T g> (T is linear: no clipping happens for x in [0, 1])
        assert np.vdot(view, g) == pytest.approx(np.vdot(x, back(g)))


def test_same_seed_same_result_and_diversity_changes_it():
    x, y = held_out(20)
    a = MIFGSM(softmax_digits(), eps=0.1, diversity_prob=0.7, random_state=3).run(x, y)
    b = MIFGSM(softmax_digits(), eps=0.1, diversity_prob=0.7, random_state=3).run(x, y)
    c = MIFGSM(softmax_digits(), eps=0.1, diversity_prob=0.0, random_state=3).run(x, y)
    assert np.array_equal(a.x_adv, b.x_adv)
    assert not np.array_equal(a.x_adv, c.x_adv)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"momentum": -1.0}, "momentum"),
        ({"diversity_prob": 1.5}, "diversity_prob"),
        ({"diversity_scale": 0.0}, "diversity_scale"),
        ({"steps": 0}, "steps"),
        ({"early_stop": "yes"}, "early_stop"),
    ],
)
def test_bad_parameters_are_refused_before_any_query(kwargs, match):
    x, y = held_out(5)
    counting = Counting(softmax_digits())
    counting.log_proba_gradient = counting.model.log_proba_gradient
    with pytest.raises(InvalidInputError, match=match):
        MIFGSM(counting, **kwargs).run(x, y)
    assert counting.seen == 0 if hasattr(counting, "seen") else not counting.batches
