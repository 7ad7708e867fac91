"""Property-based budgets for the attacks and for RemoteModel (BARClassifier's are in
tests/promises/test_budget_properties.py): whatever the attack, the budgets and the batch size, no budget
is ever exceeded, and the counts reported equal counts taken independently, around the model."""

import httpx
import numpy as np
import pytest
from _attack_models import LabelOnly, held_out, softmax_digits
from _figures import examples, record
from hypothesis import HealthCheck, given, settings, strategies as st

from bar_sdk import InvalidInputError, QueryBudgetExceeded
from bar_sdk.adapters.remote import RemoteModel, RetryPolicy
from bar_sdk.attacks import HopSkipJump, NESAttack, RayS, SimBA, SquareAttack, UniversalPerturbation, ZOOAttack

MODEL = softmax_digits()
X, Y = held_out(6, MODEL)

# name -> (build(model, rng_draw), decision-based, bounded: every query stays near its own image)
ATTACKS = {
    "square-linf": (lambda m, d: SquareAttack(m, eps=0.1, p_init=d(st.sampled_from([0.05, 0.3]))), False, True),
    "square-l2": (lambda m, d: SquareAttack(m, norm="l2", eps=0.8), False, True),
    "simba": (lambda m, d: SimBA(m, basis=d(st.sampled_from(["dct", "pixel"])), eps=0.8), False, True),
    "nes": (
        lambda m, d: NESAttack(
            m, eps=0.1, n_directions=d(st.integers(1, 6)), estimator=d(st.sampled_from(["antithetic", "one_sided"]))
        ),
        False,
        True,
    ),
    "zoo": (lambda m, d: ZOOAttack(m, n_coords=d(st.integers(1, 8)), lr=0.05), False, False),
    "hopskipjump": (
        lambda m, d: HopSkipJump(
            m,
            norm=d(st.sampled_from(["l2", "linf"])),
            init_num_evals=d(st.integers(1, 12)),
            init_trials=d(st.integers(1, 20)),
        ),
        True,
        False,
    ),
    "rays": (lambda m, d: RayS(m, eps=0.1), True, False),
}


class Recorder:
    """The model, with every batch it was asked about kept (the independent count)."""

    def __init__(self, model):
        self.model = model
        self.n_classes, self.input_shape = model.n_classes, model.input_shape
        self.batches = []

    def predict_proba(self, x):
        self.batches.append(np.array(x, copy=True))
        return self.model.predict_proba(x)

    @property
    def seen(self):
        return sum(len(b) for b in self.batches)


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(ATTACKS)),
    n=st.integers(1, 6),
    max_queries=st.integers(1, 80),
    total=st.one_of(st.none(), st.integers(1, 300)),
    batch_size=st.one_of(st.none(), st.integers(1, 25)),
    targeted=st.booleans(),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_attack_budgets_hold_and_counts_equal_an_independent_count(
    name, n, max_queries, total, batch_size, targeted, seed, data
):
    build, decision, bounded = ATTACKS[name]
    recorder = Recorder(MODEL)
    attack = build(LabelOnly(recorder) if decision else recorder, data.draw)
    attack.set_params(max_queries=max_queries, max_total_queries=total, batch_size=batch_size, random_state=seed)
    x, y = X[:n], Y[:n]
    target = (y + 1 + np.arange(n) % 9) % 10 if targeted else None
    if total is not None and total < n:
        try:
            attack.run(x, y, target)
        except InvalidInputError as err:
            assert "max_total_queries" in str(err) and recorder.seen == 0
            return
        raise AssertionError("a total budget below one query per image was accepted")
    result = attack.run(x, y, target)
    # the budgets
    assert result.queries.min() >= 1 and result.queries.max() <= max_queries
    assert total is None or recorder.seen <= total
    assert batch_size is None or max(len(b) for b in recorder.batches) <= batch_size
    # the counts reported are the counts seen by the model
    assert result.total_queries == int(result.queries.sum()) == recorder.seen
    if bounded:
        # each image sent lies near the image it was sent for: count them per sample, independently
        rows = np.concatenate(recorder.batches).reshape(recorder.seen, -1)
        owner = np.argmin(((rows[:, None, :] - x.reshape(n, 1, -1)[None, :, 0]) ** 2).sum(-1), axis=1)
        np.testing.assert_array_equal(np.bincount(owner, minlength=n), result.queries)
    record("budget_attacks", cases=1, queries=recorder.seen)


@settings(max_examples=examples(10), deadline=None)
@given(
    max_queries=st.integers(1, 400),
    batch_images=st.integers(1, 6),
    n=st.integers(1, 6),
    total=st.one_of(st.none(), st.integers(1, 500)),
    seed=st.integers(0, 1000),
)
def test_universal_perturbation_budgets_hold(max_queries, batch_images, n, total, seed):
    recorder = Recorder(MODEL)
    attack = UniversalPerturbation(
        recorder,
        eps=0.1,
        max_queries=max_queries,
        n_directions=2,
        batch_images=batch_images,
        max_total_queries=total,
        random_state=seed,
    )
    try:
        result = attack.run(X[:n], Y[:n])
    except InvalidInputError as err:  # a budget that leaves nothing for training or evaluation
        assert "max_queries" in str(err) or "max_total_queries" in str(err)
        assert recorder.seen == 0
        return
    assert attack.fit_queries_ <= max_queries and result.queries.max() <= 2
    assert result.total_queries == recorder.seen == attack.fit_queries_ + int(result.queries.sum())
    assert total is None or recorder.seen <= total
    assert result.status != "total_budget_exhausted"  # training left the evaluation its queries
    record("budget_attacks", cases=1, queries=recorder.seen)


def test_universal_perturbation_refuses_a_total_budget_it_cannot_finish_before_any_query():
    recorder = Recorder(MODEL)
    attack = UniversalPerturbation(
        recorder, eps=0.1, max_queries=4, n_directions=2, batch_images=1, max_total_queries=4
    )
    with pytest.raises(InvalidInputError, match="max_total_queries"):
        attack.run(X[:1], Y[:1])
    assert recorder.seen == 0


# -- RemoteModel: the paid budget ------------------------------------------------------------------


def _wire():
    sent = []

    def handler(request):
        import json

        inputs = json.loads(request.content)["inputs"]
        sent.append(len(inputs))
        concepts = [{"name": "a", "value": 0.25}, {"name": "b", "value": 0.75}]
        return httpx.Response(
            200, json={"status": {"code": 10000}, "outputs": [{"data": {"concepts": concepts}} for _ in inputs]}
        )

    return sent, handler


@settings(max_examples=examples(40), deadline=None)
@given(
    max_queries=st.integers(1, 60),
    per_request=st.integers(1, 8),
    concurrency=st.integers(1, 4),
    calls=st.lists(st.lists(st.integers(0, 40), min_size=1, max_size=12), min_size=1, max_size=8),
)
def test_remote_budget_holds_and_billed_equals_the_images_on_the_wire(max_queries, per_request, concurrency, calls):
    sent, handler = _wire()
    pool = np.random.default_rng(0).random((41, 1, 4, 4)).astype(np.float32)
    seen_images = set()
    with RemoteModel.from_preset(
        "clarifai",
        base_url="https://api.example.com",
        api_key="k",
        model_id="m",
        labels=["a", "b"],
        input_shape=(1, 4, 4),
        max_queries=max_queries,
        batch_size=per_request,
        max_concurrency=concurrency,
        retry=RetryPolicy(jitter=0),
        client=httpx.Client(transport=httpx.MockTransport(handler)),
    ) as model:
        for ids in calls:
            new = set(ids) - seen_images
            before = sum(sent)
            try:
                model.predict_proba(pool[ids])
            except QueryBudgetExceeded:
                # refused whole: nothing left, and only because the new images did not fit
                assert sum(sent) == before and len(new) > max_queries - model.ledger.billed
                continue
            seen_images |= new
            assert sum(sent) - before == len(new)  # each new image sent once, repeats from the cache
        assert model.ledger.billed == sum(sent) == len(seen_images) <= max_queries
        assert model.ledger.in_flight == 0
        assert max(sent, default=0) <= per_request
    record("budget_remote", cases=1, queries=sum(sent))
