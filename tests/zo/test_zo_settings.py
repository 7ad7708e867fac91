"""Estimator and optimizer settings: refused when built, and again before any query when changed later."""

import inspect

import numpy as np
import pytest
from _attack_models import CountedSoftmax, held_out

from bar_sdk import BARClassifier, InvalidInputError
from bar_sdk.attacks import ATTACKS, NESAttack, UniversalPerturbation
from bar_sdk.zo import (
    SGD,
    SPSAGC,
    Adam,
    AntitheticEstimator,
    CoordinateEstimator,
    GuidedEstimator,
    HistoryEstimator,
    RandomGradientEstimator,
    SignSGD,
)

XA, YA = held_out(4)
#: the registered attacks that take an estimator and an optimizer: registering one puts it in the tests below
ZO_ATTACKS = [cls for cls in ATTACKS.values() if {"estimator", "optimizer"} <= set(inspect.signature(cls).parameters)]


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: AntitheticEstimator(0, 0.1), r"AntitheticEstimator\.n_directions=0; expected an integer >= 1"),
        (lambda: RandomGradientEstimator(n_directions=2.5), r"RandomGradientEstimator\.n_directions=2\.5"),
        (lambda: CoordinateEstimator(smoothing=0.0), r"CoordinateEstimator\.smoothing=0\.0; expected a number > 0"),
        (lambda: RandomGradientEstimator(smoothing=float("nan")), r"smoothing=nan; expected a finite number"),
        (lambda: RandomGradientEstimator(baseline="median"), r"RandomGradientEstimator\.baseline='median'"),
        (lambda: GuidedEstimator(prior_weight=1.5), r"GuidedEstimator\.prior_weight=1\.5"),
        (lambda: HistoryEstimator(memory=-0.1), r"HistoryEstimator\.memory=-0\.1"),
        (lambda: HistoryEstimator(explore=0.0), r"HistoryEstimator\.explore=0\.0"),
        (lambda: SGD(lr=-1), r"SGD\.lr=-1; expected a number > 0"),
        (lambda: SignSGD(lr_decay=0.0), r"SignSGD\.lr_decay=0\.0"),
        (
            lambda: SGD(lr=0.5, weight_decay=2.0),
            r"SGD\.weight_decay=2\.0 with lr=0\.5; expected lr \* weight_decay < 1",
        ),
        (lambda: Adam(beta1=1), r"Adam\.beta1=1\.0; expected a number in \[0, 1\)"),
        (lambda: Adam(beta2=1.0), r"Adam\.beta2=1\.0; expected a number in \[0, 1\)"),
        (lambda: Adam(eps=0.0), r"Adam\.eps=0\.0"),
        (lambda: SPSAGC(momentum=1.0), r"SPSAGC\.momentum=1\.0; expected a number in \[0, 1\)"),
    ],
)
def test_a_setting_that_cannot_work_is_refused_at_construction_naming_it(build, match):
    with pytest.raises(InvalidInputError, match=match):
        build()


def test_validate_checks_the_settings_as_they_are_now_and_returns_the_instance():
    from bar_sdk.zo import validate_instances

    est, opt = AntitheticEstimator(3, 0.1), Adam()
    assert est.validate() is est and opt.validate() is opt
    est.n_directions, opt.beta1 = 0, 1.0
    with pytest.raises(InvalidInputError, match=r"AntitheticEstimator\.n_directions=0"):
        est.validate()
    with pytest.raises(InvalidInputError, match=r"Adam\.beta1=1\.0"):
        validate_instances("adam", None, opt)
    validate_instances("antithetic", None, "sgd")  # names are checked by their consumers


def _spoiled(kind):
    """An instance built valid, then given a setting that cannot work (as the issue found them)."""
    if kind == "n_directions":
        obj = RandomGradientEstimator(5, 0.1)
        obj.n_directions = 0
    elif kind == "lr":
        obj = SGD(lr=0.1)
        obj.lr = -1
    else:
        obj = Adam()
        obj.beta1 = 1.0
    return obj


@pytest.mark.parametrize("kind", ["n_directions", "lr", "beta1"])
def test_bar_classifier_refuses_a_spoiled_instance_before_the_mapping_pass(kind):
    model = CountedSoftmax()
    obj = _spoiled(kind)
    param = "estimator" if kind == "n_directions" else "optimizer"
    with pytest.raises(InvalidInputError, match=kind):
        BARClassifier(model, max_queries=400, random_state=0, **{param: obj}).fit(
            XA.reshape(4, -1)[:, :10], np.array([0, 1, 0, 1])
        )
    assert model.seen == 0


@pytest.mark.parametrize("kind", ["n_directions", "lr", "beta1"])
@pytest.mark.parametrize("attack", ZO_ATTACKS, ids=lambda cls: cls.__name__)
def test_attacks_refuse_a_spoiled_instance_before_the_clean_query(attack, kind):
    model = CountedSoftmax()
    param = "estimator" if kind == "n_directions" else "optimizer"
    extra = {"batch_images": 2} if attack is UniversalPerturbation else {}
    with pytest.raises(InvalidInputError, match=kind):
        attack(model, eps=0.1, max_queries=200, **extra, **{param: _spoiled(kind)}).run(XA, YA)
    assert model.seen == 0


def test_the_zeroth_order_attacks_are_read_from_the_registry():
    assert {NESAttack, UniversalPerturbation} <= set(ZO_ATTACKS)  # the two known today are found


def test_universal_perturbation_with_zero_directions_is_a_named_error_not_a_zero_division():
    model = CountedSoftmax()
    est = AntitheticEstimator(2, 0.1)
    est.n_directions = 0  # AntitheticEstimator(0, 0.1) itself is refused when built
    with pytest.raises(InvalidInputError, match=r"n_directions=0"):
        UniversalPerturbation(model, eps=0.1, estimator=est).fit(XA, YA)
    assert model.seen == 0
