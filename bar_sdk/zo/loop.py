"""The one zeroth-order training loop: budget checks, stop reasons and callbacks around a step.

:class:`TrainLoop` drives every universal-input training in bar-sdk
(:class:`~bar_sdk.reprogram.BARClassifier` and
:class:`~bar_sdk.attacks.UniversalPerturbation`). The caller gives it a
*step*: a function of the train state that asks its estimator for points,
sends them (one ledger-counted model call, typically through
:func:`bar_sdk.zo.zo_step`), tells the losses and returns a
:class:`StepResult`. Before each step the loop checks, in this order:

1. ``max_steps`` (stop reason ``max_steps_reason``);
2. the budget: the ledger must afford ``step_cost`` plus ``reserve`` (what a
   later pass, e.g. BAR's readout pass, is promised), else stop with
   ``budget_reason``. The check comes before anything is sent, so a step
   that would not fit never starts and the reserve is never spent on steps.

After each step it counts it (``state.step``), appends ``step``,
``queries``, ``loss`` and ``accuracy`` to ``state.history`` and calls every
callback's ``on_step_end``. A step may itself ask to stop
(``StepResult.stop``, e.g. a perturbation that turned NaN).

Callback protocol
-----------------
A callback is an object with any of these methods (all optional), or a
plain callable, which is taken as ``on_step_end``:

``on_train_begin(loop)``
    Before the first step (also when a resumed run has no step left).
``on_step_end(loop, result) -> None | bool | str``
    After each step, with the :class:`StepResult`; ``loop.state`` holds the
    counted step (``loop.state.step``, ``loop.state.history``) and
    ``loop.ledger`` the queries. Return a true value to stop training after
    this step: a string is the stop reason, ``True`` gives
    ``"stopped by <callback>"``. Every callback still sees the step it was
    stopped at (a checkpoint saved by a later callback is not lost).
``on_train_end(loop)``
    Once, when training is over (after the caller's ``finish`` pass),
    also when it ended with an exception: ``loop.error`` is that exception
    (or None) and ``loop.stop_reason`` the reason.

Callbacks run in the order given. They may read anything on the loop and
must not send queries of their own except through ``loop.ledger``'s
model (an uncounted query would break the budget promise). A callback's
own state is not checkpointed: a resumed fit calls it afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = [
    "TrainLoop",
    "StepResult",
    "Callback",
    "ProgressBar",
    "EarlyStopping",
    "CheckpointEveryStep",
    "check_callbacks",
]

logger = logging.getLogger(__name__)


class StepResult:
    """What one step reports: its mean ``loss``, ``accuracy`` (or None) and, optionally, a reason to ``stop``.

    ``info`` carries whatever else a caller's own callbacks need (BAR's iterative mapping reads the batch's
    scores there).
    """

    __slots__ = ("loss", "accuracy", "stop", "info")

    def __init__(self, loss: float, accuracy: float | None = None, stop: str | None = None, **info: Any) -> None:
        self.loss, self.accuracy, self.stop, self.info = loss, accuracy, stop, info


class Callback:
    """Base class with every hook of the protocol doing nothing (subclassing it is optional)."""

    def on_train_begin(self, loop: TrainLoop) -> None:
        pass

    def on_step_end(self, loop: TrainLoop, result: StepResult) -> None | bool | str:
        return None

    def on_train_end(self, loop: TrainLoop) -> None:
        pass


_HOOKS = ("on_train_begin", "on_step_end", "on_train_end")


def check_callbacks(callbacks: Any, name: str = "callbacks") -> list[Any]:
    """``callbacks`` (one, a list, or None) as a list, each callable or with a hook of the protocol, or raise."""
    from bar_sdk.errors import InvalidInputError

    if callbacks is None:
        return []
    items = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
    for item in items:
        if not (callable(item) or any(hasattr(item, hook) for hook in _HOOKS)):
            raise InvalidInputError(
                f"{name} holds {item!r}; expected callables or objects with on_step_end, "
                "on_train_begin or on_train_end (see bar_sdk.zo.loop)"
            )
    return items


def _hook(callback: Any, name: str) -> Callable[..., Any] | None:
    hook: Callable[..., Any] | None
    if name == "on_step_end" and not hasattr(callback, name) and callable(callback):
        hook = callback  # a plain callable is its own on_step_end
    else:
        hook = getattr(callback, name, None)
    return hook


class TrainLoop:
    """Run ``step(state)`` until ``max_steps``, the budget or a callback ends training.

    Parameters
    ----------
    step : callable
        ``step(state) -> StepResult``: one training step on ``state`` (which
        it updates: parameters, its own schedule); the loop counts it.
    ledger : QueryLedger
        The ledger every query of the step is counted in.
    step_cost : int
        Images one step sends at most.
    reserve : int
        Images kept for after training; a step runs only when
        ``step_cost + reserve`` still fit.
    max_steps : int, optional
        Counted on ``state.step``, which a resumed state carries over.
    callbacks : iterable of callbacks (see the module's protocol)
    default_reason, max_steps_reason, budget_reason : str
        Stop reasons: when the state is already done (a finished checkpoint),
        when ``max_steps`` is reached, when the budget has no room.
    """

    def __init__(
        self,
        step: Callable[[Any], StepResult],
        ledger: Any,
        *,
        step_cost: int,
        reserve: int = 0,
        max_steps: int | None = None,
        callbacks: Iterable[Any] = (),
        default_reason: str = "budget",
        max_steps_reason: str = "max_steps reached",
        budget_reason: str = "no room for another step",
    ) -> None:
        self.step, self.ledger = step, ledger
        self.step_cost, self.reserve, self.max_steps = int(step_cost), int(reserve), max_steps
        self.callbacks = list(callbacks)
        self.reasons = (default_reason, max_steps_reason, budget_reason)
        self.stop_reason = default_reason
        self.state: Any = None
        self.error: BaseException | None = None

    def _call(self, name: str, *args: Any) -> list[tuple[Any, Any]]:
        out = []
        for callback in self.callbacks:
            hook = _hook(callback, name)
            out.append((callback, None if hook is None else hook(self, *args)))
        return out

    def run(self, state: Any, finish: Callable[[], None] | None = None) -> str:
        """Train ``state`` (needs ``step``, ``done`` and ``history``); then ``finish()``; return the stop reason.

        ``finish`` (e.g. a readout pass) runs before the callbacks' ``on_train_end``, so they see its result.
        """
        self.state, self.error = state, None
        self.stop_reason = self.reasons[0]
        self._call("on_train_begin")
        try:
            while not state.done:
                if self.max_steps is not None and state.step >= self.max_steps:
                    self.stop_reason = self.reasons[1]
                    break
                if not self.ledger.can_afford(self.step_cost + self.reserve):
                    self.stop_reason = self.reasons[2]
                    break
                result = self.step(state)
                state.step += 1
                for key, value in (
                    ("step", state.step),
                    ("queries", self.ledger.queries),
                    ("loss", result.loss),
                    ("accuracy", result.accuracy),
                ):
                    state.history[key].append(value)
                asked = [(cb, stop) for cb, stop in self._call("on_step_end", result) if stop]
                if result.stop is not None:
                    self.stop_reason = result.stop
                    break
                if asked:
                    callback, stop = asked[0]
                    self.stop_reason = stop if isinstance(stop, str) else f"stopped by {_name(callback)}"
                    logger.info("training stopped at step %d: %s", state.step, self.stop_reason)
                    break
            if finish is not None:
                finish()
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self._call("on_train_end")
        return self.stop_reason


def _name(callback: Any) -> str:
    return getattr(callback, "__qualname__", None) or type(callback).__name__


class ProgressBar(Callback):
    """A tqdm bar over the budget (``by_queries``: the ledger's cap) or over ``max_steps``.

    Shows the last step's loss and accuracy and the queries spent; ``postfix``
    (a callable of the loop) adds fields at the end (BAR: ``readout=fitted``).
    """

    def __init__(
        self, desc: str = "fit", by_queries: bool = True, postfix: Callable[[Any], dict[str, Any]] | None = None
    ) -> None:
        self.desc, self.by_queries, self.postfix = desc, by_queries, postfix
        self.bar: tqdm[Any] | None = None

    def on_train_begin(self, loop: TrainLoop) -> None:
        from tqdm.auto import tqdm

        if self.by_queries:
            self.bar = tqdm(
                total=loop.ledger.max_queries,
                initial=loop.ledger.queries,
                unit="q",
                desc=self.desc,
                mininterval=0.5,
                unit_scale=True,
            )
        else:
            self.bar = tqdm(total=loop.max_steps, initial=loop.state.step, unit="step", desc=self.desc, mininterval=0.5)

    def _figures(self, loop: TrainLoop) -> dict[str, Any]:
        history = loop.state.history
        if not history["loss"]:
            return {}
        last = {"loss": f"{history['loss'][-1]:.3f}"}
        if history["accuracy"][-1] is not None:
            last["acc"] = f"{history['accuracy'][-1]:.2f}"
        return last

    def on_step_end(self, loop: TrainLoop, result: StepResult) -> None:
        assert self.bar is not None  # on_train_begin made it
        self.bar.update(loop.ledger.queries - self.bar.n if self.by_queries else 1)
        self.bar.set_postfix(**self._figures(loop), queries=f"{loop.ledger.queries:,}", refresh=False)

    def on_train_end(self, loop: TrainLoop) -> None:
        if self.bar is None:
            return
        if loop.error is None:  # what the finish pass spent, and the figures of the last step in view
            self.bar.update(loop.ledger.queries - self.bar.n if self.by_queries else 0)
            extra = self.postfix(loop) if self.postfix is not None else {}
            self.bar.set_postfix(**self._figures(loop), queries=f"{loop.ledger.queries:,}", **extra, refresh=False)
        self.bar.close()
        self.bar = None


class EarlyStopping(Callback):
    """Stop when the minibatch loss has not improved for ``patience`` steps.

    The loss followed is an exponential moving average with factor
    ``smoothing`` (minibatch losses are noisy); an improvement must beat the
    best average by more than ``min_delta``. Queries are never spent on this:
    it reads the losses the steps already paid for.
    """

    def __init__(self, patience: int = 50, min_delta: float = 0.0, smoothing: float = 0.9) -> None:
        from bar_sdk.contract import check_float, check_int

        self.patience = check_int(patience, "patience", low=1)
        self.min_delta = check_float(min_delta, "min_delta", low=0.0)
        self.smoothing = check_float(smoothing, "smoothing", low=0.0, high=1.0)
        self.on_train_begin(None)

    def on_train_begin(self, loop: TrainLoop | None) -> None:
        self.average: float | None = None
        self.best = float("inf")
        self.waited = 0

    def on_step_end(self, loop: TrainLoop, result: StepResult) -> str | None:
        loss = float(result.loss)
        self.average = loss if self.average is None else self.smoothing * self.average + (1 - self.smoothing) * loss
        if self.average < self.best - self.min_delta:
            self.best, self.waited = self.average, 0
            return None
        self.waited += 1
        if self.waited >= self.patience:
            return f"early stop: no improvement of the smoothed loss for {self.patience} steps"
        return None


class CheckpointEveryStep(Callback):
    """Call ``save()`` after every step (last in the list, so it writes what every other callback changed)."""

    def __init__(self, save: Callable[[], Any]) -> None:
        self.save = save

    def on_step_end(self, loop: TrainLoop, result: StepResult) -> None:
        self.save()
