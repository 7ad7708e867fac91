"""Input validation, one table over every public entry point.

Each row is a bad call: a wrong shape, dtype, NaN, empty data, a single class, an unknown
parameter name or a wrong type. Expected: the documented error (InvalidInputError /
InvalidModelError from bar_sdk.errors; Python's own TypeError for an unknown keyword in a
constructor; scikit-learn's ValueError from ``set_params``), a message that names the
parameter, and not a single query spent. Rows already covered by the per-module tables
(tests/core/test_reprogram.py, test_attacks_driver.py, test_adapters.py, test_audit.py,
test_transfer_*.py) are not repeated here.
"""

import re

import httpx
import numpy as np
import pytest
from _attack_models import CountedSoftmax as Counted, held_out, softmax_digits
from _extras import requires
from _models import fresh_linear
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from bar_sdk import BARClassifier, InvalidInputError, InvalidModelError, MeteredModel, QueryLedger
from bar_sdk.adapters import CallableModel, LabelOnly, Rounded, SklearnModel, TopK
from bar_sdk.adapters.remote import RemoteModel, RetryPolicy, register_preset
from bar_sdk.adapters.server import Faults, create_app
from bar_sdk.attacks import (
    ATTACKS,
    FGSM,
    MIFGSM,
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
from bar_sdk.audit import audit
from bar_sdk.transfer import (
    EnsembleModel,
    LocalTransferClassifier,
    compare,
    evaluate_program,
    transfer_matrix,
    warm_start_study,
)
from bar_sdk.zo import SGD

_cancer = load_breast_cancer()
X, Y = _cancer.data[:40], _cancer.target[:40]
_digits = softmax_digits()
XA, YA = held_out(4, _digits)
NO_NETWORK = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(500)))


def remote(**kw):
    options = dict(
        base_url="https://api.example.com",
        api_key="k",
        model_id="m",
        labels=["a", "b"],
        input_shape=(1, 4, 4),
        client=NO_NETWORK,
    )
    options.update(kw)
    return RemoteModel.from_preset(options.pop("preset", "clarifai"), **options)


def bar(model, **kw):
    return BARClassifier(model, **{"max_queries": 500, "random_state": 0, **kw})


def fitted(model):
    """A classifier fitted on ``model``, whose count then starts again from zero."""
    clf = bar(model, max_queries=300).fit(X, Y)
    model.seen = 0
    return clf


# (id, call(model), expected error, the parameter the message must name)
# `model` counts images: fresh_linear() for BARClassifier rows, Counted() for the rest.
CASES = [
    # -- BARClassifier: parameters (fit validates them all before the first query)
    ("bar-unknown-keyword", lambda m: BARClassifier(m, bogus=1), TypeError, "bogus"),
    ("bar-set_params-unknown", lambda m: bar(m).set_params(bogus=1), ValueError, "bogus"),
    ("bar-program", lambda m: bar(m, program="frame").fit(X, Y), InvalidInputError, "program"),
    ("bar-parameterization", lambda m: bar(m, parameterization=1).fit(X, Y), InvalidInputError, "parameterization"),
    ("bar-grid_size-float", lambda m: bar(m, grid_size=2.5).fit(X, Y), InvalidInputError, "grid_size"),
    ("bar-rank-zero", lambda m: bar(m, parameterization="lowrank", rank=0).fit(X, Y), InvalidInputError, "rank"),
    (
        "bar-program_strength",
        lambda m: bar(m, program="full", program_strength=0.0).fit(X, Y),
        InvalidInputError,
        "program_strength",
    ),
    ("bar-mapping", lambda m: bar(m, mapping="best").fit(X, Y), InvalidInputError, "mapping"),
    ("bar-loss", lambda m: bar(m, loss="hinge").fit(X, Y), InvalidInputError, "loss"),
    ("bar-gamma-negative", lambda m: bar(m, gamma=-1.0).fit(X, Y), InvalidInputError, "gamma"),
    ("bar-optimizer-type", lambda m: bar(m, optimizer=3).fit(X, Y), InvalidInputError, "optimizer"),
    ("bar-n_directions", lambda m: bar(m, n_directions=0).fit(X, Y), InvalidInputError, "n_directions"),
    ("bar-smoothing", lambda m: bar(m, smoothing=0.0).fit(X, Y), InvalidInputError, "smoothing"),
    ("bar-lr_decay", lambda m: bar(m, lr_decay=0.0).fit(X, Y), InvalidInputError, "lr_decay"),
    ("bar-init_scale", lambda m: bar(m, init_scale=-1.0).fit(X, Y), InvalidInputError, "init_scale"),
    ("bar-weight_decay-negative", lambda m: bar(m, weight_decay=-0.1).fit(X, Y), InvalidInputError, "weight_decay"),
    ("bar-weight_decay-nan", lambda m: bar(m, weight_decay=float("nan")).fit(X, Y), InvalidInputError, "weight_decay"),
    (
        "bar-weight_decay-overshoots",
        lambda m: bar(m, learning_rate=0.5, weight_decay=2.0).fit(X, Y),
        InvalidInputError,
        "weight_decay",
    ),
    (
        "bar-weight_decay-with-instance",
        lambda m: bar(m, optimizer=SGD(), weight_decay=0.1).fit(X, Y),
        InvalidInputError,
        "weight_decay",
    ),
    ("bar-random_state-str", lambda m: BARClassifier(m, random_state="a").fit(X, Y), InvalidInputError, "random_state"),
    ("bar-checkpoint-type", lambda m: bar(m, checkpoint=3).fit(X, Y), InvalidInputError, "checkpoint"),
    ("bar-prior_weight", lambda m: bar(m, prior_weight=2.0).fit(X, Y), InvalidInputError, "prior_weight"),
    ("bar-max_epochs", lambda m: bar(m, max_epochs=0).fit(X, Y), InvalidInputError, "max_epochs"),
    ("bar-batch_size-bool", lambda m: bar(m, batch_size=True).fit(X, Y), InvalidInputError, "batch_size"),
    ("bar-max_queries-str", lambda m: BARClassifier(m, max_queries="100").fit(X, Y), InvalidInputError, "max_queries"),
    ("bar-target_size-type", lambda m: bar(m, target_size="big").fit(X, Y), InvalidInputError, "target_size"),
    ("bar-model", lambda m: BARClassifier(object()).fit(X, Y), InvalidModelError, "model"),
    ("bar-surrogate", lambda m: bar(m, surrogate=object()).fit(X, Y), InvalidModelError, "surrogate"),
    (
        "bar-initial_program-type",
        lambda m: bar(m, initial_program="warm").fit(X, Y),
        InvalidInputError,
        "initial_program",
    ),
    ("bar-verbose-type", lambda m: bar(m, verbose="yes").fit(X, Y), InvalidInputError, "verbose"),
    # -- BARClassifier: data
    ("bar-X-empty", lambda m: bar(m).fit(X[:0], Y[:0]), InvalidInputError, "X"),
    ("bar-X-one-dimensional", lambda m: bar(m).fit(X[:, 0], Y), InvalidInputError, "X"),
    ("bar-X-strings", lambda m: bar(m).fit(X.astype(str), Y), InvalidInputError, "X"),
    ("bar-X-object", lambda m: bar(m).fit(np.full(X.shape, None, dtype=object), Y), InvalidInputError, "X"),
    ("bar-X-NaN-features", lambda m: bar(m).fit(np.where(X > 100, np.nan, X), Y), InvalidInputError, "X"),
    ("bar-X-None", lambda m: bar(m).fit(None, Y), InvalidInputError, "X"),
    ("bar-y-mixed", lambda m: bar(m).fit(X, np.array(["a", 1] * 20, dtype=object)), InvalidInputError, "y"),
    ("bar-y-continuous", lambda m: bar(m).fit(X, Y + 0.5), InvalidInputError, "y"),
    ("bar-y-two-columns", lambda m: bar(m).fit(X, np.stack([Y, Y], 1)), InvalidInputError, "y"),
    ("bar-y-NaN", lambda m: bar(m).fit(X, np.where(Y == 0, np.nan, Y)), InvalidInputError, "y"),
    ("bar-y-None", lambda m: bar(m).fit(X, None), InvalidInputError, "y"),
    ("bar-one-sample-one-class", lambda m: bar(m).fit(X[:1], Y[:1]), InvalidInputError, "y"),
    # -- BARClassifier: after fit (these query nothing either)
    ("bar-predict-features", lambda m: fitted(m).predict(X[:, :5]), InvalidInputError, "X"),
    ("bar-predict-NaN", lambda m: fitted(m).predict(np.full_like(X, np.nan)), InvalidInputError, "X"),
    ("bar-predict-empty", lambda m: fitted(m).predict(X[:0]), InvalidInputError, "X"),
    ("bar-predict-strings", lambda m: fitted(m).predict_proba(X.astype(str)), InvalidInputError, "X"),
    # -- attacks: a bad value of each attack's own parameters
    ("square-loss", lambda m: SquareAttack(m, loss="hinge").run(XA, YA), InvalidInputError, "loss"),
    ("square-batch_size", lambda m: SquareAttack(m, batch_size=0).run(XA, YA), InvalidInputError, "batch_size"),
    ("simba-basis", lambda m: SimBA(m, basis="wavelet").run(XA, YA), InvalidInputError, "basis"),
    ("simba-freq_dims", lambda m: SimBA(m, freq_dims=0).run(XA, YA), InvalidInputError, "freq_dims"),
    ("simba-stride", lambda m: SimBA(m, stride=0).run(XA, YA), InvalidInputError, "stride"),
    ("nes-estimator", lambda m: NESAttack(m, estimator="magic").run(XA, YA), InvalidInputError, "estimator"),
    ("nes-optimizer", lambda m: NESAttack(m, optimizer="magic").run(XA, YA), InvalidInputError, "optimizer"),
    ("nes-lr_decay", lambda m: NESAttack(m, lr_decay=2.0).run(XA, YA), InvalidInputError, "lr_decay"),
    ("zoo-n_coords", lambda m: ZOOAttack(m, n_coords=0).run(XA, YA), InvalidInputError, "n_coords"),
    ("zoo-resize", lambda m: ZOOAttack(m, resize=0).run(XA, YA), InvalidInputError, "resize"),
    ("hopskipjump-gamma", lambda m: HopSkipJump(m, gamma=0).run(XA, YA), InvalidInputError, "gamma"),
    (
        "hopskipjump-init_num_evals",
        lambda m: HopSkipJump(m, init_num_evals=0).run(XA, YA),
        InvalidInputError,
        "init_num_evals",
    ),
    ("hopskipjump-init_trials", lambda m: HopSkipJump(m, init_trials=0).run(XA, YA), InvalidInputError, "init_trials"),
    ("rays-tol", lambda m: RayS(m, tol=-1.0).run(XA, YA), InvalidInputError, "tol"),
    ("rays-norm", lambda m: RayS(m, norm="l2").run(XA, YA), InvalidInputError, "norm"),
    (
        "universal-batch_images",
        lambda m: UniversalPerturbation(m, batch_images=0).run(XA, YA),
        InvalidInputError,
        "batch_images",
    ),
    (
        "universal-resolution",
        lambda m: UniversalPerturbation(m, resolution=0).run(XA, YA),
        InvalidInputError,
        "resolution",
    ),
    ("pgd-steps", lambda m: PGD(m, steps=0).run(XA, YA), InvalidInputError, "steps"),
    ("pgd-step_size", lambda m: PGD(m, step_size=-1.0).run(XA, YA), InvalidInputError, "step_size"),
    ("fgsm-loss", lambda m: FGSM(m, loss="hinge").run(XA, YA), InvalidInputError, "loss"),
    (
        "cw-binary_search_steps",
        lambda m: CarliniWagner(m, binary_search_steps=0).run(XA, YA),
        InvalidInputError,
        "binary_search_steps",
    ),
    ("cw-initial_const", lambda m: CarliniWagner(m, initial_const=0).run(XA, YA), InvalidInputError, "initial_const"),
    ("mifgsm-momentum", lambda m: MIFGSM(m, momentum=-1.0).run(XA, YA), InvalidInputError, "momentum"),
    ("mifgsm-diversity_prob", lambda m: MIFGSM(m, diversity_prob=2.0).run(XA, YA), InvalidInputError, "diversity_prob"),
    # -- audit
    ("audit-eps-empty", lambda m: audit(m, XA, YA, eps=[]), InvalidInputError, "eps"),
    ("audit-eps-strings", lambda m: audit(m, XA, YA, eps=["a"]), InvalidInputError, "eps"),
    ("audit-eps-NaN", lambda m: audit(m, XA, YA, eps=[float("nan")]), InvalidInputError, "eps"),
    ("audit-norm", lambda m: audit(m, XA, YA, norm="l3"), InvalidInputError, "norm"),
    ("audit-n_examples", lambda m: audit(m, XA, YA, n_examples=-1), InvalidInputError, "n_examples"),
    ("audit-random_state", lambda m: audit(m, XA, YA, random_state="a"), InvalidInputError, "random_state"),
    ("audit-x-NaN", lambda m: audit(m, np.full_like(XA, np.nan), YA), InvalidInputError, "x"),
    ("audit-y-shape", lambda m: audit(m, XA, YA[:2]), InvalidInputError, "y"),
    ("audit-model", lambda m: audit(None, XA, YA), InvalidModelError, "model"),
    ("audit-unknown-keyword", lambda m: audit(m, XA, YA, epsilon=[0.1]), TypeError, "epsilon"),
    # -- transfer
    (
        "transfer_matrix-sources-type",
        lambda m: transfer_matrix([m], {"m": m}, {"f": FGSM(None)}, XA, YA),
        InvalidInputError,
        "sources",
    ),
    (
        "transfer_matrix-attacks-type",
        lambda m: transfer_matrix({"m": m}, {"m": m}, {"f": 3}, XA, YA),
        InvalidInputError,
        "attacks",
    ),
    (
        "transfer_matrix-x-NaN",
        lambda m: transfer_matrix({"m": m}, {"m": m}, {"f": FGSM(None)}, np.full_like(XA, np.nan), YA),
        InvalidInputError,
        "x",
    ),
    (
        "transfer_matrix-y-shape",
        lambda m: transfer_matrix({"m": m}, {"m": m}, {"f": FGSM(None)}, XA, YA[:2]),
        InvalidInputError,
        "y",
    ),
    (
        "transfer_matrix-max_target_queries",
        lambda m: transfer_matrix({"m": m}, {"m": m}, {"f": FGSM(None)}, XA, YA, max_target_queries=0),
        InvalidInputError,
        "max_target_queries",
    ),
    (
        "transfer_matrix-out_dir-type",
        lambda m: transfer_matrix({"m": m}, {"m": m}, {"f": FGSM(None)}, XA, YA, out_dir=3),
        InvalidInputError,
        "out_dir",
    ),
    ("evaluate_program-models-type", lambda m: evaluate_program(fitted(m), [m], X, Y), InvalidInputError, "models"),
    (
        "evaluate_program-y_test-shape",
        lambda m: evaluate_program(fitted(m), {"m": m}, X, Y[:3]),
        InvalidInputError,
        "y_test",
    ),
    (
        "evaluate_program-labels_per_class",
        lambda m: evaluate_program(fitted(m), {"m": m}, X, Y, labels_per_class=0),
        InvalidInputError,
        "labels_per_class",
    ),
    (
        "warm_start_study-budgets",
        lambda m: warm_start_study(m, Counted(), X, Y, X, Y, budgets=[0]),
        InvalidInputError,
        "budgets",
    ),
    (
        "warm_start_study-strategies",
        lambda m: warm_start_study(m, Counted(), X, Y, X, Y, budgets=[500], strategies=["hot"]),
        InvalidInputError,
        "strategies",
    ),
    (
        "warm_start_study-seeds",
        lambda m: warm_start_study(m, Counted(), X, Y, X, Y, budgets=[500], seeds=["a"]),
        InvalidInputError,
        "seeds",
    ),
    (
        "warm_start_study-surrogate",
        lambda m: warm_start_study(m, object(), X, Y, X, Y, budgets=[500]),
        InvalidModelError,
        "surrogate",
    ),
    ("compare-nothing", lambda m: compare(X, Y, X, Y), InvalidInputError, "model"),
    ("compare-max_queries", lambda m: compare(X, Y, X, Y, model=m, max_queries=0), InvalidInputError, "max_queries"),
    ("compare-methods-type", lambda m: compare(X, Y, X, Y, model=m, methods={"x": 3}), InvalidInputError, "methods"),
    ("compare-X-NaN", lambda m: compare(np.full_like(X, np.nan), Y, X, Y, model=m), InvalidInputError, "X"),
    ("compare-bar_params-unknown", lambda m: compare(X, Y, X, Y, model=m, bar_params={"bogus": 1}), TypeError, "bogus"),
    ("ensemble-weights", lambda m: EnsembleModel([m, m], weights=[1.0]), InvalidInputError, "weights"),
    ("ensemble-models-type", lambda m: EnsembleModel(m), InvalidInputError, "models"),
    ("local_transfer-mode", lambda m: LocalTransferClassifier(m, mode="distil").fit(X, Y), InvalidInputError, "mode"),
    ("local_transfer-epochs", lambda m: LocalTransferClassifier(m, epochs=0).fit(X, Y), InvalidInputError, "epochs"),
    # -- RemoteModel
    ("remote-labels-one", lambda m: remote(labels=["a"]), InvalidInputError, "labels"),
    ("remote-labels-type", lambda m: remote(labels=[1, 2]), InvalidInputError, "labels"),
    ("remote-input_shape", lambda m: remote(input_shape=(2, 4, 4)), InvalidInputError, "input_shape"),
    ("remote-input_shape-type", lambda m: remote(input_shape="abc"), InvalidInputError, "input_shape"),
    ("remote-base_url-type", lambda m: remote(base_url=3), InvalidInputError, "base_url"),
    ("remote-base_url-query", lambda m: remote(base_url="https://h/?key=1"), InvalidInputError, "base_url"),
    ("remote-base_url-credentials", lambda m: remote(base_url="https://user:pw@h"), InvalidInputError, "base_url"),
    ("remote-max_queries", lambda m: remote(max_queries=0), InvalidInputError, "max_queries"),
    ("remote-price_per_query", lambda m: remote(price_per_query=-1.0), InvalidInputError, "price_per_query"),
    ("remote-rate_limit", lambda m: remote(rate_limit=-1.0), InvalidInputError, "rate_limit"),
    ("remote-burst", lambda m: remote(rate_limit=1.0, burst=0), InvalidInputError, "burst"),
    ("remote-max_concurrency", lambda m: remote(max_concurrency=0), InvalidInputError, "max_concurrency"),
    ("remote-timeout-None", lambda m: remote(timeout=None), InvalidInputError, "timeout"),
    ("remote-retry-type", lambda m: remote(retry="twice"), InvalidInputError, "retry"),
    ("remote-image_format", lambda m: remote(image_format="gif"), InvalidInputError, "image_format"),
    ("remote-jpeg_quality", lambda m: remote(image_format="jpeg", jpeg_quality=0), InvalidInputError, "jpeg_quality"),
    ("remote-missing_score", lambda m: remote(missing_score=2.0), InvalidInputError, "missing_score"),
    ("remote-label_aliases", lambda m: remote(label_aliases={"x": "zzz"}), InvalidInputError, "label_aliases"),
    ("remote-preset", lambda m: remote(preset="nope"), InvalidInputError, "preset"),
    ("remote-unknown-option", lambda m: remote(bogus=1), InvalidInputError, "bogus"),
    ("remote-api_key-type", lambda m: remote(api_key=3), InvalidInputError, "api_key"),
    ("remote-cache_dir-type", lambda m: remote(cache_dir=3), InvalidInputError, "cache_dir"),
    ("remote-use_cache-str", lambda m: remote(use_cache="no"), InvalidInputError, "use_cache"),
    ("remote-label_only-str", lambda m: remote(label_only="false"), InvalidInputError, "label_only"),
    (
        "remote-allow_insecure-str",
        lambda m: remote(base_url="http://h", allow_insecure="no"),
        InvalidInputError,
        "allow_insecure",
    ),
    ("remote-select_concepts-int", lambda m: remote(select_concepts=1), InvalidInputError, "select_concepts"),
    ("remote-predict-NaN", lambda m: remote().predict_proba(np.full((1, 1, 4, 4), np.nan)), InvalidInputError, "x"),
    ("remote-predict-shape", lambda m: remote().predict_proba(np.zeros((1, 1, 5, 5))), InvalidInputError, "x"),
    ("remote-predict-empty", lambda m: remote().predict_proba(np.zeros((0, 1, 4, 4))), InvalidInputError, "x"),
    ("retry-max_attempts", lambda m: RetryPolicy(max_attempts=0), InvalidInputError, "max_attempts"),
    ("retry-jitter", lambda m: RetryPolicy(jitter=-1.0), InvalidInputError, "jitter"),
    ("retry-random_state", lambda m: RetryPolicy(random_state="a"), InvalidInputError, "random_state"),
    ("register_preset-name", lambda m: register_preset("not a name", object), InvalidInputError, "name"),
    # -- model adapters and the ledger
    ("callable-fn", lambda m: CallableModel(3, 2, (1, 4, 4)), InvalidInputError, "fn"),
    ("callable-n_classes", lambda m: CallableModel(len, 1, (1, 4, 4)), InvalidInputError, "n_classes"),
    ("callable-input_shape", lambda m: CallableModel(len, 2, (4, 4)), InvalidInputError, "input_shape"),
    (
        "callable-predict-NaN",
        lambda m: CallableModel(len, 2, (1, 4, 4)).predict_proba(np.full((1, 1, 4, 4), np.nan)),
        InvalidInputError,
        "x",
    ),
    ("sklearn-unfitted", lambda m: SklearnModel(LogisticRegression(), (1, 8, 8)), InvalidInputError, "estimator"),
    (
        "sklearn-input_shape",
        lambda m: SklearnModel(LogisticRegression().fit(XA.reshape(4, -1), [0, 1, 0, 1]), (1, 4, 4)),
        InvalidInputError,
        "input_shape",
    ),
    ("topk-k-float", lambda m: TopK(m, 2.0), InvalidInputError, "k"),
    ("topk-model", lambda m: TopK(object(), 2), InvalidModelError, "model"),
    ("rounded-decimals", lambda m: Rounded(m, -1), InvalidInputError, "decimals"),
    ("labelonly-model", lambda m: LabelOnly(None), InvalidModelError, "model"),
    ("ledger-max_queries", lambda m: QueryLedger(0), InvalidInputError, "max_queries"),
    ("metered-batch_size", lambda m: MeteredModel(m, batch_size=0), InvalidInputError, "batch_size"),
    ("metered-predict-shape", lambda m: MeteredModel(m).predict_proba(np.zeros((1, 1, 5, 5))), InvalidInputError, "x"),
    ("faults-rate", lambda m: Faults(rate_500=2.0), InvalidInputError, "rate_500"),
    ("faults-sum", lambda m: Faults(rate_429=0.6, rate_500=0.6), InvalidInputError, "rates"),
    ("server-top_k", lambda m: create_app(m, top_k=0), InvalidInputError, "top_k"),
]

# The data the attacks' shared checks refuse, on every attack of the registry (bar_sdk.attacks.ATTACKS):
# registering an attack gives it these rows. (what, call(attack class, model), expected error, parameter)
ATTACK_DATA = [
    ("x-NaN", lambda cls, m: cls(m).run(np.full_like(XA, np.nan), YA), InvalidInputError, "x"),
    ("x-empty", lambda cls, m: cls(m).run(XA[:0], YA[:0]), InvalidInputError, "x"),
    ("x-strings", lambda cls, m: cls(m).run(XA.astype(str), YA), InvalidInputError, "x"),
    ("y-None", lambda cls, m: cls(m).run(XA, None), InvalidInputError, "y"),
    ("y-negative", lambda cls, m: cls(m).run(XA, -YA - 1), InvalidInputError, "y"),
    ("target-shape", lambda cls, m: cls(m).run(XA, YA, target=YA[:2]), InvalidInputError, "target"),
    ("model", lambda cls, m: cls(None).run(XA, YA), InvalidModelError, "model"),
    ("unknown-keyword", lambda cls, m: cls(m, epsilon=0.1), TypeError, "epsilon"),
]
REGISTERED_ATTACK_CASES = [
    (f"{short}-{what}", lambda m, cls=cls, call=call: call(cls, m), error, name)
    for short, cls in ATTACKS.items()
    for what, call, error, name in ATTACK_DATA
]


@pytest.mark.parametrize(
    "ident,call,error,name",
    [
        pytest.param(*case, marks=requires("server")) if case[0].startswith("server-") else case
        for case in CASES + REGISTERED_ATTACK_CASES
    ],
    ids=[case[0] for case in CASES + REGISTERED_ATTACK_CASES],
)
def test_bad_input_gets_the_documented_error_naming_the_parameter(ident, call, error, name):
    model = fresh_linear() if ident.startswith("bar-") else Counted()
    with pytest.raises(error) as info:
        call(model)
    assert re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", str(info.value)), str(info.value)
    assert model.seen == 0


def test_the_table_covers_every_public_entry_point():
    import bar_sdk.adapters
    import bar_sdk.attacks

    covered = " ".join(c[0] for c in CASES)  # the rows written by hand, not those the registry adds
    for short in bar_sdk.attacks.ATTACKS:  # a registered attack must have rows of its own parameters here
        assert f"{short}-" in covered, short
    for function in ("transfer_matrix", "evaluate_program", "warm_start_study", "compare"):
        assert f"{function}-" in covered, function
    for adapter in ("callable", "sklearn", "topk", "rounded", "labelonly", "remote"):
        assert f"{adapter}-" in covered, adapter
    assert {
        "TorchModel",
        "OnnxModel",
        "CallableModel",
        "SklearnModel",
        "TopK",
        "Rounded",
        "LabelOnly",
        "RemoteModel",
    } == set(bar_sdk.adapters.__all__)  # TorchModel's own table: test_adapters.py; OnnxModel's: test_onnx.py
