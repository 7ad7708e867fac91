"""BARClassifier(views=N): each image read from N views in the readout pass and in predictions."""

import numpy as np
import pytest
from _models import cancer_split, fresh_linear
from sklearn.base import clone

from bar_sdk import BARClassifier, InvalidInputError
from bar_sdk.mapping import log_features
from bar_sdk.program import GridParameterization, PadProgram
from bar_sdk.views import MAX_VIEWS, combine_views, random_views, view_images


@pytest.fixture(scope="module")
def cancer():
    return cancer_split()


def small(model, **kw):
    kw.setdefault("max_queries", 3000)
    kw.setdefault("random_state", 0)
    return BARClassifier(model, batch_size=20, n_directions=3, **kw)


class Recording:
    """The model, with the size of every call it answered."""

    def __init__(self, model):
        self.model, self.calls = model, []
        self.n_classes, self.input_shape = model.n_classes, model.input_shape

    def predict_proba(self, x):
        self.calls.append(len(x))
        return self.model.predict_proba(x)


def test_views_move_the_target_only_and_the_first_is_the_image_itself():
    program = PadProgram((1, 16, 16), (7, 7), GridParameterization(4))
    targets = np.random.default_rng(0).random((3, 1, 7, 7)).astype(np.float32)
    embedded = program.embed(targets)
    assert view_images(program, embedded, 1) is embedded
    out = view_images(program, embedded, MAX_VIEWS).reshape(MAX_VIEWS, 3, 1, 16, 16)
    region = (slice(None), slice(None), slice(program.top, program.top + 7), slice(program.left, program.left + 7))
    np.testing.assert_array_equal(out[0], embedded)
    np.testing.assert_array_equal(out[1][region], embedded[region][..., ::-1])  # mirrored
    np.testing.assert_array_equal(out[2][region], np.roll(embedded[region], 1, axis=-1))  # a seventh of 7 px
    np.testing.assert_array_equal(out[5][region], np.roll(embedded[region], -1, axis=-2))
    outside = np.ones((16, 16), bool)
    outside[program.top : program.top + 7, program.left : program.left + 7] = False
    assert all(np.all(v[..., outside] == 0) for v in out)  # the frame's pixels are never moved into
    assert len({v.tobytes() for v in out}) == MAX_VIEWS  # six different views


def test_combined_views_average_the_readouts_log_scores():
    rng = np.random.default_rng(1)
    scores = rng.dirichlet(np.ones(5), size=8)
    assert combine_views(scores, 1) is scores
    np.testing.assert_allclose(combine_views(np.concatenate([scores, scores]), 2), scores)
    # two top-2 answers (the rest left out, as zeros)
    a, b = (np.where(s >= np.sort(s, axis=1)[:, -2:-1], s, 0.0) for s in (scores[:4], scores[4:]))
    both = combine_views(np.concatenate([a, b]), 2)
    np.testing.assert_allclose(np.log(both), (log_features(a) + log_features(b)) / 2)
    assert np.all(both > 0)  # a left-out score is read as the readouts read it, never as log(0)


@pytest.mark.parametrize(
    "param, value",
    [("views", v) for v in (0, 7, 2.5, True, "3", None)] + [("augment", v) for v in (1, "yes", None, 0.0)],
)
def test_bad_views_or_augment_are_refused_before_any_query(cancer, param, value):
    Xa, _, ya, _ = cancer
    model = fresh_linear()
    with pytest.raises(InvalidInputError, match=param):
        small(model, **{param: value}).fit(Xa, ya)
    assert model.seen == 0


def test_views_cost_one_query_each_in_the_readout_pass_and_in_predictions(cancer, monkeypatch):
    Xa, Xb, ya, _ = cancer
    monkeypatch.setattr(BARClassifier, "READOUT_CHUNK", 64)
    model = Recording(fresh_linear())
    clf = small(model, views=4, max_queries=4000).fit(Xa, ya)
    assert clf.ledger_.by_purpose["readout"] == 4 * len(ya)
    # the pass's calls: 64 images at a time, each sent as its four views together
    n_steps_calls = len(model.calls) - -(-len(ya) // 64)
    assert model.calls[n_steps_calls:] == [4 * min(64, len(ya) - s) for s in range(0, len(ya), 64)]
    before = clf.ledger_.queries
    proba = clf.predict_proba(Xb)
    assert clf.ledger_.queries - before == 4 * len(Xb)
    assert proba.shape == (len(Xb), 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert clf.ledger_.queries <= 4000 + 4 * len(Xb)  # the fit itself stayed within max_queries


def test_a_budget_below_the_views_readout_pass_is_refused_with_the_numbers(cancer):
    Xa, _, ya, _ = cancer
    model = fresh_linear()
    need = len(ya) + 20 * 4 + 3 * len(ya)  # mapping pass, one step (20 x 4 evaluations), readout pass x 3
    with pytest.raises(InvalidInputError, match=rf"views=3\); expected max_queries >= {need}"):
        small(model, views=3, max_queries=need - 1).fit(Xa, ya)
    assert model.seen == 0


def test_views_are_deterministic_and_kept_by_clone(cancer):
    Xa, Xb, ya, _ = cancer
    a = small(fresh_linear(), views=3).fit(Xa, ya)
    b = clone(a).fit(Xa, ya)
    assert b.views == 3
    np.testing.assert_array_equal(a.predict_proba(Xb), b.predict_proba(Xb))
    # with the steps fixed by max_epochs (not a budget the readout pass shares), the views change no step:
    # training reads each image once
    one, six = (small(fresh_linear(), views=v, max_queries=None, max_epochs=2).fit(Xa, ya) for v in (1, 6))
    np.testing.assert_array_equal(one.theta_, six.theta_)
    assert not np.allclose(one.predict_proba(Xb), six.predict_proba(Xb))


def test_views_survive_save_and_load(cancer, tmp_path):
    Xa, Xb, ya, _ = cancer
    clf = small(fresh_linear(), views=2).fit(Xa, ya)
    path = tmp_path / "fitted.bar"
    clf.save(path)
    loaded = BARClassifier.load(path, fresh_linear())
    assert loaded.views == 2
    np.testing.assert_array_equal(loaded.predict_proba(Xb), clf.predict_proba(Xb))


def test_a_checkpoint_of_other_views_is_refused_before_any_query(cancer, tmp_path):
    from bar_sdk.errors import CheckpointError

    Xa, _, ya, _ = cancer
    path = str(tmp_path / "fit.bar")
    small(fresh_linear(), views=1, checkpoint=path).fit(Xa, ya)
    model = fresh_linear()
    with pytest.raises(CheckpointError, match="other data or parameters"):
        small(model, views=2, checkpoint=path).fit(Xa, ya)
    assert model.seen == 0


def test_program_transfer_reads_the_views_the_readout_was_fitted_on(cancer):
    from bar_sdk.transfer import program_scores

    Xa, Xb, ya, _ = cancer
    clf = small(fresh_linear(), views=3).fit(Xa, ya)
    scores, queries = program_scores(clf, fresh_linear(), Xb)
    assert queries == 3 * len(Xb)
    np.testing.assert_array_equal(scores, clf.source_scores(Xb))


# ---------------------------------------------------------------- augment=True: one random view per image in training


def test_random_views_give_each_image_one_of_its_own_views_drawn_from_the_generator():
    program = PadProgram((1, 16, 16), (7, 7), GridParameterization(4))
    embedded = program.embed(np.random.default_rng(0).random((40, 1, 7, 7)).astype(np.float32))
    every = view_images(program, embedded, MAX_VIEWS).reshape(MAX_VIEWS, 40, 1, 16, 16)
    rng = np.random.default_rng(5)
    out = random_views(program, embedded, rng)
    assert out.shape == embedded.shape
    picked = [next(v for v in range(MAX_VIEWS) if np.array_equal(out[i], every[v, i])) for i in range(40)]
    np.testing.assert_array_equal(picked, np.random.default_rng(5).integers(0, MAX_VIEWS, 40))  # one draw of n
    assert len(set(picked)) > 1  # not one view for the whole batch
    assert rng.bit_generator.state == _after_one_draw(5, 40)


def _after_one_draw(seed, n):
    rng = np.random.default_rng(seed)
    rng.integers(0, MAX_VIEWS, n)
    return rng.bit_generator.state


def test_augment_changes_the_training_not_its_cost_and_is_deterministic(cancer):
    Xa, Xb, ya, _ = cancer
    kw = dict(max_queries=None, max_epochs=2)
    plain = small(fresh_linear(), **kw).fit(Xa, ya)
    aug = small(fresh_linear(), augment=True, **kw).fit(Xa, ya)
    assert aug.ledger_.by_purpose == plain.ledger_.by_purpose  # the same queries, purpose by purpose
    assert not np.allclose(aug.theta_, plain.theta_)  # trained on other views of the same images
    again = clone(aug).fit(Xa, ya)
    assert again.augment is True
    np.testing.assert_array_equal(again.theta_, aug.theta_)
    np.testing.assert_array_equal(again.predict_proba(Xb), aug.predict_proba(Xb))


def test_augment_resumes_after_a_crash_to_the_uninterrupted_program(cancer, tmp_path):
    Xa, _, ya, _ = cancer
    kw = dict(max_queries=None, max_epochs=2, augment=True)
    reference = small(fresh_linear(), **kw).fit(Xa, ya)
    model = fresh_linear()

    class Crashing:
        n_classes, input_shape = model.n_classes, model.input_shape

        def predict_proba(self, x):
            if model.calls == 4:
                raise RuntimeError("simulated crash")
            return model.predict_proba(x)

    path = str(tmp_path / "ckpt.bar")
    with pytest.raises(RuntimeError, match="simulated"):
        small(Crashing(), checkpoint=path, **kw).fit(Xa, ya)
    model.calls = -(10**9)  # never crash again
    resumed = small(Crashing(), checkpoint=path, **kw).fit(Xa, ya)
    np.testing.assert_array_equal(resumed.theta_, reference.theta_)
