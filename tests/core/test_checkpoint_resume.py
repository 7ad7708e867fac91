"""Checkpoints: what they recognise (data shape, dtype, classes), and max_queries held across crashes."""

import warnings

import numpy as np
import pytest
from _models import fresh_linear

from bar_sdk import BARClassifier, CheckpointError

X13 = np.random.default_rng(0).random((13, 8, 8)).astype(np.float32)
Y13 = np.arange(13) % 2


def bar(model, path, **kw):
    kw = {"max_queries": 400, "batch_size": 5, "random_state": 0, "checkpoint": str(path), **kw}
    return BARClassifier(model, **kw)


@pytest.mark.parametrize("program, other", [("full", (13, 4, 16)), ("pad", (13, 2, 32)), ("pad", (13, 64))])
def test_a_checkpoint_for_other_shaped_data_is_refused_naming_the_shapes(tmp_path, program, other):
    path = tmp_path / "run.bar"
    bar(fresh_linear(), path, program=program).fit(X13, Y13)
    model = fresh_linear()
    with pytest.raises(
        CheckpointError,
        match=r"X of shape \(13, 8, 8\), dtype float32 there, of shape " + r"\(" + ", ".join(map(str, other)) + r"\)",
    ):
        bar(model, path, program=program).fit(X13.reshape(other), Y13)
    assert model.seen == 0


def test_a_checkpoint_for_other_dtype_or_classes_is_refused_naming_them(tmp_path):
    path = tmp_path / "run.bar"
    bar(fresh_linear(), path).fit(X13, Y13)
    model = fresh_linear()
    with pytest.raises(CheckpointError, match=r"dtype float32 there, of shape \(13, 8, 8\), dtype float64 here"):
        bar(model, path).fit(X13.astype(np.float64), Y13)
    with pytest.raises(CheckpointError, match=r"classes \['0', '1'\].* there, .*classes \['a', 'b'\]"):
        bar(model, path).fit(X13, np.array(["a", "b"])[Y13])  # the same codes 0/1, other labels
    assert model.seen == 0
    again = bar(model, path).fit(X13, Y13)  # the same data still resumes, at no cost
    assert model.seen == 0 and again.queries_ > 0


# --------------------------------------------------------------------------- max_queries across crashes
class Lost(Exception):
    pass


class CountingThenLost:
    """Counts every image it receives; the call number ``crash_on`` is answered, then lost (an exception)."""

    def __init__(self, crash_on=None):
        self.inner = fresh_linear()
        self.n_classes, self.input_shape = self.inner.n_classes, self.inner.input_shape
        self.crash_on, self.calls, self.received = crash_on, 0, 0

    def predict_proba(self, x):
        self.calls += 1
        self.received += len(x)
        out = self.inner.predict_proba(x)
        if self.calls == self.crash_on:
            raise Lost("answered and billed, then the process lost it")
        return out


def cancer40():
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return d.data[:40], d.target[:40]


# 40 rows, batch 10: the mapping pass costs 40, a step 60; 400 = 40 + 6 steps exactly (the budget binds)
# readout="mapping": no readout pass, so the arithmetic above is the whole bill
BINDING = dict(max_queries=400, batch_size=10, random_state=1, readout="mapping")


@pytest.mark.parametrize("crash_on", [1, 2, 4, 7])  # the mapping pass, the first, a middle and the last step
def test_max_queries_holds_across_a_crash_that_loses_paid_answers(tmp_path, crash_on):
    X, y = cancer40()
    reference = BARClassifier(CountingThenLost(), **BINDING).fit(X, y)
    assert reference.queries_ == 400 and reference.n_steps_ == 6
    model, path = CountingThenLost(crash_on), tmp_path / "run.bar"
    with pytest.raises(Lost):
        BARClassifier(model, checkpoint=str(path), **BINDING).fit(X, y)
    resumed = BARClassifier(model, checkpoint=str(path), **BINDING).fit(X, y)
    assert model.received <= 400  # today: 460, the lost step paid again
    assert resumed.queries_ == model.received <= 400  # the ledger knows every image that left
    assert resumed.n_steps_ == reference.n_steps_ - 1  # the budget binds: one step fewer
    lost = 40 if crash_on == 1 else 60
    assert resumed.ledger_.by_purpose[BARClassifier.CRASH_PURPOSE] == lost


def test_a_resume_that_cannot_redo_the_mapping_pass_and_a_step_sends_nothing(tmp_path):
    from bar_sdk import QueryBudgetExceeded

    X, y = cancer40()
    kw = dict(BINDING, max_queries=100)  # the mapping pass (40) and one step (60), nothing to spare
    model, path = CountingThenLost(1), tmp_path / "run.bar"
    with pytest.raises(Lost):
        BARClassifier(model, checkpoint=str(path), **kw).fit(X, y)
    with pytest.raises(QueryBudgetExceeded, match="in flight at a crash counted as spent"):
        BARClassifier(model, checkpoint=str(path), **kw).fit(X, y)
    assert model.received == 40


def test_a_crash_when_the_budget_does_not_bind_changes_nothing_but_the_count(tmp_path):
    X, y = cancer40()
    kw = dict(BINDING, max_epochs=3)  # 12 steps would cost 760: with max_queries=1000 the budget does not bind
    kw["max_queries"] = 1000
    reference = BARClassifier(CountingThenLost(), **kw).fit(X, y)
    model, path = CountingThenLost(5), tmp_path / "run.bar"
    with pytest.raises(Lost):
        BARClassifier(model, checkpoint=str(path), **kw).fit(X, y)
    resumed = BARClassifier(model, checkpoint=str(path), **kw).fit(X, y)
    np.testing.assert_array_equal(resumed.theta_, reference.theta_)  # the schedule ignores the lost step
    assert resumed.queries_ == model.received == reference.queries_ + 60


def test_the_journal_is_on_disk_before_the_request_leaves(tmp_path):
    from bar_sdk.checkpoint import read_state

    X, y = cancer40()
    path = tmp_path / "run.bar"
    journals = []

    class Peeking(CountingThenLost):
        def predict_proba(self, x):
            _, meta = read_state(path)  # what a SIGKILL now would leave
            journals.append((meta["in_flight"], meta["ledger"]["queries"]))
            return super().predict_proba(x)

    BARClassifier(Peeking(), checkpoint=str(path), **BINDING).fit(X, y)
    assert journals[0] == ({"images": 40, "purpose": "mapping"}, 0)
    assert journals[1:] == [({"images": 60, "purpose": "train"}, 40 + 60 * i) for i in range(6)]
    assert read_state(path)[1]["in_flight"] is None


# --------------------------------------------------------------------------- nothing non-finite is sent
class FiniteOnly(CountingThenLost):
    def predict_proba(self, x):
        assert np.all(np.isfinite(x)), "a non-finite image reached the model"
        return super().predict_proba(x)


def test_parameters_that_would_overflow_are_refused_by_name_before_any_query():
    from bar_sdk import InvalidInputError

    X, y = cancer40()
    for name in ("init_scale", "smoothing", "learning_rate"):
        model = FiniteOnly()
        with pytest.raises(InvalidInputError, match=f"{name}=1e[+]300; expected a number <= 100"):
            BARClassifier(model, **{**BINDING, name: 1e300}).fit(X, y)
        assert model.received == 0
    model = FiniteOnly()
    clf = BARClassifier(model, **BINDING).fit(X, y)
    with pytest.raises(InvalidInputError, match="initial_program has parameters up to 1e[+]300"):
        BARClassifier(model, **BINDING, initial_program=np.full_like(clf.theta_, 1e300)).fit(X, y)


def test_tabular_features_near_the_float64_limits_give_finite_images():
    X, y = cancer40()
    huge = X / X.max(axis=0) * 1.7e308 * np.where(np.arange(40) % 2, 1, -1)[:, None]
    model = FiniteOnly()
    clf = BARClassifier(model, **BINDING).fit(huge, y)  # today: NaN images
    assert np.isfinite(clf.predict_proba(huge)).all() and model.received > 400


def test_a_program_that_turns_nan_stops_the_run_keeping_the_last_finite_program():
    from bar_sdk.reprogram import NonFiniteProgramError
    from bar_sdk.zo import SGD

    class GoesNaN(SGD):  # a user's own optimizer whose update turns NaN at its third step
        def _update(self, theta, grad, progress):
            self.n = getattr(self, "n", 0) + 1
            out = super()._update(theta, grad, progress)
            return out * np.nan if self.n == 3 else out

    X, y = cancer40()
    model = FiniteOnly()
    clf = BARClassifier(model, **BINDING, optimizer=GoesNaN(lr=0.05))
    with pytest.raises(NonFiniteProgramError, match="became NaN or infinite at step 3.*kept the program of step 2"):
        clf.fit(X, y)
    two = BARClassifier(FiniteOnly(), **{**BINDING, "max_queries": 40 + 2 * 60}, optimizer=SGD(lr=0.05)).fit(X, y)
    np.testing.assert_array_equal(clf.theta_, two.theta_)  # the program of step 2, finite
    assert "NaN or infinite" in clf.stop_reason_ and np.isfinite(clf.program_).all()
    assert model.received == 40 + 3 * 60  # no image after the NaN step


def test_adam_with_beta1_one_never_sends_a_nan_image():
    from bar_sdk import InvalidInputError
    from bar_sdk.reprogram import NonFiniteProgramError
    from bar_sdk.zo import Adam

    X, y = cancer40()
    model = FiniteOnly()
    with pytest.raises((InvalidInputError, NonFiniteProgramError)):  # refused up front, or stopped at step 1
        BARClassifier(model, **BINDING, optimizer=Adam(beta1=1.0)).fit(X, y)
    assert model.received <= 40 + 60


def test_a_finite_program_whose_images_overflow_is_refused_before_sending():
    from bar_sdk.reprogram import NonFiniteProgramError
    from bar_sdk.zo import SGD

    class Blows(SGD):  # finite parameters at its third step, so large that the low-rank product overflows
        def _update(self, theta, grad, progress):
            self.n = getattr(self, "n", 0) + 1
            out = super()._update(theta, grad, progress)
            return out * 1e160 if self.n == 3 else out

    X, y = cancer40()
    model = FiniteOnly()
    clf = BARClassifier(model, **BINDING, parameterization="lowrank", optimizer=Blows(lr=0.05))
    with warnings.catch_warnings():  # the refusal is the error below, not a NumPy warning beside it
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(NonFiniteProgramError, match="program's images hold NaN or infinite values .parameters up"):
            clf.fit(X, y)
    assert np.isfinite(clf.theta_).all() and np.abs(clf.theta_).max() > 1e100  # finite, and yet never sent
    assert model.received == 40 + 3 * 60 and clf.queries_ == model.received  # nothing of step 4 left


# --------------------------------------------------------------------------- checkpoints written by earlier versions
#: written by the code before the training loop moved to bar_sdk.zo.loop (commit cc3d66e): cancer40, OLD_KW,
#: CountingThenLost(crash_on) with the checkpoint, so the file holds a request in flight; the linear model
#: answered with the stored weights (tests/fixtures/models), on one BLAS thread
OLD_KW = dict(max_queries=1500, max_epochs=3, batch_size=10, random_state=1, mapping="iterative")


@pytest.mark.parametrize("crash_on", [5, 14])  # a training step at an epoch's end (remapping), the readout pass
def test_a_checkpoint_written_by_the_earlier_loop_resumes_to_the_uninterrupted_result(tmp_path, crash_on):
    import shutil
    from pathlib import Path

    from threadpoolctl import threadpool_limits

    X, y = cancer40()
    path = tmp_path / "old.bar"
    shutil.copy(Path(__file__).parents[1] / "fixtures" / "checkpoints" / f"crash_on_{crash_on}.bar", path)
    # The files were written with one BLAS thread against the stored weights of the linear model
    # (tests/helpers/_models.py). Both runs here use that arithmetic: a matrix product split over two
    # threads rounds differently, and a training trajectory would carry that on.
    with threadpool_limits(limits=1):
        model = CountingThenLost()
        reference = BARClassifier(CountingThenLost(), **OLD_KW).fit(X, y)
        resumed = BARClassifier(model, checkpoint=str(path), **OLD_KW).fit(X, y)
    # Bit for bit on the CPU that wrote the files. Another CPU's BLAS and SIMD kernels round float64
    # sums in another order (one ulp, 2e-16 relative, per operation), and the few dozen steps before the
    # crash carry that into the file's state: 1e-14 on theta (|theta| < 0.3) with OpenBLAS's Haswell
    # kernels where AVX-512 ones wrote the files. A state restored wrongly (moments, step, RNG, mapping)
    # moves theta by 1e-2 or more, so 1e-10 tells the two apart with four orders of magnitude each side.
    np.testing.assert_allclose(resumed.theta_, reference.theta_, rtol=0, atol=1e-10)
    lost = 60 if crash_on == 5 else 40  # the step or the readout pass in flight, counted as spent
    assert resumed.ledger_.by_purpose[BARClassifier.CRASH_PURPOSE] == lost
    assert resumed.queries_ == reference.queries_ + lost
    np.testing.assert_allclose(resumed.readout_.coef, reference.readout_.coef, rtol=1e-8, atol=1e-10)
