"""The one place queries are counted and budgets enforced.

Every image that bar-sdk sends to a model goes through a
:class:`MeteredModel`, which asks its :class:`QueryLedger` for room *before*
the batch leaves and records it when the model has answered. A batch that
would cross the budget is refused whole, so the budget is never exceeded,
not even by one batch.

A call that fails is settled part by part (see :meth:`MeteredModel.predict_proba`):
a model that knows what reached the wire says so on its exception
(``images_sent``, ``images_billed``), and exactly that is counted.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from typing import Any, Callable, Iterator

import numpy as np

from bar_sdk.contract import check_int, check_model, check_scores, has_gradients
from bar_sdk.errors import InvalidInputError, QueryBudgetExceeded

__all__ = ["QueryLedger", "MeteredModel", "NonFiniteImagesError", "refuse_non_finite", "checked_batch"]


class QueryLedger:
    """Counts images sent to a model, by purpose, under an optional hard cap.

    Parameters
    ----------
    max_queries : int or None
        Hard cap on images counted against this ledger; ``None`` for none.

    Attributes
    ----------
    queries : int
        Images answered so far (all purposes).
    by_purpose : dict[str, int]
        The same count split by purpose (``"mapping"``, ``"train"``, ...).
    calls : int
        Batches answered.
    failed : int
        Images of calls that raised which reached the model without a usable
        answer (sent, answer unknown or refused). They are counted in
        ``queries`` too: an image that left may have been billed.
    """

    def __init__(self, max_queries: int | None = None) -> None:
        self.max_queries = check_int(max_queries, "max_queries", low=1, allow_none=True)
        self.queries = 0
        self.calls = 0
        self.failed = 0
        self.by_purpose: dict[str, int] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # a lock cannot be pickled: a fitted estimator still can
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def remaining(self) -> int | None:
        """Images that may still be sent, or ``None`` without a cap."""
        return None if self.max_queries is None else self.max_queries - self.queries

    def can_afford(self, n: int) -> bool:
        """True when a batch of ``n`` images fits in what is left."""
        return self.max_queries is None or self.queries + n <= self.max_queries

    def reserve(self, n: int, purpose: str) -> None:
        """Count ``n`` images before they leave, or raise without counting."""
        with self._lock:
            if not self.can_afford(n):
                raise QueryBudgetExceeded(n, self.queries, self.max_queries)  # type: ignore[arg-type]
            self.queries += n
            self.calls += 1
            self.by_purpose[purpose] = self.by_purpose.get(purpose, 0) + n

    def release(self, n: int, purpose: str, *, whole: bool = True) -> None:
        """Take back ``n`` reserved images that never left (the model refused them unsent).

        ``whole=False`` when the call's other images did leave: the call still counts.
        """
        with self._lock:
            self.queries -= n
            self.calls -= int(whole)
            left = self.by_purpose.get(purpose, 0) - n
            if left > 0:
                self.by_purpose[purpose] = left
            else:
                self.by_purpose.pop(purpose, None)

    def mark_failed(self, n: int) -> None:
        with self._lock:
            self.failed += n

    def settle(self, n: int, purpose: str, exc: BaseException) -> None:
        """Count what a call of ``n`` reserved images that raised ``exc`` really sent.

        A model that knows says so on the exception: ``images_sent`` images reached it
        (each once), ``images_billed`` of them were answered and billed. Those sent are
        counted (the unbilled ones as :attr:`failed`), the rest is given back. Without
        that: a :class:`QueryBudgetExceeded` sent nothing (all given back); any other
        error may have come after sending (all counted, as failed).
        """
        sent = getattr(exc, "images_sent", None)
        if isinstance(sent, int) and not isinstance(sent, bool) and 0 <= sent <= n:
            billed = getattr(exc, "images_billed", 0)
            billed = billed if isinstance(billed, int) and 0 <= billed <= sent else 0
            if sent < n:
                self.release(n - sent, purpose, whole=sent == 0)
            self.mark_failed(sent - billed)
        elif isinstance(exc, QueryBudgetExceeded):
            self.release(n, purpose)
        else:
            self.mark_failed(n)

    def state_dict(self) -> dict[str, Any]:
        return {
            "max_queries": self.max_queries,
            "queries": self.queries,
            "calls": self.calls,
            "failed": self.failed,
            "by_purpose": dict(self.by_purpose),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.queries = int(state["queries"])
        self.calls = int(state["calls"])
        self.failed = int(state["failed"])
        self.by_purpose = {str(k): int(v) for k, v in state["by_purpose"].items()}

    def __repr__(self) -> str:
        cap = "no cap" if self.max_queries is None else f"max_queries={self.max_queries}"
        return f"QueryLedger(queries={self.queries}, {cap}, by_purpose={self.by_purpose})"


class NonFiniteImagesError(InvalidInputError):
    """A batch held NaN or infinite values and was refused before it was counted or sent."""


def refuse_non_finite(x: np.ndarray, name: str = "x") -> bool:
    """Raise before anything is sent when ``x`` holds NaN or infinite values (never sent to a model).

    One pass over ``x`` (its minimum and maximum, which NaN and infinities
    reach); returns True when every value also lies in [0, 1], the range
    the adapters accept (see :func:`checked_batch`).
    """
    if x.size == 0:
        return True
    lo, hi = x.min(), x.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = int(x.size - np.count_nonzero(np.isfinite(x)))
        raise NonFiniteImagesError(
            f"{name} has {bad} NaN or infinite values; expected finite images in [0, 1] (nothing was sent)"
        )
    return bool(lo >= 0.0 and hi <= 1.0)


#: the batch a MeteredModel is handing to its model right now, already scanned (finite, in [0, 1])
_CHECKED: contextvars.ContextVar[np.ndarray | None] = contextvars.ContextVar("bar_sdk_checked_batch", default=None)


def checked_batch(x: Any, input_shape: tuple[int, ...]) -> bool:
    """True when ``x`` is the very array a :class:`MeteredModel` is sending from this thread or task.

    That array was scanned once before it was counted: finite, float32,
    C-contiguous NCHW of ``input_shape``, every value in [0, 1]. An adapter
    (``bar_sdk.adapters``) then skips its own whole-batch scan; anything else
    (a direct call, a copy, another thread's batch) is scanned as before.
    """
    mine = _CHECKED.get()
    return (
        mine is not None
        and x is mine
        and x.dtype == np.float32
        and x.flags.c_contiguous
        and x.shape[1:] == tuple(input_shape)
    )


@contextlib.contextmanager
def _handing_over(x: np.ndarray, checked: bool) -> Iterator[None]:
    token = _CHECKED.set(x if checked else None)
    try:
        yield
    finally:
        _CHECKED.reset(token)


class MeteredModel:
    """A model seen through a ledger: every call is budgeted, counted and checked.

    The wrapper itself satisfies the black-box contract, so it can be passed
    wherever a model is expected. Scores are validated (shape, finite,
    non-negative) and returned as float64. Each batch is scanned once before
    it is counted (:func:`refuse_non_finite`): a NaN or infinite value is
    refused with :class:`NonFiniteImagesError`, nothing counted or sent; an
    adapter handed that same batch skips its own scan (:func:`checked_batch`).

    Parameters
    ----------
    model : black box
        Anything with ``predict_proba``, ``n_classes`` and ``input_shape``.
    ledger : QueryLedger, optional
        Where calls are counted; a fresh uncapped ledger by default.
    batch_size : int, optional
        Largest batch handed to the model at once; larger requests are split
        (the whole request is checked against the budget before its first
        part leaves, and each part is counted as it goes).

    Notes
    -----
    The ledger follows what reached the model, part by part. A part that is
    answered counts all its images (cache hits of a remote model included: the
    algorithm got an answer for each). A part whose call raises counts what
    :meth:`QueryLedger.settle` finds on the exception: for a
    :class:`~bar_sdk.adapters.remote.RemoteModel`, exactly the images whose request
    reached the API; the parts after it are never sent, nor counted.
    """

    def __init__(self, model: Any, ledger: QueryLedger | None = None, batch_size: int | None = None) -> None:
        self.n_classes, self.input_shape = check_model(model)
        self.model = model
        self.ledger = ledger if ledger is not None else QueryLedger()
        self.batch_size = check_int(batch_size, "batch_size", low=1, allow_none=True)
        self.labels = getattr(model, "labels", None)

    def predict_proba(self, x: np.ndarray, purpose: str = "query") -> np.ndarray:
        """Scores for ``x`` (float32 NCHW in [0, 1]), counted under ``purpose``."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != tuple(self.input_shape):
            raise InvalidInputError(f"x has shape {x.shape}; expected (n, {', '.join(map(str, self.input_shape))})")
        n = x.shape[0]
        if n == 0:
            return np.zeros((0, self.n_classes))
        in_range = refuse_non_finite(x)  # the one scan before the model: nothing non-finite leaves
        if not self.ledger.can_afford(n):  # refuse a split request whole, before its first part leaves
            raise QueryBudgetExceeded(n, self.ledger.queries, self.ledger.max_queries)  # type: ignore[arg-type]
        step = self.batch_size or n
        parts = []
        for start in range(0, n, step):
            chunk = x[start : start + step]
            self.ledger.reserve(len(chunk), purpose)
            try:
                with _handing_over(chunk, in_range):
                    out = self.model.predict_proba(chunk)
            except BaseException as exc:
                self.ledger.settle(len(chunk), purpose, exc)
                raise
            parts.append(check_scores(out, len(chunk), self.n_classes))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    @property
    def has_gradients(self) -> bool:
        return has_gradients(self.model)

    def log_proba_gradient(
        self, x: np.ndarray, loss_fn: Callable[[np.ndarray], tuple[float, np.ndarray]], purpose: str = "white-box"
    ) -> tuple[float, np.ndarray]:
        """Exact gradients (white-box), counted like any other query."""
        if not self.has_gradients:
            raise InvalidInputError(
                f"model={type(self.model).__name__} offers no gradients; expected a model with "
                "log_proba_gradient (e.g. bar_sdk.adapters.TorchModel) for white-box training"
            )
        x = np.asarray(x, dtype=np.float32)
        in_range = refuse_non_finite(x)
        self.ledger.reserve(len(x), purpose)
        try:
            with _handing_over(x, in_range):
                answer: tuple[float, np.ndarray] = self.model.log_proba_gradient(x, loss_fn)
                return answer
        except BaseException as exc:
            self.ledger.settle(len(x), purpose, exc)
            raise

    def __repr__(self) -> str:
        return f"MeteredModel({type(self.model).__name__}, {self.ledger!r})"
