"""Distilling a local surrogate on the black box's answers: counted queries, fidelity, the warm start it buys."""

import numpy as np
import pytest
from _extras import reason

torch = pytest.importorskip("torch", reason=reason("torch"))

from _transfer_models import SPOILED_SPLITS, Counting, breast_cancer, cnn, mlp, spoiled_split  # noqa: E402

from bar_sdk import InvalidInputError  # noqa: E402
from bar_sdk.adapters import TorchModel  # noqa: E402
from bar_sdk.adapters.nets import MLPNet  # noqa: E402
from bar_sdk.transfer import distill_surrogate, warm_start_study  # noqa: E402


def untrained(n_classes=3, seed=0):
    """A surrogate that knows nothing, with a label space unlike the black box's."""
    return TorchModel(MLPNet((1, 16, 16), n_classes, hidden=64, random_state=seed), (1, 16, 16))


def test_sends_exactly_its_budget_and_learns_the_black_box():
    Xa, _, _, _ = breast_cancer()
    black_box = Counting(cnn())
    surrogate = untrained()
    before = [p.detach().clone() for p in surrogate.module.parameters()]
    out = distill_surrogate(black_box, surrogate, Xa, max_queries=2000, random_state=0)
    assert out.queries == black_box.seen == 2000
    assert out.n_train + out.n_holdout == 2000 and out.n_holdout == 200
    # the head was replaced to the black box's classes on the copy; the surrogate given is untouched
    assert out.model.n_classes == 10 and surrogate.n_classes == 3
    assert all(torch.equal(a, b) for a, b in zip(before, surrogate.module.parameters(), strict=False))
    # fidelity on frames it never saw: far above the untrained copy's
    assert out.agreement >= out.agreement_before + 0.2
    assert out.agreement >= 0.6
    # KL(black box || copy) on those frames: well under the untrained copy's (same new head, before fine-tuning)
    assert out.kl is not None and out.kl < 0.5 * out.kl_before


def test_same_seed_same_copy():
    Xa, Xb, _, _ = breast_cancer()
    a = distill_surrogate(cnn(), untrained(), Xa, max_queries=400, epochs=3, random_state=3)
    b = distill_surrogate(cnn(), untrained(), Xa, max_queries=400, epochs=3, random_state=3)
    x = np.random.default_rng(0).random((5, 1, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(a.model.predict_proba(x), b.model.predict_proba(x))


def test_bad_requests_are_refused_before_any_query():
    Xa, _, _, _ = breast_cancer()
    black_box = Counting(cnn())
    with pytest.raises(InvalidInputError, match="surrogate=Counting"):
        distill_surrogate(black_box, Counting(mlp()), Xa)
    with pytest.raises(InvalidInputError, match="input_shape"):
        distill_surrogate(black_box, TorchModel(MLPNet((1, 8, 8), 10), (1, 8, 8)), Xa)
    with pytest.raises(InvalidInputError, match="max_queries"):
        distill_surrogate(black_box, untrained(), Xa, max_queries=10)
    with pytest.raises(InvalidInputError, match="holdout"):
        distill_surrogate(black_box, untrained(), Xa, holdout=0.7)
    with pytest.raises(InvalidInputError, match="bar_params"):
        distill_surrogate(black_box, untrained(), Xa, bar_params={"no_such": 1})
    with pytest.raises(InvalidInputError, match="distill_queries"):
        warm_start_study(
            black_box,
            untrained(),
            Xa,
            np.zeros(len(Xa), int),
            Xa,
            np.zeros(len(Xa), int),
            budgets={"cold": [3000], "distilled": [1000]},
            strategies=("cold", "distilled"),
            distill_queries=1000,
        )
    assert black_box.seen == 0


def test_distilled_warm_start_counts_the_distillation_in_its_budget():
    Xa, Xb, ya, yb = breast_cancer()
    black_box = Counting(cnn())
    study = warm_start_study(
        black_box,
        untrained(),
        Xa,
        ya,
        Xb,
        yb,
        budgets={"cold": [1500], "distilled": [1500]},
        strategies=("cold", "distilled"),
        distill_queries=600,
        surrogate_epochs=2,
        distill_params={"epochs": 3},
    )
    rows = {r["strategy"]: r for r in study.rows}
    assert rows["distilled"]["distill_queries"] == 600
    assert 600 < rows["distilled"]["queries"] <= 1500
    assert rows["cold"]["distill_queries"] == 0
    [sur] = study.surrogate_rows
    assert sur["surrogate"] == "distilled" and sur["queries"] == 600
    # everything the black box saw: both fits, the distillation and the two test evaluations
    fits = sum(r["queries"] + r["eval_queries"] for r in study.rows)
    assert black_box.seen == fits


def test_distilled_program_spends_its_budget_over_rounds():
    from bar_sdk.transfer import distilled_program

    Xa, Xb, ya, yb = breast_cancer()
    black_box = Counting(cnn())
    out = distilled_program(
        black_box,
        untrained(),
        Xa,
        ya,
        max_queries=1001,
        rounds=2,
        surrogate_epochs=2,
        distill_params={"epochs": 3},
        random_state=0,
    )
    assert black_box.seen == out.queries == 1001
    assert [r.queries for r in out.rounds] == [501, 500]
    assert out.theta.shape == out.classifier.theta_.shape and out.gradient_calls > 0
    assert out.surrogate.n_classes == 10
    # each round's fine-tuning brings the copy closer to the black box on that round's held-out frames
    for r in out.rounds:
        assert r.kl < r.kl_before
        assert r.agreement > r.agreement_before


def test_distilled_program_refuses_bad_settings_before_any_query():
    from bar_sdk.transfer import distilled_program

    Xa, _, ya, _ = breast_cancer()
    black_box = Counting(cnn())
    with pytest.raises(InvalidInputError, match="rounds"):
        distilled_program(black_box, untrained(), Xa, ya, rounds=0)
    with pytest.raises(InvalidInputError, match="per round"):
        distilled_program(black_box, untrained(), Xa, ya, max_queries=50, rounds=3)
    with pytest.raises(InvalidInputError, match="distill_params"):
        distilled_program(black_box, untrained(), Xa, ya, distill_params={"center": 0})
    with pytest.raises(InvalidInputError, match="bar_params"):
        distilled_program(black_box, untrained(), Xa, ya, bar_params={"estimator": "exact"})
    assert black_box.seen == 0


def test_distilled_program_refuses_settings_it_owns_before_any_query(tmp_path):
    from bar_sdk.transfer import distilled_program

    Xa, _, ya, _ = breast_cancer()
    black_box = Counting(cnn())
    path = tmp_path / "ckpt.npz"
    with pytest.raises(InvalidInputError, match=r"bar_params sets \['checkpoint'\]"):
        distilled_program(black_box, untrained(), Xa, ya, max_queries=100, bar_params={"checkpoint": str(path)})
    with pytest.raises(InvalidInputError, match=r"bar_params sets \['surrogate'\]"):
        distilled_program(black_box, untrained(), Xa, ya, max_queries=100, bar_params={"surrogate": untrained()})
    assert black_box.seen == 0
    assert not path.exists()


@pytest.mark.parametrize("bad", ["y-length", "y-one-class", "bar_params-grid_size", "bar_params-labels_per_class"])
def test_distilled_program_checks_y_and_bar_params_before_its_first_round(bad):
    from bar_sdk.transfer import distilled_program

    Xa, _, ya, _ = breast_cancer()
    black_box = Counting(cnn())
    y, params = ya, {}
    if bad == "y-length":
        y = ya[:-1]
    elif bad == "y-one-class":
        y = np.zeros_like(ya)
    elif bad == "bar_params-grid_size":
        params = {"grid_size": 0}
    else:
        params = {"labels_per_class": 6}  # 2 classes x 6 labels do not fit in the model's 10
    with pytest.raises(InvalidInputError, match="y|grid_size|labels_per_class"):
        distilled_program(black_box, untrained(), Xa, y, max_queries=200, rounds=2, bar_params=params)
    assert black_box.seen == 0


@pytest.mark.parametrize("bad,match", SPOILED_SPLITS + [("warm-budget", r"max_queries=5 is too small")])
def test_warm_start_study_checks_every_fit_and_the_test_split_before_any_query(bad, match):
    Xa, Xb, ya, yb = breast_cancer()
    black_box = Counting(cnn())
    budgets = {"cold": [800], "warm": [800]}  # each fit: mapping pass 284 + a step 60 + readout pass 284
    Xb, yb = spoiled_split(bad, Xb, yb)
    if bad == "warm-budget":
        budgets = {"cold": [800], "warm": [5]}  # the warm fits come after the cold ones have spent
    with pytest.raises(InvalidInputError, match=match):
        warm_start_study(
            black_box, mlp(), Xa, ya, Xb, yb, budgets=budgets, strategies=("cold", "warm"), surrogate_epochs=1
        )
    assert black_box.seen == 0


def test_a_surrogate_without_a_linear_head_is_refused_before_any_query():
    """Its head is what distillation replaces and fine-tuning reads: found missing before the black box is paid."""
    Xa, _, _, _ = breast_cancer()
    black_box = Counting(cnn())
    headless = TorchModel(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Softmax(dim=1)), (1, 16, 16), outputs="probabilities"
    )
    with pytest.raises(InvalidInputError, match="no torch.nn.Linear"):
        distill_surrogate(black_box, headless, Xa, max_queries=100)
    assert black_box.seen == 0
