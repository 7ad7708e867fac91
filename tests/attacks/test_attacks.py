"""Each attack against a small real network (scikit-learn digits, trained in the test)."""

import numpy as np
import pytest
from _attack_models import Counting, LabelOnly, held_out, mlp_digits
from _extras import reason

from bar_sdk.attacks import (
    FGSM,
    PGD,
    CarliniWagner,
    HopSkipJump,
    NESAttack,
    RayS,
    SimBA,
    SquareAttack,
    UniversalPerturbation,
    ZOOAttack,
)
from bar_sdk.errors import InvalidInputError
from bar_sdk.zo import AntitheticEstimator, SignSGD

NET = mlp_digits()
X, Y = held_out(30, NET)

# attack, keyword arguments, label-only model, budgets (per image)
CASES = [
    (SquareAttack, dict(norm="linf", eps=0.15), False, (20, 100, 500)),
    (SquareAttack, dict(norm="l2", eps=1.0), False, (20, 100, 500)),
    (SimBA, dict(basis="dct", eps=1.0), False, (20, 100, 500)),
    (SimBA, dict(basis="pixel", eps=1.0), False, (20, 100, 500)),
    (NESAttack, dict(norm="linf", eps=0.15, n_directions=5), False, (20, 100, 500)),
    (NESAttack, dict(norm="l2", eps=1.0, n_directions=5, estimator="one_sided"), False, (20, 100, 500)),
    (ZOOAttack, dict(eps=1.5, n_coords=8, lr=0.05), False, (50, 200, 1000)),
    (HopSkipJump, dict(norm="l2", eps=1.5, init_num_evals=20), True, (20, 100, 500)),
    (HopSkipJump, dict(norm="linf", eps=0.15, init_num_evals=20), True, (50, 200, 1000)),
    (RayS, dict(eps=0.15), True, (20, 100, 500)),
]


@pytest.mark.parametrize(
    "cls,kwargs,label_only,budgets", CASES, ids=[f"{c.__name__}-{i}" for i, (c, *_) in enumerate(CASES)]
)
def test_attack_lowers_accuracy_and_success_rises_with_budget(cls, kwargs, label_only, budgets):
    model = LabelOnly(NET) if label_only else NET
    results = [cls(model, max_queries=q, random_state=0, **kwargs).run(X, Y) for q in budgets]
    rates = [r.success_rate for r in results]
    assert rates == sorted(rates) and rates[-1] > rates[0]
    assert results[-1].robust_accuracy <= 0.5 * results[-1].clean_accuracy
    assert results[0].clean_accuracy == 1.0  # held_out picks correctly classified digits


def test_targeted_attacks_reach_the_target():
    target = (Y + 3) % 10
    for attack in (
        SquareAttack(NET, eps=0.3, max_queries=500, random_state=0),
        NESAttack(NET, eps=0.3, n_directions=5, max_queries=2000, random_state=0),
    ):
        result = attack.run(X[:10], Y[:10], target=target[:10])
        assert result.success_rate >= 0.5
        assert np.all(NET.predict_proba(result.x_adv[result.success]).argmax(1) == target[:10][result.success])


def test_nes_uses_the_core_estimator_and_optimizer_it_is_given():
    asked = []

    class Spy(AntitheticEstimator):
        def ask(self, theta, rng):
            asked.append(theta.size)
            return super().ask(theta, rng)

    spy = Spy(n_directions=3, smoothing=0.05)
    result = NESAttack(NET, eps=0.2, estimator=spy, optimizer=SignSGD(lr=0.04), max_queries=70, random_state=0).run(
        X[:3], Y[:3]
    )
    assert asked and set(asked) == {64}
    # each iteration: 2 * 3 probes + the current image; the spy instance itself is left untouched
    assert np.all((result.queries[~result.success] - 1) % 7 == 0)
    assert spy._dirs is None


def test_universal_perturbation_fools_more_with_more_queries_and_transfers_to_new_images():
    x_fit, y_fit = X, Y
    x_new, y_new = held_out(90, NET)
    x_new, y_new = x_new[30:], y_new[30:]
    rates = []
    for budget in (2000, 20000):
        counter = Counting(NET)
        uap = UniversalPerturbation(counter, eps=0.25, max_queries=budget, random_state=0).fit(x_fit, y_fit)
        assert counter.seen == uap.fit_queries_ <= budget
        assert np.abs(uap.perturbation_).max() <= 0.25 + 1e-6
        result = uap.run(x_new, y_new)
        assert np.all(result.queries == 2) and counter.seen == uap.fit_queries_ + 2 * len(x_new)
        rates.append(result.success_rate)
    assert rates[1] > rates[0] and rates[1] >= 0.3


def test_universal_perturbation_run_fits_first_and_reports_shared_queries():
    counter = Counting(NET)
    result = UniversalPerturbation(counter, eps=0.25, max_queries=3000, random_state=0).run(X, Y)
    assert result.total_queries == counter.seen == result.extra["fit_queries"] + 2 * len(X)
    assert result.extra["perturbation"].shape == X.shape[1:]


def test_white_box_attacks_bound_the_black_box_ones():
    fgsm = FGSM(NET, eps=0.15).run(X, Y)
    pgd = PGD(NET, eps=0.15, steps=20, random_state=0).run(X, Y)
    square = SquareAttack(NET, eps=0.15, max_queries=100, random_state=0).run(X, Y)
    assert pgd.success_rate >= fgsm.success_rate > 0.2
    assert pgd.success_rate >= square.success_rate
    assert np.all(fgsm.queries == 3)  # clean query, gradient, check
    assert np.all(pgd.distortion <= 0.15 + 1e-6)
    l2 = PGD(NET, norm="l2", eps=1.0, steps=20, random_state=0).run(X, Y)
    assert l2.success_rate > 0.5 and np.all(l2.distortion <= 1.0 + 1e-6)


def test_carlini_wagner_minimises_distortion():
    loose = CarliniWagner(NET, lr=0.1, steps=40, binary_search_steps=3).run(X[:10], Y[:10])
    assert loose.success.all()
    tight = CarliniWagner(NET, eps=float(np.median(loose.distortion)), lr=0.1, steps=40, binary_search_steps=3).run(
        X[:10], Y[:10]
    )
    # no randomness: the tight run follows the loose one and stops as soon as it is within eps
    assert tight.success.sum() >= 5
    assert np.all(tight.distortion[tight.success] <= np.median(loose.distortion) + 1e-6)
    assert tight.queries.sum() < loose.queries.sum()
    pgd = PGD(NET, norm="l2", eps=float(loose.distortion.max()) + 1e-3, steps=40, random_state=0).run(X[:10], Y[:10])
    assert pgd.success_rate > 0.5


def test_decision_attacks_shrink_distortion_with_budget():
    lo = LabelOnly(NET)
    small = HopSkipJump(lo, init_num_evals=20, max_queries=100, random_state=0).run(X[:10], Y[:10])
    large = HopSkipJump(lo, init_num_evals=20, max_queries=1000, random_state=0).run(X[:10], Y[:10])
    assert small.success.all() and large.success.all()  # eps=None: any adversarial counts
    assert np.median(large.distortion) < np.median(small.distortion)
    r_small = RayS(lo, max_queries=100, random_state=0).run(X[:10], Y[:10])
    r_large = RayS(lo, max_queries=1000, random_state=0).run(X[:10], Y[:10])
    assert np.median(r_large.distortion) < np.median(r_small.distortion)


def test_attacks_on_a_torch_cnn_through_the_adapters():
    pytest.importorskip("torch", reason=reason("torch"))
    from bar_sdk.adapters import LabelOnly as ApiLabelOnly, TorchModel
    from bar_sdk.adapters.nets import SmallCNN, digits_images, train_classifier

    x, y = digits_images(8)
    net = train_classifier(SmallCNN(1, 10, 8, width=8, random_state=0), x[:1200], y[:1200], epochs=6, random_state=0)
    model = TorchModel(net, (1, 8, 8))
    ok = model.predict_proba(x[1200:]).argmax(1) == y[1200:]
    xs, ys = x[1200:][ok][:20], y[1200:][ok][:20]
    pgd = PGD(model, eps=0.2, steps=10, random_state=0).run(xs, ys)  # gradients via log_proba_gradient
    square = SquareAttack(model, eps=0.2, max_queries=200, random_state=0).run(xs, ys)
    assert pgd.success_rate >= 0.5 and square.success_rate >= 0.3
    api = ApiLabelOnly(model)
    with pytest.raises(InvalidInputError, match="label_only=True"):
        SquareAttack(api, eps=0.2).run(xs, ys)
    hsj = HopSkipJump(api, norm="linf", eps=0.2, init_num_evals=20, max_queries=300, random_state=0).run(xs, ys)
    assert hsj.success_rate >= 0.3


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(beta1=1.0), r"beta1=1.0; expected a number in \[0, 1\)"),  # Adam's bias correction would divide by 0
        (dict(beta2=1.0), r"beta2=1.0"),
        (dict(hierarchy=("a",)), "hierarchy="),
    ],
)
def test_zoo_parameters_that_would_send_nan_images_or_crash_are_named(kwargs, match):
    model = Counting(NET)
    with pytest.raises(InvalidInputError, match=match):
        ZOOAttack(model, eps=1.5, max_queries=50, **kwargs).run(X[:2], Y[:2])
    assert model.seen == 0


def test_an_attack_that_stops_itself_at_its_budget_reports_budget_exhausted():
    # HopSkipJump retires a sample on its own when the next stage does not fit; the status must say so
    model = LabelOnly(NET)
    r = HopSkipJump(model, norm="l2", eps=0.05, init_num_evals=20, max_queries=51, random_state=0).run(X[:1], Y[:1])
    assert not r.success[0] and r.queries[0] == 51 and r.status == "budget_exhausted"
