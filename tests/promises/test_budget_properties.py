"""Property-based: for any estimator, batch size and budget, the budget holds and counts agree."""

import numpy as np
from _models import fresh_linear
from hypothesis import HealthCheck, given, settings, strategies as st
from sklearn.datasets import load_breast_cancer

from bar_sdk import BARClassifier, InvalidInputError
from bar_sdk.adapters import TopK
from bar_sdk.zo import ESTIMATORS

DATA = load_breast_cancer()
X, Y = DATA.data[:60], DATA.target[:60]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    estimator=st.sampled_from([*ESTIMATORS, "exact"]),  # every registered estimator, and exact gradients
    batch_size=st.integers(1, 70),
    n_directions=st.integers(1, 6),
    budget=st.integers(1, 3000),
    mapping=st.sampled_from(["frequency", "random", "iterative"]),
    seed=st.integers(0, 2**16),
)
def test_budget_never_exceeded_and_queries_equal_an_independent_count(
    estimator, batch_size, n_directions, budget, mapping, seed
):
    model = fresh_linear()
    clf = BARClassifier(
        model,
        max_queries=budget,
        batch_size=batch_size,
        n_directions=n_directions,
        estimator=estimator,
        mapping=mapping,
        random_state=seed,
    )
    try:
        clf.fit(X, Y)
    except InvalidInputError as err:  # a budget too small for the mapping pass and one step
        assert "too small for one step" in str(err)
        assert model.seen == 0
        return
    assert clf.queries_ == model.seen <= budget
    assert sum(clf.ledger_.by_purpose.values()) == clf.queries_
    assert clf.history_["queries"] == sorted(clf.history_["queries"])


@settings(max_examples=15, deadline=None)
@given(k=st.integers(1, 10), budget=st.integers(400, 2500), seed=st.integers(0, 1000))
def test_top_k_answers_never_break_training(k, budget, seed):
    model = fresh_linear()
    clf = BARClassifier(TopK(model, k), max_queries=budget, random_state=seed).fit(X, Y)
    proba = clf.predict_proba(X[:5])
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(1), 1.0)
    assert clf.queries_ <= budget and model.seen == clf.queries_ + 5
