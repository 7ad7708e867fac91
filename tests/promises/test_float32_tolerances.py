"""The float32 tolerances of tests/helpers/_float32.py hold against exact arithmetic; a wrong answer fails them."""

import numpy as np
import pytest
from _float32 import U, assert_close_f32, demo_model_rtol, gamma

from bar_sdk.adapters.server import DemoModel

MODELS = {
    "8x8, 5 classes": DemoModel((1, 8, 8), n_classes=5, random_state=2),
    "3x16x16, 10 classes": DemoModel((3, 16, 16), n_classes=10, random_state=0),
}


def eight_bit(model, n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *model.input_shape), dtype=np.uint8)


def exact(model, q):
    """DemoModel's formula in float64: float32's rounding errors are 2**29 times smaller there."""
    x = q.reshape(len(q), -1) / 255.0
    z = (x - 0.5) @ model._w.astype(np.float64) + model._b.astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_gamma_is_highams():
    assert gamma(1) == pytest.approx(U / (1 - U), rel=1e-15) and gamma(64) == pytest.approx(64 * U, rel=1e-5)
    assert U == 2.0**-24


@pytest.mark.parametrize("name", list(MODELS))
def test_every_batch_size_stays_within_the_bound_of_exact_arithmetic(name):
    model = MODELS[name]
    q = eight_bit(model, 60)
    truth, rtol = exact(model, q), demo_model_rtol(model, q)
    answers = {}
    for size in (1, 2, 3, 7, 16, 60):  # each a different BLAS path
        answers[size] = np.concatenate([model.predict_proba(q[i : i + size]) for i in range(0, len(q), size)])
        assert_close_f32(answers[size], truth, rtol, evaluations=1)
    for got in answers.values():  # hence any two within twice the bound
        assert_close_f32(got, answers[60], rtol)


def in_order(model, q, order):
    """DemoModel's answer with its logits summed pixel by pixel in ``order``: one of the orders a BLAS may pick."""
    x = q.reshape(len(q), -1).astype(np.float32) / np.float32(255.0) - np.float32(0.5)
    z = np.zeros((len(q), model.n_classes), np.float32)
    for i in order:
        z = z + x[:, i : i + 1] * model._w[i]  # float32 throughout: one rounding per product and sum
    z = z + model._b
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_two_summation_orders_differ_by_more_than_1e_6_and_stay_within_the_bound():
    # What broke the README's test command on an AMD EPYC machine, on any machine: the same float32
    # answer summed in two orders misses rtol=1e-6, and is well inside float32's bound.
    model = MODELS["3x16x16, 10 classes"]
    q = eight_bit(model, 60)
    d = q[0].size
    forward, backward = in_order(model, q, range(d)), in_order(model, q, range(d - 1, -1, -1))
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(forward, backward, rtol=1e-6)
    rtol = demo_model_rtol(model, q)
    assert_close_f32(forward, backward, rtol)
    for answer in (forward, backward):
        assert_close_f32(answer, exact(model, q), rtol, evaluations=1)


def test_a_wrong_answer_fails_the_tolerance():
    model = MODELS["8x8, 5 classes"]
    q = eight_bit(model, 24, seed=1)
    right, rtol = model.predict_proba(q), demo_model_rtol(model, q)
    assert 1e-5 < 2 * rtol < 1e-3  # loose enough for any summation order, and no looser
    # one gray level on one pixel of any image is seen, even on the 8 pixels the model weighs least
    weakest = np.argsort(np.abs(model._w).sum(axis=1))[:8]
    for i in range(len(q)):
        for pixel in weakest:
            wrong = q[i].copy().reshape(-1)
            wrong[pixel] = wrong[pixel] + 1 if wrong[pixel] < 255 else 254
            with pytest.raises(AssertionError):
                assert_close_f32(model.predict_proba(wrong.reshape(1, *model.input_shape)), right[i : i + 1], rtol)
    # so are answers for the unrounded images, another image's answer, and one probability off by 1.5 tolerances
    unrounded = np.clip((q + np.random.default_rng(2).uniform(-0.5, 0.5, q.shape)) / 255.0, 0, 1)  # rounds to q
    with pytest.raises(AssertionError):
        assert_close_f32(model.predict_proba(unrounded.astype(np.float32)), right, rtol)
    with pytest.raises(AssertionError):
        assert_close_f32(np.roll(right, 1, axis=0), right, rtol)
    off = right.astype(np.float64)
    off[5, 2] *= 1 + 1.5 * 2 * rtol
    with pytest.raises(AssertionError):
        assert_close_f32(off, right, rtol)
    off[5, 2] = right[5, 2] * (1 + 0.5 * 2 * rtol)  # half a tolerance off passes: it is what it says
    assert_close_f32(off, right, rtol)
