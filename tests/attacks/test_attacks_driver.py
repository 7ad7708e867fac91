"""The shared attack driver: exact query counts, hard budgets, determinism, early checks."""

import inspect

import numpy as np
import pytest
from _attack_models import CountedSoftmax, Counting, LabelOnly, digits, held_out, softmax_digits

import bar_sdk.attacks
from bar_sdk.attacks import (
    FGSM,
    PGD,
    Attack,
    AttackResult,
    CarliniWagner,
    HopSkipJump,
    NESAttack,
    RayS,
    SimBA,
    SquareAttack,
    UniversalPerturbation,
    ZOOAttack,
)
from bar_sdk.contract import check_bool
from bar_sdk.errors import InvalidInputError

MODEL = softmax_digits()
X, Y = held_out(12, MODEL)

# (attack class, keyword arguments, needs a label-only model)
BLACK_BOX = [
    (SquareAttack, dict(norm="linf", eps=0.1, max_queries=60), False),
    (SquareAttack, dict(norm="l2", eps=0.8, max_queries=60), False),
    (SimBA, dict(basis="dct", eps=0.8, max_queries=60), False),
    (SimBA, dict(basis="pixel", norm="linf", eps=0.1, step=0.1, max_queries=60), False),
    (NESAttack, dict(norm="linf", eps=0.1, n_directions=4, max_queries=60), False),
    (NESAttack, dict(norm="l2", eps=0.8, estimator="one_sided", n_directions=4, max_queries=60), False),
    (ZOOAttack, dict(n_coords=8, lr=0.05, max_queries=60), False),
    (ZOOAttack, dict(n_coords=8, lr=0.05, resize=4, hierarchy=(2,), max_queries=60), False),
    (HopSkipJump, dict(norm="l2", eps=0.8, init_num_evals=10, max_queries=60), True),
    (HopSkipJump, dict(norm="linf", eps=0.1, init_num_evals=10, max_queries=60), True),
    (RayS, dict(eps=0.1, max_queries=60), True),
]
IDS = [f"{cls.__name__}-{i}" for i, (cls, _, _) in enumerate(BLACK_BOX)]


def make(cls, kwargs, label_only, **extra):
    counter = Counting(LabelOnly(MODEL) if label_only else MODEL)
    return cls(counter, random_state=0, **{**kwargs, **extra}), counter


@pytest.mark.parametrize("cls,kwargs,label_only", BLACK_BOX, ids=IDS)
def test_counts_are_exact_per_sample_and_in_total(cls, kwargs, label_only):
    attack, counter = make(cls, kwargs, label_only)
    result = attack.run(X, Y)
    assert counter.seen == result.total_queries == int(result.queries.sum())
    assert result.queries.min() >= 1 and result.queries.max() <= kwargs["max_queries"]
    # one image at a time: the counter around the model sees exactly what the result reports
    for i in (0, 5):
        attack, counter = make(cls, kwargs, label_only)
        single = attack.run(X[i : i + 1], Y[i : i + 1])
        assert counter.seen == single.queries[0] == single.total_queries


@pytest.mark.parametrize("cls,kwargs,label_only", BLACK_BOX, ids=IDS)
def test_success_is_real_and_inside_the_budget(cls, kwargs, label_only):
    attack, _ = make(cls, kwargs, label_only)
    result = attack.run(X, Y)
    pred = MODEL.predict_proba(result.x_adv).argmax(1)
    assert np.array_equal(pred[result.success] != Y[result.success], np.ones(result.success.sum(), bool))
    assert np.array_equal(result.adv_label[result.success], pred[result.success])
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    if cls.mode == "bounded" or kwargs.get("eps") is not None:
        assert np.all(result.distortion[result.success] <= kwargs["eps"] * (1 + 1e-5) + 1e-6)
    if cls.mode == "bounded":  # the constraint holds for failures too
        assert np.all(result.distortion <= kwargs["eps"] * (1 + 1e-5) + 1e-6)


@pytest.mark.parametrize("cls,kwargs,label_only", BLACK_BOX, ids=IDS)
def test_same_seed_same_result(cls, kwargs, label_only):
    a = make(cls, kwargs, label_only)[0].run(X[:4], Y[:4])
    b = make(cls, kwargs, label_only)[0].run(X[:4], Y[:4])
    assert np.array_equal(a.x_adv, b.x_adv) and np.array_equal(a.queries, b.queries)
    assert np.array_equal(a.success, b.success)


@pytest.mark.parametrize("cls,kwargs,label_only", BLACK_BOX, ids=IDS)
def test_total_budget_is_never_exceeded(cls, kwargs, label_only):
    cap = 150
    attack, counter = make(cls, kwargs, label_only, max_total_queries=cap)
    result = attack.run(X, Y)
    assert counter.seen <= cap and result.total_queries == counter.seen
    assert result.status in ("total_budget_exhausted", "all_succeeded")


def test_different_seeds_differ():
    a = SquareAttack(MODEL, eps=0.05, max_queries=40, random_state=0).run(X[:3], Y[:3])
    b = SquareAttack(MODEL, eps=0.05, max_queries=40, random_state=1).run(X[:3], Y[:3])
    assert not np.array_equal(a.x_adv, b.x_adv)


def test_square_sends_one_query_per_iteration_per_unfinished_image():
    counter = Counting(MODEL)
    result = SquareAttack(counter, eps=0.02, max_queries=50, random_state=0).run(X, Y)
    n = len(X)
    assert counter.batches[0] == n  # the clean query, all images at once
    assert all(b <= n for b in counter.batches[1:])  # then at most one image per unfinished sample
    failed = ~result.success
    assert np.all(result.queries[failed] == 50)  # failures spend exactly their budget
    assert len(counter.batches) == 50  # 1 clean round + 49 rounds (init + 48 iterations)


def test_batch_size_splits_model_calls():
    counter = Counting(MODEL)
    result = SquareAttack(counter, eps=0.1, max_queries=20, batch_size=5, random_state=0).run(X, Y)
    assert max(counter.batches) <= 5 and counter.seen == result.total_queries


def test_already_misclassified_images_cost_one_query_and_are_not_counted_as_attacked():
    x, y = digits()
    pred = MODEL.predict_proba(x[1200:]).argmax(1)
    wrong = np.flatnonzero(pred != y[1200:])[:2]
    xs = np.concatenate([x[1200:][wrong], X[:3]])
    ys = np.concatenate([y[1200:][wrong], Y[:3]])
    counter = Counting(MODEL)
    result = SquareAttack(counter, eps=0.3, max_queries=200, random_state=0).run(xs, ys)
    assert result.success[:2].all() and np.all(result.queries[:2] == 1)
    assert np.array_equal(result.x_adv[:2], xs[:2]) and np.all(result.distortion[:2] == 0)
    assert result.initially_adversarial.tolist() == [True, True, False, False, False]
    assert result.success_rate == result.success[2:].mean()
    assert result.robust_accuracy == np.mean(result.clean_correct & ~result.success)


def test_targeted_success_means_the_target_class():
    target = (Y[:6] + 1) % 10
    result = SquareAttack(MODEL, eps=0.3, max_queries=400, random_state=0).run(X[:6], Y[:6], target=target)
    assert result.targeted and result.success.any()
    pred = MODEL.predict_proba(result.x_adv).argmax(1)
    assert np.all(pred[result.success] == target[result.success])


@pytest.mark.parametrize(
    "cls,kwargs,label_only",
    [
        (SquareAttack, dict(norm="linf", eps=0.1, max_queries=200), False),
        (SimBA, dict(norm="l2", eps=1.0, max_queries=200), False),
        (HopSkipJump, dict(norm="l2", eps=1.5, init_num_evals=10, max_queries=300), True),
        (RayS, dict(eps=0.15, max_queries=300), True),
        (PGD, dict(eps=0.1, steps=10), False),
    ],
)
def test_quantized_adversarials_survive_8_bit_encoding(cls, kwargs, label_only):
    model = LabelOnly(MODEL) if label_only else MODEL
    result = cls(model, quantize=True, random_state=0, **kwargs).run(X, Y)
    assert result.success.any()
    adv = result.x_adv[result.success]
    as_png = np.round(adv * 255).astype(np.uint8)
    assert np.allclose(as_png / 255.0, adv, atol=1e-6)
    assert np.all(MODEL.predict_proba(as_png / np.float32(255)).argmax(1) != Y[result.success])
    assert np.all(result.distortion[result.success] <= kwargs["eps"] + 1e-6)


def test_result_is_frozen():
    result = SquareAttack(MODEL, eps=0.1, max_queries=20, random_state=0).run(X[:2], Y[:2])
    assert isinstance(result, AttackResult)
    with pytest.raises(AttributeError):
        result.status = "x"
    with pytest.raises(ValueError):
        result.queries[0] = 0
    assert set(result.summary()) >= {"success_rate", "median_queries", "total_queries", "status"}


# -- bad input: clear errors before any query -------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(eps=0.0), "eps=0.0"),
        (dict(eps=1.5), "eps=1.5"),
        (dict(eps=-0.1), "eps=-0.1"),
        (dict(eps=None), "eps=None"),
        (dict(norm="l1"), "norm='l1'"),
        (dict(max_queries=0), "max_queries=0"),
        (dict(max_total_queries=3), "max_total_queries=3"),
        (dict(p_init=2.0), "p_init=2.0"),
        (dict(random_state="a"), "random_state"),
    ],
)
def test_bad_parameters_are_refused_before_any_query(kwargs, match):
    counter = Counting(MODEL)
    with pytest.raises(InvalidInputError, match=match):
        SquareAttack(counter, **{"eps": 0.1, **kwargs}).run(X[:5], Y[:5])
    assert counter.seen == 0


EVERY_ATTACK = [
    cls
    for cls in (getattr(bar_sdk.attacks, name) for name in bar_sdk.attacks.__all__)
    if isinstance(cls, type) and issubclass(cls, Attack) and not inspect.isabstract(cls)
]
BOOLEANS = [
    (cls, name)
    for cls in EVERY_ATTACK
    for name, p in inspect.signature(cls.__init__).parameters.items()
    if isinstance(p.default, bool)
]


@pytest.mark.parametrize("value", ["no", "yes", 1, None])
@pytest.mark.parametrize("cls,name", BOOLEANS, ids=[f"{c.__name__}-{n}" for c, n in BOOLEANS])
def test_truthy_stand_ins_for_booleans_are_refused_before_any_query(cls, name, value):
    model = CountedSoftmax()
    with pytest.raises(InvalidInputError, match=f"{name}={value!r}; expected True or False"):
        cls(model, eps=0.1, **{name: value}).run(X[:3], Y[:3])
    assert model.seen == 0


def test_check_bool_takes_python_and_numpy_booleans_only():
    for value in (True, False, np.True_, np.False_):
        assert check_bool(value, "flag") is bool(value)
    for value in ("False", 0, 1.0, None, [True], np.array([True])):
        with pytest.raises(InvalidInputError, match="flag="):
            check_bool(value, "flag")


@pytest.mark.parametrize(
    "x,y,match",
    [
        (X[:4] * 2.0, Y[:4], r"x has values in \[0, 2\]"),
        (X[:4] - 0.5, Y[:4], "x has values"),
        (X[:4].astype(np.int32), Y[:4], "dtype int32"),
        (X[:4, :, :4], Y[:4], "input_shape"),
        (X[:4], Y[:3], r"y has shape \(3,\); expected \(4,\)"),
        (X[:4], Y[:4, None, None], "y has shape"),
        (X[:4], Y[:4] + 10, r"0\.\.9"),
        (X[:4], Y[:4] + 0.5, "non-integer"),
    ],
)
def test_bad_data_is_refused_before_any_query(x, y, match):
    counter = Counting(MODEL)
    with pytest.raises(InvalidInputError, match=match):
        SquareAttack(counter, eps=0.1).run(x, y)
    assert counter.seen == 0


def test_target_equal_to_label_is_refused():
    counter = Counting(MODEL)
    with pytest.raises(InvalidInputError, match="target equals y"):
        SquareAttack(counter, eps=0.1).run(X[:4], Y[:4], target=Y[:4])
    assert counter.seen == 0


def universal(model, **kwargs):
    # one training step: 4 antithetic evaluations x 4 images = 16 queries; the evaluation: 2 per image
    return UniversalPerturbation(
        model, **{"eps": 0.1, "max_queries": 100, "n_directions": 2, "batch_images": 4, "random_state": 0, **kwargs}
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (
            dict(max_queries=15),
            (
                r"max_queries=15; one training step costs 16 queries \(4 evaluations x 4 images\): "
                "expected at least 16, or lower batch_images/n_directions"
            ),
        ),
        (
            dict(max_total_queries=20),
            (
                r"max_total_queries=20; one training step costs 16 queries \(4 evaluations x 4 "
                r"images\) and the evaluation keeps 8 \(two per image\): expected at least 24"
            ),
        ),
    ],
)
def test_universal_check_refuses_a_budget_too_small_for_training_before_any_query(kwargs, match):
    counter = Counting(MODEL)
    attack = universal(counter, **kwargs)
    with pytest.raises(InvalidInputError, match=match):
        attack.check(X[:4], Y[:4])  # what audit and transfer_matrix call before any attack runs
    with pytest.raises(InvalidInputError, match=match):
        attack.run(X[:4], Y[:4])
    assert counter.seen == 0
    result = universal(counter, max_total_queries=24).run(X[:4], Y[:4])  # exactly enough
    assert counter.seen == result.total_queries == 24 and result.status != "total_budget_exhausted"


def test_universal_fit_needs_no_evaluation_queries():
    counter = Counting(MODEL)
    with pytest.raises(InvalidInputError, match="max_total_queries=15; .* expected at least 16"):
        universal(counter, max_total_queries=15).fit(X[:4], Y[:4])
    assert counter.seen == 0
    assert universal(counter, max_total_queries=16).fit(X[:4], Y[:4]).fit_queries_ == counter.seen == 16


@pytest.mark.parametrize("total", [4, 7])
def test_a_fitted_universal_perturbation_refuses_a_total_budget_below_its_evaluation_before_any_query(total):
    counter = Counting(MODEL)
    attack = universal(counter).fit(X[:4], Y[:4])
    fitted = counter.seen
    attack.set_params(max_total_queries=total)
    for call in (attack.check, attack.run):
        with pytest.raises(
            InvalidInputError,
            match=rf"max_total_queries={total}; the evaluation keeps 8 \(two "
            r"per image\): expected at least 8$",
        ):
            call(X[:4], Y[:4])
    assert counter.seen == fitted
    result = attack.set_params(max_total_queries=8).run(X[:4], Y[:4])
    assert result.status != "total_budget_exhausted" and np.all(result.queries == 2)
    assert counter.seen - fitted == result.total_queries == 8


@pytest.mark.parametrize("cls", [SquareAttack, SimBA, NESAttack, ZOOAttack, UniversalPerturbation])
def test_label_only_model_is_refused_by_score_based_attacks(cls):
    counter = Counting(MODEL)
    label_only = LabelOnly(counter)
    with pytest.raises(InvalidInputError, match=r"model=LabelOnly .*label_only=True.*HopSkipJump"):
        cls(label_only, eps=0.5).run(X[:4], Y[:4])
    assert counter.seen == 0


@pytest.mark.parametrize("cls", [FGSM, PGD, CarliniWagner])
def test_white_box_attacks_refuse_models_without_gradients(cls):
    counter = Counting(MODEL)
    with pytest.raises(InvalidInputError, match=r"model=Counting offers no gradients"):
        cls(counter, eps=0.5).run(X[:4], Y[:4])
    assert counter.seen == 0


def test_clone_and_set_params():
    attack = SquareAttack(MODEL, eps=0.1, max_queries=30, random_state=0)
    other = attack.clone(eps=0.2)
    assert other.eps == 0.2 and attack.eps == 0.1 and other.max_queries == 30
    with pytest.raises(InvalidInputError, match="epsilon"):
        attack.clone(epsilon=0.3)


class _ForgivingApi:
    """Like an API that reads whatever it is sent: NaN pixels are read as 0, and every batch is kept."""

    def __init__(self, model):
        self.model, self.n_classes, self.input_shape = model, model.n_classes, model.input_shape
        self.non_finite = 0
        self.seen = 0

    def predict_proba(self, x):
        x = np.asarray(x)
        self.seen += len(x)
        self.non_finite += int(np.count_nonzero(~np.isfinite(x)))
        return self.model.predict_proba(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0))


def _diverging_after(steps):
    """A user's optimizer whose parameters turn NaN after ``steps`` good steps."""
    from bar_sdk.zo import SignSGD

    class Diverging(SignSGD):
        taken = 0

        def _update(self, theta, grad, progress):
            self.taken += 1
            new = super()._update(theta, grad, progress)
            return new + np.nan if self.taken > steps else new

    return Diverging(lr=0.01)


def test_an_attack_whose_iterate_turns_nan_is_stopped_before_sending_it_and_keeps_a_finite_image():
    api = _ForgivingApi(MODEL)
    r = NESAttack(api, eps=0.1, n_directions=3, optimizer=_diverging_after(2), max_queries=200, random_state=0).run(
        X[:4], Y[:4]
    )
    assert api.non_finite == 0  # nothing non-finite left for the model
    assert np.all(np.isfinite(r.x_adv)) and np.all(np.isfinite(r.distortion))
    diverged = ~r.success
    assert diverged.any() and r.status == "stopped_non_finite" and "NaN or infinite" in r.message
    # clean query + three finite iterations of 2 * 3 probes and the current image, then stopped unsent
    assert np.all(r.queries[diverged] == 1 + 3 * 7)
    assert r.total_queries == api.seen == int(r.queries.sum())
    assert np.all(np.abs(r.x_adv - X[:4]).max(axis=(1, 2, 3)) <= 0.1 + 1e-6)  # still inside the ball


def test_the_ledger_refuses_non_finite_images_before_counting_or_sending():
    from bar_sdk.ledger import MeteredModel, QueryLedger

    model = CountedSoftmax()
    metered = MeteredModel(model, QueryLedger(100))
    bad = X[:3].copy()
    bad[1, 0, 2, 2] = np.nan
    with pytest.raises(InvalidInputError, match="1 NaN or infinite values"):
        metered.predict_proba(bad)
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        metered.log_proba_gradient(np.full_like(bad, np.inf), lambda logp: (0.0, np.zeros_like(logp)))
    assert model.seen == 0 and metered.ledger.queries == 0


def test_universal_training_stops_at_a_non_finite_step_and_keeps_the_last_finite_perturbation():
    api = _ForgivingApi(MODEL)
    attack = UniversalPerturbation(
        api, eps=0.1, n_directions=2, batch_images=4, max_queries=400, optimizer=_diverging_after(3), random_state=0
    ).fit(X[:8], Y[:8])
    assert api.non_finite == 0 and np.all(np.isfinite(attack.perturbation_))
    assert len(attack.history_) == 4 and attack.fit_queries_ == api.seen == 4 * 2 * 2 * 4
    assert 0 < np.abs(attack.perturbation_).max() <= 0.1 + 1e-7


def test_nes_with_more_directions_than_its_budget_stops_without_drawing_them():
    model = CountedSoftmax()
    r = NESAttack(model, eps=0.1, n_directions=10**9, max_queries=100, random_state=0).run(X[:2], Y[:2])
    assert model.seen == 2 and np.all(r.queries == 1) and r.status == "budget_exhausted"
