"""The one zeroth-order training loop: callbacks, early stop, stop reasons, budget checks before a step."""

import numpy as np
import pytest
from _models import fresh_linear

from bar_sdk import BARClassifier, InvalidInputError, QueryBudgetExceeded
from bar_sdk.ledger import QueryLedger
from bar_sdk.zo.loop import Callback, EarlyStopping, StepResult, TrainLoop


def cancer60():
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return d.data[:60], d.target[:60]


KW = dict(max_epochs=3, batch_size=10, n_directions=3, random_state=2)  # 6 steps an epoch, 40 queries a step


class Recorder(Callback):
    def __init__(self):
        self.events, self.thetas, self.error = [], [], "unset"

    def on_train_begin(self, loop):
        self.events.append("begin")

    def on_step_end(self, loop, result):
        self.events.append(("step", loop.state.step, loop.ledger.queries))
        self.thetas.append(loop.state.theta.copy())

    def on_train_end(self, loop):
        self.events.append("end")
        self.error = loop.error


def test_callbacks_see_every_step_in_order_and_the_readout_pass_before_the_end():
    X, y = cancer60()
    rec = Recorder()
    clf = BARClassifier(fresh_linear(), **KW).fit(X, y, callbacks=[rec])
    steps = [e for e in rec.events if e[0] == "step"]
    assert rec.events[0] == "begin" and rec.events[-1] == "end" and rec.error is None
    assert [s for _, s, _ in steps] == list(range(1, 19)) == clf.history_["step"]
    assert [q for _, _, q in steps] == clf.history_["queries"] == [60 + 40 * i for i in range(1, 19)]
    assert clf.queries_ == 60 + 18 * 40 + 60  # the readout pass ran after the last step
    np.testing.assert_array_equal(rec.thetas[-1], clf.theta_)


def test_a_callable_that_stops_training_keeps_the_trajectory_and_still_fits_the_readout():
    X, y = cancer60()
    full = Recorder()
    BARClassifier(fresh_linear(), **KW).fit(X, y, callbacks=full)
    clf = BARClassifier(fresh_linear(), **KW).fit(
        X, y, callbacks=lambda loop, result: "enough" if loop.state.step == 4 else None
    )
    assert clf.n_steps_ == 4 and clf.stop_reason_ == "enough" and len(clf.history_["loss"]) == 4
    np.testing.assert_array_equal(clf.theta_, full.thetas[3])  # the program of step 4 of the whole run
    assert clf.queries_ == 60 + 4 * 40 + 60 and clf.readout_ is not None


def test_early_stopping_ends_a_fit_whose_loss_stops_improving():
    X, y = cancer60()
    clf = BARClassifier(fresh_linear(), **KW).fit(X, y, callbacks=[EarlyStopping(patience=2, smoothing=0.0)])
    losses = clf.history_["loss"]
    assert clf.stop_reason_.startswith("early stop") and clf.n_steps_ < 18
    best = int(np.argmin(losses))
    assert len(losses) == best + 3  # two steps without a new best, then stop
    assert clf.queries_ == 60 + clf.n_steps_ * 40 + 60


def test_early_stopping_counts_steps_without_improvement():
    stop = EarlyStopping(patience=3, min_delta=0.1, smoothing=0.0)
    got = [stop.on_step_end(None, StepResult(v)) for v in (1.0, 0.95, 0.5, 0.45, 0.42, 0.41)]
    assert got[:5] == [None] * 5 and got[5].startswith("early stop")
    with pytest.raises(InvalidInputError, match="patience=0"):
        EarlyStopping(patience=0)


def test_an_early_stop_with_a_checkpoint_resumes_as_finished(tmp_path):
    X, y = cancer60()
    path = str(tmp_path / "run.bar")
    stop = lambda loop, result: loop.state.step == 3  # noqa: E731
    first = BARClassifier(fresh_linear(), checkpoint=path, **KW).fit(X, y, callbacks=stop)
    model = fresh_linear()
    again = BARClassifier(model, checkpoint=path, **KW).fit(X, y)
    assert model.seen == 0 and again.n_steps_ == 3
    np.testing.assert_array_equal(again.theta_, first.theta_)


def test_bad_callbacks_are_refused_by_name_before_any_query():
    X, y = cancer60()
    model = fresh_linear()
    with pytest.raises(InvalidInputError, match="callbacks holds 3; expected callables"):
        BARClassifier(model, **KW).fit(X, y, callbacks=[3])
    assert model.seen == 0


def test_callbacks_hear_the_end_when_the_models_own_budget_runs_out():
    X, y = cancer60()

    class Capped:
        n_classes, input_shape = 10, (1, 16, 16)

        def __init__(self):
            self.inner, self.ledger = fresh_linear(), QueryLedger(60 + 5 * 40)

        def predict_proba(self, x):
            self.ledger.reserve(len(x), "api")
            return self.inner.predict_proba(x)

    rec = Recorder()
    clf = BARClassifier(Capped(), **KW)
    with pytest.raises(QueryBudgetExceeded):
        clf.fit(X, y, callbacks=rec)
    assert rec.events[-1] == "end" and isinstance(rec.error, QueryBudgetExceeded)
    assert clf.n_steps_ == 5 and clf.stop_reason_ == "the model's own query budget ran out"


class _State:
    def __init__(self):
        self.step, self.done = 0, False
        self.history = {"step": [], "queries": [], "loss": [], "accuracy": []}


def test_the_loop_checks_the_budget_and_its_reserve_before_each_step():
    def run(ledger, **kw):
        sent = []

        def step(state):
            ledger.reserve(30, "train")
            sent.append(ledger.queries)
            return StepResult(1.0)

        state = _State()
        return TrainLoop(step, ledger, step_cost=30, **kw).run(state), sent, state

    reason, sent, state = run(QueryLedger(100), reserve=20, budget_reason="no room")
    assert reason == "no room" and sent == [30, 60]  # a third step would eat the reserve
    assert state.step == 2 and state.history["queries"] == [30, 60]
    reason, sent, _ = run(QueryLedger(None), max_steps=2, max_steps_reason="two")
    assert reason == "two" and sent == [30, 60]


def test_a_step_may_stop_the_loop_and_is_still_counted():
    state = _State()
    reason = TrainLoop(lambda s: StepResult(2.0, stop="diverged"), QueryLedger(None), step_cost=1).run(state)
    assert reason == "diverged" and state.step == 1 and state.history["loss"] == [2.0]
