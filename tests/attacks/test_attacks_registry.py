"""Every registered attack, with its defaults: a budget it keeps, counted exactly, and bad input refused first.

The attacks come from :data:`bar_sdk.attacks.ATTACKS`; registering an attack is what puts it here.
"""

import inspect

import numpy as np
import pytest
from _attack_models import CountedSoftmax, LabelOnly, held_out

import bar_sdk.attacks
from bar_sdk.attacks import ATTACKS, Attack, AttackResult, register
from bar_sdk.errors import InvalidInputError

X, Y = held_out(3)


class CountedLabels(LabelOnly):
    """Label-only answers, every image counted."""

    def __init__(self):
        super().__init__(CountedSoftmax())

    @property
    def seen(self):
        return self.model.seen


def _model(cls):
    return CountedLabels() if cls.access == "decision" else CountedSoftmax()


def test_every_exported_attack_class_is_registered_once():
    exported = [getattr(bar_sdk.attacks, name) for name in bar_sdk.attacks.__all__]
    classes = {c for c in exported if inspect.isclass(c) and issubclass(c, Attack) and c is not Attack}
    assert classes == set(ATTACKS.values()) and len(ATTACKS) == len(classes)


def test_register_refuses_a_taken_name_and_a_non_attack():
    with pytest.raises(InvalidInputError, match="name='square'"):
        register("square", ATTACKS["square"])
    with pytest.raises(InvalidInputError, match="cls="):
        register("newattack", dict)
    assert "newattack" not in ATTACKS


@pytest.mark.parametrize("name", list(ATTACKS))
def test_a_registered_attack_keeps_its_budget_and_the_ledger_equals_an_independent_count(name):
    cls = ATTACKS[name]
    model = _model(cls)
    budget = 12 if cls.per_image_budget else 120  # a universal perturbation's budget is for all images
    result = cls(model, max_queries=budget, random_state=0).run(X, Y)
    assert isinstance(result, AttackResult)
    assert result.total_queries == model.seen  # every image sent (gradient calls too) is counted
    if cls.per_image_budget:
        assert np.all(result.queries <= budget) and result.total_queries <= budget * len(X)
    else:
        assert result.total_queries <= budget + 2 * len(X)  # training, plus a clean and a final answer per image
    assert result.x_adv.shape == X.shape and np.all((result.x_adv >= 0) & (result.x_adv <= 1))


@pytest.mark.parametrize("name", list(ATTACKS))
def test_a_registered_attack_refuses_bad_labels_and_a_bad_budget_before_any_query(name):
    cls = ATTACKS[name]
    model = _model(cls)
    with pytest.raises(InvalidInputError, match="y"):
        cls(model, max_queries=12, random_state=0).run(X, Y[:-1])
    with pytest.raises(InvalidInputError, match="max_queries"):
        cls(model, max_queries=-1, random_state=0).run(X, Y)
    assert model.seen == 0
