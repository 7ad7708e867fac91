"""Program transfer and the warm-start study: programs moved between models, queries saved."""

import pytest
from _extras import requires
from _transfer_models import Counting, breast_cancer, cnn, mlp

from bar_sdk import BARClassifier, InvalidInputError
from bar_sdk.transfer import WarmStartStudy, evaluate_program, warm_start_study

pytestmark = requires("torch")  # the models are torch networks


@pytest.fixture(scope="module")
def fitted():
    Xa, Xb, ya, yb = breast_cancer()
    clf = BARClassifier(cnn(), max_queries=3000, random_state=0).fit(Xa, ya)
    return clf, Xa, Xb, ya, yb


def test_program_on_its_own_model_matches_the_classifier(fitted):
    clf, Xa, Xb, ya, yb = fitted
    counting = Counting(cnn())
    out = evaluate_program(clf, {"same": counting}, Xb, yb)
    assert out.queries["same"] == len(yb) == counting.seen
    assert out.metrics["same"]["accuracy"] == pytest.approx(clf.score(Xb, yb))
    assert not out.remapped


def test_kept_mapping_keeps_a_logistic_readout():
    Xa, Xb, ya, yb = breast_cancer()
    clf = BARClassifier(cnn(), max_queries=3000, random_state=0, readout="logistic").fit(Xa, ya)
    out = evaluate_program(clf, {"same": cnn()}, Xb, yb)
    assert out.metrics["same"]["accuracy"] == pytest.approx(clf.score(Xb, yb))


def test_remapping_costs_one_pass_and_is_counted(fitted):
    clf, Xa, Xb, ya, yb = fitted
    counting = Counting(mlp())
    out = evaluate_program(clf, {"mlp": counting}, Xb, yb, X_map=Xa, y_map=ya)
    assert out.queries["mlp"] == len(ya) + len(yb) == counting.seen
    assert out.remapped and set(out.mappings["mlp"]) == {"0", "1"}
    assert 0.0 <= out.metrics["mlp"]["accuracy"] <= 1.0


def test_bad_requests_are_refused_before_any_query(fitted):
    clf, Xa, Xb, ya, yb = fitted
    counting = Counting(mlp())
    with pytest.raises(InvalidInputError, match="X_map and y_map"):
        evaluate_program(clf, {"m": counting}, Xb, yb, X_map=Xa)
    with pytest.raises(InvalidInputError, match="input_shape"):
        from bar_sdk.adapters import TorchModel
        from bar_sdk.adapters.nets import MLPNet

        evaluate_program(clf, {"m": TorchModel(MLPNet((1, 8, 8), 10), (1, 8, 8))}, Xb, yb)
    assert counting.seen == 0


def test_warm_start_from_a_local_surrogate_reaches_cold_accuracy_with_half_the_queries():
    # black box: a digits CNN; surrogate: another CNN (other seed) trained on the same digits, free to query
    Xa, Xb, ya, yb = breast_cancer()
    study = warm_start_study(
        cnn(),
        cnn(seed=1),
        Xa,
        ya,
        Xb,
        yb,
        budgets={"cold": [8000], "warm": [4000]},
        seeds=(0, 1, 2),
        strategies=("cold", "warm"),
        surrogate_epochs=5,
    )
    _, cold = study.reference_level("accuracy")
    _, warm = study.curve("warm", "accuracy")
    assert warm[0] >= cold
    assert study.queries_to_reach("warm", "accuracy") == 4000
    assert study.savings("accuracy")["warm"]["fraction"] == 0.5
    for row in study.rows:  # every fit stayed inside its budget, and the surrogate cost no black-box query
        assert row["queries"] <= row["budget"]
    assert all(r["gradient_calls"] > 0 for r in study.surrogate_rows)


def test_guided_fits_count_surrogate_calls_apart():
    Xa, Xb, ya, yb = breast_cancer()
    study = warm_start_study(cnn(), mlp(), Xa, ya, Xb, yb, budgets=[1500], strategies=("cold", "guided"))
    rows = {r["strategy"]: r for r in study.rows}
    assert rows["cold"]["surrogate_queries"] == 0
    assert rows["guided"]["surrogate_queries"] > 0
    assert rows["guided"]["queries"] <= 1500
    assert study.surrogate_rows == ()  # no warm strategy: no white-box program trained


def _row(strategy, budget, acc, seed=0):
    return {"strategy": strategy, "seed": seed, "budget": budget, "accuracy": acc, "balanced_accuracy": acc, "auc": acc}


def test_queries_to_reach_reads_the_mean_curve():
    rows = (
        _row("cold", 1000, 0.6),
        _row("cold", 4000, 0.8),
        _row("cold", 4000, 0.7, seed=1),
        _row("warm", 500, 0.7),
        _row("warm", 500, 0.8, seed=1),
        _row("warm", 1000, 0.9),
        _row("guided", 1000, 0.5),
        _row("guided", 4000, 0.74),
    )
    study = WarmStartStudy(rows=rows, surrogate_rows=())
    assert study.reference_level("accuracy") == (4000, pytest.approx(0.75))
    assert study.queries_to_reach("warm") == 500  # mean 0.75 at 500 reaches the level 0.75
    assert study.queries_to_reach("guided") is None
    assert study.queries_to_reach("cold") == 4000
    saved = study.savings("auc")
    assert saved["warm"]["fraction"] == 0.125 and saved["guided"]["fraction"] is None


def test_study_parameters_are_checked_before_any_query():
    Xa, Xb, ya, yb = breast_cancer()
    counting = Counting(cnn())
    with pytest.raises(InvalidInputError, match="cold"):
        warm_start_study(counting, mlp(), Xa, ya, Xb, yb, budgets=[1000], strategies=("warm",))
    with pytest.raises(InvalidInputError, match="bar_params"):
        warm_start_study(counting, mlp(), Xa, ya, Xb, yb, budgets=[1000], bar_params={"max_queries": 5})
    with pytest.raises(InvalidInputError, match="surrogate"):
        warm_start_study(counting, Counting(mlp()), Xa, ya, Xb, yb, budgets=[1000])
    with pytest.raises(InvalidInputError, match="budgets"):
        warm_start_study(counting, mlp(), Xa, ya, Xb, yb, budgets={"cold": [1000]}, strategies=("cold", "warm"))
    assert counting.seen == 0
