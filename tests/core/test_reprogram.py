"""BARClassifier: scikit-learn conformance, exact query counts, budgets, determinism, resume."""

import os

import numpy as np
import pytest
from _extras import reason
from _models import cancer_split, digits16, fresh_linear
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from bar_sdk import (
    BARClassifier,
    CheckpointError,
    InvalidInputError,
    ModelOutputError,
    QuantizationWarning,
    QueryBudgetExceeded,
)
from bar_sdk.adapters import LabelOnly, TopK
from bar_sdk.mapping import LogisticReadout, choose_readout_C
from bar_sdk.transfer import program_scores
from bar_sdk.zo import ESTIMATORS


@pytest.fixture(scope="module")
def cancer():
    return cancer_split()


def small(model, **kw):
    kw.setdefault("max_queries", 4000)
    kw.setdefault("random_state", 0)
    return BARClassifier(model, **kw)


# --------------------------------------------------------------------------- end to end
def test_reprograms_digits_model_for_breast_cancer_well_above_chance(cancer):
    Xa, Xb, ya, yb = cancer
    clf = BARClassifier(fresh_linear(), max_queries=20_000, random_state=0).fit(Xa, ya)
    majority = max(np.mean(yb), 1 - np.mean(yb))
    assert clf.score(Xb, yb) > majority + 0.15
    # the steps, then the default logistic readout's pass over the training data
    assert clf.history_["queries"][-1] + clf.ledger_.by_purpose["readout"] == clf.queries_ <= 20_000
    assert clf.ledger_.by_purpose["readout"] == len(ya)


def test_reprograms_torch_cnn_for_image_task():
    """A real CNN, queried only through predict_proba, learns a new image task (digit parity)."""
    pytest.importorskip("torch", reason=reason("torch"))
    from bar_sdk.adapters import TorchModel
    from bar_sdk.adapters.nets import SmallCNN, train_classifier

    x, y = digits16()
    # source: a CNN trained on digits 0-4 only, re-purposed to tell 5-9 apart as 3 classes
    src = y < 5
    net = train_classifier(SmallCNN(1, 5, 16), x[src], y[src], epochs=4, random_state=0)
    model = TorchModel(net, (1, 16, 16))
    tgt = np.isin(y, [5, 6, 7])
    xt, yt = x[tgt][:, :, 2:14, 2:14], y[tgt] - 5  # 12x12 targets inside the 16x16 frame
    xa, xb, ya, yb = train_test_split(xt, yt, test_size=0.4, random_state=0, stratify=yt)
    clf = BARClassifier(model, max_queries=30_000, labels_per_class=1, random_state=0).fit(xa, ya)
    assert clf.score(xb, yb) > 0.55  # chance is 1/3


def test_white_box_and_top_k_models(cancer):
    Xa, Xb, ya, yb = cancer
    wb = small(fresh_linear(), estimator="exact", max_queries=4000).fit(Xa, ya)
    assert wb.score(Xb, yb) > 0.8
    top1 = small(TopK(fresh_linear(), k=1), max_queries=8000).fit(Xa, ya)
    assert top1.score(Xb, yb) > 0.75


# --------------------------------------------------------------------------- scikit-learn
def test_sklearn_conformance(cancer):
    Xa, Xb, ya, yb = cancer
    clf = small(fresh_linear(), batch_size=7)
    assert clone(clf).get_params()["batch_size"] == 7
    with pytest.raises(NotFittedError):
        clf.predict(Xb)
    assert clf.set_params(grid_size=4) is clf and clf.grid_size == 4
    assert clf.fit(Xa, ya) is clf
    proba = clf.predict_proba(Xb)
    assert proba.shape == (len(Xb), 2)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_array_equal(clf.predict(Xb), proba.argmax(1))
    assert clf.n_features_in_ == 30 and list(clf.classes_) == [0, 1]


def test_pipeline_and_grid_search(cancer):
    Xa, _, ya, _ = cancer
    pipe = Pipeline([("scale", StandardScaler()), ("bar", small(fresh_linear(), max_queries=3000))])
    search = GridSearchCV(pipe, {"bar__grid_size": [2, 4]}, cv=2).fit(Xa, ya)
    assert search.best_params_["bar__grid_size"] in (2, 4)
    assert search.best_score_ > 0.7  # standardised (negative) features are accepted and scaled


# --------------------------------------------------------------------------- queries and budget
@pytest.mark.parametrize("budget", [1000, 1234, 2999])
@pytest.mark.parametrize("estimator", [*ESTIMATORS, "exact"])  # every registered estimator
@pytest.mark.parametrize("readout", ["mapping", "logistic"])
def test_queries_match_an_independent_count_and_never_exceed_budget(cancer, budget, estimator, readout):
    Xa, Xb, ya, _ = cancer
    model = fresh_linear()
    clf = small(model, max_queries=budget, estimator=estimator, batch_size=9, readout=readout).fit(Xa, ya)
    assert clf.queries_ == model.seen <= budget
    assert clf.ledger_.by_purpose["mapping"] == len(ya)
    # the readout pass, paid within the budget
    assert clf.ledger_.by_purpose.get("readout", 0) == (len(ya) if readout == "logistic" else 0)
    step = clf.history_["queries"][1] - clf.history_["queries"][0]
    assert budget - clf.queries_ < step  # it stopped only when the next step would not fit
    clf.predict(Xb)  # prediction after fit is counted but not bounded by fit's budget
    assert clf.ledger_.queries == model.seen == clf.queries_ + len(Xb)
    assert clf.ledger_.by_purpose["predict"] == len(Xb)


def test_budget_too_small_for_one_step_spends_nothing(cancer):
    Xa, _, ya, _ = cancer
    model = fresh_linear()
    with pytest.raises(InvalidInputError, match=r"max_queries=450 is too small for one step"):
        small(model, max_queries=450).fit(Xa, ya)
    assert model.seen == 0


def test_model_budget_running_out_keeps_the_program(cancer):
    Xa, Xb, ya, yb = cancer
    model = fresh_linear()

    class Capped:
        n_classes, input_shape = model.n_classes, model.input_shape

        def __init__(self):
            self.cap = 2500

        def predict_proba(self, x):
            if model.seen + len(x) > self.cap:
                raise QueryBudgetExceeded(len(x), model.seen, self.cap)
            return model.predict_proba(x)

    capped = Capped()
    clf = small(capped, max_queries=10_000)
    with pytest.raises(QueryBudgetExceeded):
        clf.fit(Xa, ya)
    assert clf.n_steps_ > 0 and clf.program_.shape == (1, 16, 16)
    capped.cap = 10**9
    assert clf.score(Xb, yb) > 0.6


# --------------------------------------------------------------------------- determinism and resume
def test_same_seed_same_result_bit_for_bit(cancer):
    Xa, _, ya, _ = cancer
    a = small(fresh_linear(), random_state=3).fit(Xa, ya)
    b = small(fresh_linear(), random_state=3).fit(Xa, ya)
    c = small(fresh_linear(), random_state=4).fit(Xa, ya)
    np.testing.assert_array_equal(a.theta_, b.theta_)
    assert a.history_ == b.history_
    assert not np.array_equal(a.theta_, c.theta_)


def test_fit_leaves_estimator_and_optimizer_instances_untouched(cancer):
    from bar_sdk.zo import Adam, HistoryEstimator

    Xa, _, ya, _ = cancer
    est, opt = HistoryEstimator(n_directions=5, smoothing=0.05), Adam(lr=0.05, lr_decay=0.1)
    clf = small(fresh_linear(), estimator=est, optimizer=opt, random_state=3)
    first = clf.fit(Xa, ya).theta_.copy()
    assert est.state_dict() == {} and opt.m is None  # fit trained copies of them
    assert clf.estimator_ is not est and clf.estimator_.state_dict()["mean"].shape == first.shape
    np.testing.assert_array_equal(clf.fit(Xa, ya).theta_, first)  # so a second fit starts afresh


def test_weight_decay_keeps_the_program_weaker_and_is_free(cancer, tmp_path):
    Xa, _, ya, _ = cancer
    plain = small(fresh_linear(), random_state=3).fit(Xa, ya)
    decayed = small(fresh_linear(), random_state=3, weight_decay=3.0).fit(Xa, ya)
    assert np.abs(decayed.theta_).mean() < 0.7 * np.abs(plain.theta_).mean()
    assert decayed.queries_ == plain.queries_ and decayed.history_["queries"] == plain.history_["queries"]
    # an explicit weight_decay=0.0 is the default: same program, and the same checkpoint resumes
    np.testing.assert_array_equal(
        small(fresh_linear(), random_state=3, weight_decay=0.0).fit(Xa, ya).theta_, plain.theta_
    )
    path = tmp_path / "ckpt.bar"
    small(fresh_linear(), random_state=3, checkpoint=str(path)).fit(Xa, ya)
    resumed = small(fresh_linear(), random_state=3, weight_decay=0.0, checkpoint=str(path)).fit(Xa, ya)
    np.testing.assert_array_equal(resumed.theta_, plain.theta_)
    with pytest.raises(CheckpointError, match="other data or parameters"):
        small(fresh_linear(), random_state=3, weight_decay=0.1, checkpoint=str(path)).fit(Xa, ya)


def test_weight_decay_off_keeps_the_fingerprint_of_checkpoints_written_before_it(cancer, monkeypatch):
    Xa, _, ya, _ = cancer
    clf = small(fresh_linear())
    now = clf._fingerprint(Xa, ya)
    params = BARClassifier.get_params
    monkeypatch.setattr(
        BARClassifier,
        "get_params",
        lambda self, deep=True: {k: v for k, v in params(self, deep).items() if k != "weight_decay"},
    )  # as before the option existed
    assert clf._fingerprint(Xa, ya) == now


def test_weight_decay_that_overshoots_or_would_be_ignored_is_refused_before_any_query(cancer):
    from bar_sdk.zo import SGD

    Xa, _, ya, _ = cancer
    model = fresh_linear()
    with pytest.raises(InvalidInputError, match=r"learning_rate \* weight_decay < 1"):
        small(model, learning_rate=0.5, weight_decay=2.0).fit(Xa, ya)
    with pytest.raises(InvalidInputError, match="with an optimizer instance"):
        small(model, optimizer=SGD(lr=0.1), weight_decay=0.1).fit(Xa, ya)
    assert model.calls == 0
    decayed = small(fresh_linear(), optimizer=SGD(lr=0.1, weight_decay=3.0), random_state=3).fit(Xa, ya)
    plain = small(fresh_linear(), optimizer=SGD(lr=0.1), random_state=3).fit(Xa, ya)
    assert np.abs(decayed.theta_).mean() < np.abs(plain.theta_).mean()  # the instance's own decay is used


class Crash(Exception):
    pass


@pytest.mark.parametrize(
    "mapping, estimator", [("frequency", "one_sided"), ("iterative", "one_sided"), ("frequency", "history")]
)  # history: the estimator's own state
@pytest.mark.parametrize("crash_after", [1, 3, 15])
def test_resume_after_crash_gives_the_same_program(cancer, tmp_path, mapping, estimator, crash_after):
    Xa, _, ya, _ = cancer
    # a budget that does not bind (two epochs cost 5,198): the resumed run ends exactly as an uninterrupted one
    kw = dict(max_queries=6000, max_epochs=2, mapping=mapping, batch_size=25, optimizer="adam", estimator=estimator)
    reference = small(fresh_linear(), **kw).fit(Xa, ya)

    model = fresh_linear()

    class Crashing:
        n_classes, input_shape = model.n_classes, model.input_shape

        def predict_proba(self, x):
            if model.calls == crash_after:
                raise Crash("simulated crash")
            return model.predict_proba(x)

    path = tmp_path / "ckpt.bar"
    with pytest.raises(Crash):
        small(Crashing(), checkpoint=str(path), **kw).fit(Xa, ya)
    spent_before = model.seen
    assert path.exists()
    model.calls = -(10**9)  # never crash again
    resumed = small(Crashing(), checkpoint=str(path), **kw).fit(Xa, ya)
    np.testing.assert_array_equal(resumed.theta_, reference.theta_)
    # the step in flight at the crash is counted as spent (max_queries holds across crashes), and done again
    step = reference.history_["queries"][1] - reference.history_["queries"][0]
    assert resumed.queries_ == reference.queries_ + step
    assert resumed.ledger_.by_purpose[BARClassifier.CRASH_PURPOSE] == step
    assert model.seen - reference.queries_ <= step
    assert spent_before <= model.seen
    # a finished checkpoint answers at once, without queries
    seen = model.seen
    again = small(Crashing(), checkpoint=str(path), **kw).fit(Xa, ya)
    assert model.seen == seen and np.array_equal(again.theta_, reference.theta_)


@pytest.mark.parametrize("views", [1, 3])
def test_crash_in_the_readout_pass_resumes_without_retraining(cancer, tmp_path, monkeypatch, views):
    Xa, _, ya, _ = cancer
    monkeypatch.setattr(BARClassifier, "READOUT_CHUNK", 100)  # the pass in four calls
    per_call = 100 * views  # each image of a call read from every view
    kw = dict(max_queries=8000, max_epochs=2, batch_size=25, readout="logistic", views=views)
    reference = small(fresh_linear(), **kw).fit(Xa, ya)
    model = fresh_linear()
    training_done = reference.queries_ - len(ya) * views  # the readout pass comes last
    assert reference.ledger_.by_purpose["readout"] == len(ya) * views

    class Crashing:
        n_classes, input_shape = model.n_classes, model.input_shape
        crash = True

        def predict_proba(self, x):
            out = model.predict_proba(x)  # answered (and paid for), then lost before the checkpoint
            if self.crash and model.seen > training_done + 2 * per_call:
                raise Crash("simulated crash in the readout pass's third call")
            return out

    path, crashing = tmp_path / "ckpt.bar", Crashing()
    with pytest.raises(Crash):
        small(crashing, checkpoint=str(path), **kw).fit(Xa, ya)
    assert model.seen == training_done + 3 * per_call
    crashing.crash = False
    resumed = small(crashing, checkpoint=str(path), **kw).fit(Xa, ya)
    # no training step again, and of the readout pass only the lost call: the first two were checkpointed
    assert model.seen == reference.queries_ + per_call
    np.testing.assert_array_equal(resumed.theta_, reference.theta_)
    np.testing.assert_array_equal(resumed.readout_.coef, reference.readout_.coef)
    assert resumed.queries_ == reference.queries_ + per_call  # the lost call counted as spent, then sent again


def test_logistic_readout_is_fitted_on_the_trained_program_and_beats_a_bad_mapping(cancer):
    Xa, Xb, ya, yb = cancer
    # one source label per class, drawn at random: the mapping reads 2 of the model's 10 scores
    kw = dict(mapping="random", labels_per_class=1, max_queries=3000)
    mapped = small(fresh_linear(), readout="mapping", **kw).fit(Xa, ya)
    learned = small(fresh_linear(), readout="logistic", **kw).fit(Xa, ya)
    assert mapped.readout_ is None and "readout" not in mapped.ledger_.by_purpose
    assert learned.readout_.coef.shape == (10, 2)
    # fitted on the training data's scores under the *trained* program
    trained_scores, _ = program_scores(learned, fresh_linear(), Xa)
    # with C chosen by cross-validation on those scores (no queries)
    assert learned.readout_.C == choose_readout_C(trained_scores, ya, 2)
    np.testing.assert_allclose(
        learned.readout_.coef, LogisticReadout.fit(trained_scores, ya, 2, C=learned.readout_.C).coef
    )
    np.testing.assert_allclose(learned.predict_proba(Xb).sum(1), 1.0)
    assert learned.score(Xb, yb) > mapped.score(Xb, yb) + 0.05


@pytest.mark.parametrize("estimator", ["one_sided", "exact"])
def test_logistic_mapping_trains_through_cross_fitted_readouts(cancer, estimator):
    """mapping="logistic": the loss reads each training row through a readout fitted without its fold.

    No queries beyond the mapping pass and the steps (readout="mapping"): the readouts are refitted on the
    scores the steps paid for, and predictions use one readout fitted on those scores.
    """
    from bar_sdk.losses import balanced_weights, cross_entropy
    from bar_sdk.mapping import READOUT_C_GRID, CrossFittedReadout

    Xa, Xb, ya, yb = cancer
    model = fresh_linear()
    clf = small(model, mapping="logistic", readout="mapping", estimator=estimator, max_queries=3000).fit(Xa, ya)
    assert clf.queries_ == model.seen <= 3000 and clf.ledger_.by_purpose["mapping"] == len(ya)
    assert "readout" not in clf.ledger_.by_purpose  # no pass beyond the mapping pass: readout="mapping"
    assert clf.readout_.C in READOUT_C_GRID
    layout, program = small(fresh_linear(), estimator=estimator)._layout_and_program(Xa, model.input_shape)

    def scores(theta, X):
        return fresh_linear().predict_proba(program.apply(theta[None], program.embed(layout.transform(X))))

    np.testing.assert_allclose(clf.predict_proba(Xb), clf.readout_.proba(scores(clf.theta_, Xb)))
    if estimator == "exact":  # exact gradients of the out-of-fold loss lower that loss on the training data

        def oof_loss(theta):
            s = scores(theta, Xa)
            readout = CrossFittedReadout.fit(s, ya, 2, C=clf.readout_.C)
            return cross_entropy(readout.proba(s, np.arange(len(ya))), ya, balanced_weights(ya, 2))[0].mean()

        theta0 = program.param.init(np.random.default_rng(0), 0.01)
        assert oof_loss(clf.theta_) < oof_loss(theta0)


def test_logistic_mapping_refuses_a_class_that_one_fold_holds_alone(cancer):
    """The cross-fitted readout needs every class outside every fold: refused before any query."""
    Xa, _, ya, _ = cancer
    y = np.zeros(len(ya), dtype=np.int64)
    y[3] = 1  # one sample of class 1: the fit without fold 3 has none
    model = fresh_linear()
    with pytest.raises(InvalidInputError, match=r"y has 1 sample\(s\) of class 1, all in fold 3"):
        small(model, mapping="logistic", max_queries=3000).fit(Xa, y)
    assert model.seen == 0


def test_logistic_mapping_resumes_after_a_crash(cancer, tmp_path):
    Xa, _, ya, _ = cancer
    # a budget that does not bind (as in the resume tests above): the resumed run ends as an uninterrupted one
    kw = dict(max_queries=6000, max_epochs=2, mapping="logistic", readout="logistic", batch_size=25)
    reference = small(fresh_linear(), **kw).fit(Xa, ya)
    model = fresh_linear()

    class Crashing:
        n_classes, input_shape = model.n_classes, model.input_shape
        crash = True

        def predict_proba(self, x):
            if self.crash and model.calls == 5:
                raise Crash("simulated crash")
            return model.predict_proba(x)

    path, crashing = tmp_path / "ckpt.bar", Crashing()
    with pytest.raises(Crash):
        small(crashing, checkpoint=str(path), **kw).fit(Xa, ya)
    crashing.crash = False
    resumed = small(crashing, checkpoint=str(path), **kw).fit(Xa, ya)
    np.testing.assert_array_equal(resumed.theta_, reference.theta_)
    np.testing.assert_array_equal(resumed.readout_.coef, reference.readout_.coef)


def test_logistic_readout_with_three_classes():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    clf = small(fresh_linear(), readout="logistic", labels_per_class=3, max_queries=3000).fit(Xa, ya)
    assert clf.readout_.coef.shape == (10, 3) and clf.predict_proba(Xb).shape == (len(Xb), 3)
    assert clf.score(Xb, yb) > 0.6  # chance is 1/3


def test_corrupt_or_foreign_checkpoint_is_refused(cancer, tmp_path):
    Xa, _, ya, _ = cancer
    path = tmp_path / "ckpt.bar"
    small(fresh_linear(), checkpoint=str(path)).fit(Xa, ya)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="checksum"):
        small(fresh_linear(), checkpoint=str(path)).fit(Xa, ya)
    path.write_bytes(raw)
    with pytest.raises(CheckpointError, match="other data or parameters"):
        small(fresh_linear(), checkpoint=str(path), learning_rate=0.2).fit(Xa, ya)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_unwritable_checkpoint_path_is_refused_before_any_query(cancer, tmp_path):
    Xa, _, ya, _ = cancer
    (tmp_path / "a_file").write_text("")
    for bad in (tmp_path / "a_file" / "ckpt.bar", tmp_path):  # a file as its folder; a folder as the path
        model = fresh_linear()
        with pytest.raises(CheckpointError, match="checkpoint=") as err:
            small(model, checkpoint=str(bad)).fit(Xa, ya)
        assert isinstance(err.value, ValueError) and model.seen == 0
    nested = tmp_path / "new" / "dir" / "ckpt.bar"  # missing folders are created, as the first write would
    small(fresh_linear(), checkpoint=str(nested)).fit(Xa, ya)
    assert nested.is_file() and sorted(os.listdir(nested.parent)) == ["ckpt.bar"]


def test_label_only_model_is_refused_before_any_query(cancer):
    Xa, _, ya, _ = cancer
    model = fresh_linear()
    with pytest.raises(InvalidInputError, match="labels only"):
        small(LabelOnly(model)).fit(Xa, ya)
    assert model.seen == 0


def test_save_and_load_round_trip(cancer, tmp_path):
    Xa, Xb, ya, _ = cancer
    clf = small(fresh_linear(), readout="logistic").fit(Xa, ya)
    clf.save(tmp_path / "prog.bar")
    loaded = BARClassifier.load(tmp_path / "prog.bar", fresh_linear())
    np.testing.assert_array_equal(loaded.predict_proba(Xb), clf.predict_proba(Xb))
    assert loaded.queries_ == clf.queries_
    np.testing.assert_array_equal(loaded.readout_.coef, clf.readout_.coef)
    plain = small(fresh_linear(), readout="mapping").fit(Xa, ya)
    plain.save(tmp_path / "plain.bar")
    loaded = BARClassifier.load(tmp_path / "plain.bar", fresh_linear())
    assert loaded.readout_ is None and loaded.readout == "mapping"
    np.testing.assert_array_equal(loaded.predict_proba(Xb), plain.predict_proba(Xb))


def test_verbose_shows_progress(cancer, capsys):
    Xa, _, ya, _ = cancer
    small(fresh_linear(), verbose=True).fit(Xa, ya)
    err = capsys.readouterr().err
    assert "BAR fit" in err and "loss=" in err and "acc=" in err


def test_quantization_warning_for_steps_below_one_grey_level(cancer):
    Xa, _, ya, _ = cancer
    model = fresh_linear()
    model.quantization_step = 1 / 255
    with pytest.warns(QuantizationWarning, match="smoothing=1e-05"):
        small(model, smoothing=1e-5, max_queries=1500).fit(Xa, ya)


# --------------------------------------------------------------------------- bad input, before any query
X_IMG = np.random.default_rng(0).random((20, 8, 8)).astype(np.float32)
Y2 = np.arange(20) % 2


@pytest.mark.parametrize(
    "X,y,params,match",
    [
        (np.where(X_IMG > 0.5, np.nan, X_IMG), Y2, {}, "NaN"),
        (X_IMG * 2, Y2, {}, r"values in \[0"),
        (X_IMG.astype(np.int32), Y2, {}, "dtype int32"),
        (X_IMG[:, :, :, None, None], Y2, {}, "shape"),
        (X_IMG, np.zeros(20, int), {}, "single class"),
        (X_IMG, Y2 + 0.5, {}, "continuous"),  # any class labels are accepted (tests/core/test_sklearn_checks.py)
        (X_IMG, Y2[:10], {}, r"expected \(20,\)"),
        (X_IMG, Y2, {"target_size": 17}, "target_size=17"),
        (X_IMG, Y2, {"estimator": "magic"}, "estimator='magic'"),
        (X_IMG, Y2, {"batch_size": 0}, "batch_size=0"),
        (X_IMG, Y2, {"max_queries": -5}, "max_queries=-5"),
        (X_IMG, Y2, {"labels_per_class": 6}, "labels_per_class=6"),
        (X_IMG, Y2, {"readout": "softmax"}, "readout='softmax'"),
        (X_IMG, Y2, {"learning_rate": float("nan")}, "learning_rate=nan"),
        (np.full((20, 3), np.inf), Y2, {}, "NaN or infinite"),
        (np.random.default_rng(1).random((20, 8, 8, 3)), Y2, {}, "3 channels"),
        (np.zeros((20, 3), complex), Y2, {}, "dtype complex"),
        (np.random.default_rng(2).random((20, 300)), Y2, {}, "300 features"),  # a 18x18 patch, a 16x16 model
        (np.random.default_rng(2).random((20, 300)), Y2, {"program": "full"}, "300 features"),
    ],
)
def test_bad_input_is_named_before_any_query(X, y, params, match):
    model = fresh_linear()
    with pytest.raises(InvalidInputError, match=match):
        small(model, **params).fit(X, y)
    assert model.seen == 0


def test_predict_refuses_images_unlike_those_seen_in_fit():
    clf = small(fresh_linear(), max_queries=500).fit(X_IMG, Y2)
    model = clf.model
    seen = model.seen
    with pytest.raises(InvalidInputError, match=r"10x10; expected 1 channel\(s\), 8x8"):
        clf.predict(np.zeros((3, 10, 10), np.float32))
    assert model.seen == seen
    assert clf.predict(X_IMG[:3, None]).shape == (3,)  # (n, 1, H, W) is the same as (n, H, W)
    # a three-channel model fitted on grey images (repeated to RGB) is not handed RGB images later
    from bar_sdk.adapters import CallableModel

    rgb = CallableModel(lambda x: np.full((len(x), 4), 0.25), n_classes=4, input_shape=(3, 16, 16))
    clf = small(rgb, max_queries=500).fit(X_IMG, Y2)
    with pytest.raises(InvalidInputError, match=r"3 channel\(s\), 8x8; expected 1 channel\(s\), 8x8"):
        clf.predict(np.zeros((3, 3, 8, 8), np.float32))


def test_a_fitted_estimator_pickles_and_keeps_counting(cancer):
    import pickle

    Xa, Xb, ya, _ = cancer
    clf = small(fresh_linear(), max_queries=1500).fit(Xa, ya)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(Xb), clf.predict_proba(Xb))
    assert again.ledger_.queries == clf.ledger_.queries == clf.queries_ + len(Xb)


def test_refit_on_images_drops_the_tabular_feature_count(cancer):
    Xa, _, ya, _ = cancer
    clf = small(fresh_linear(), max_queries=1500).fit(Xa, ya)
    assert clf.n_features_in_ == Xa.shape[1]
    clf.set_params(max_queries=500).fit(X_IMG, Y2)
    assert not hasattr(clf, "n_features_in_")


def test_exact_estimator_needs_gradients():
    model = TopK(fresh_linear(), k=10)
    with pytest.raises(InvalidInputError, match="estimator='exact'"):
        small(model, estimator="exact").fit(X_IMG, Y2)


@pytest.mark.parametrize(
    "answer,match",
    [
        (lambda x: np.ones((len(x), 3)), "shape"),
        (lambda x: np.full((len(x), 10), np.nan), "NaN"),
        (lambda x: -np.ones((len(x), 10)), "negative"),
    ],
)
def test_bad_model_answers_are_named(answer, match):
    class Bad:
        n_classes, input_shape = 10, (1, 16, 16)
        predict_proba = staticmethod(answer)

    with pytest.raises(ModelOutputError, match=match):
        small(Bad()).fit(X_IMG, Y2)


# --------------------------------------------------------------------------- warm start and surrogate prior
def test_warm_start_from_a_white_box_program_starts_ahead(cancer):
    Xa, Xb, ya, yb = cancer
    white = small(fresh_linear(), estimator="exact", max_queries=4000).fit(Xa, ya)
    # read through the mapping: a logistic readout refitted on the cold program would hide what the start gives
    kw = dict(max_queries=700, learning_rate=1e-6, readout="mapping")
    cold = small(fresh_linear(), **kw).fit(Xa, ya)
    warm = small(fresh_linear(), initial_program=white, **kw).fit(Xa, ya)
    np.testing.assert_allclose(warm.theta_, white.theta_, atol=1e-3)  # barely moved from the start given
    assert warm.score(Xb, yb) >= cold.score(Xb, yb)
    with pytest.raises(InvalidInputError, match="initial_program has shape"):
        small(fresh_linear(), initial_program=np.zeros(3)).fit(Xa, ya)


def test_surrogate_prior_is_used_and_counted_apart(cancer):
    Xa, Xb, ya, yb = cancer
    model, surrogate = fresh_linear(), fresh_linear()
    clf = small(model, surrogate=surrogate, max_queries=3000, prior_weight=0.9).fit(Xa, ya)
    assert clf.queries_ == model.seen <= 3000
    assert clf.surrogate_queries_ == surrogate.seen > 0
    assert clf.score(Xb, yb) > 0.75
    with pytest.raises(InvalidInputError, match="surrogate has input_shape"):
        small(fresh_linear(), surrogate=TopK(fresh_linear(), 3)).fit(Xa, ya)
