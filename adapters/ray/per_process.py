"""PerProcessModel: a model built once in each process that uses it, shipped as the function that builds it."""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

import numpy as np

from bar_sdk.errors import InvalidInputError

__all__ = ["PerProcessModel"]


class PerProcessModel:
    """A black box that pickles as ``factory`` and builds its model in each process on first use.

    A ``RemoteModel`` holds a connection and a credential and refuses to be
    pickled; Ray tasks, joblib's Ray backend (``GridSearchCV(n_jobs=-1)``) and
    ``audit(..., executor="ray")`` pickle the model to their workers. Wrap a
    function that builds it instead: each worker builds its own client, and
    the budget is one when the function gives every client the same
    :class:`~bar_sdk.adapters.ray.SharedRemoteLedger` (and
    :class:`~bar_sdk.adapters.ray.SharedTokenBucket`).

    Parameters
    ----------
    factory : callable
        ``factory()`` returns the model. It must read credentials itself (from
        the environment) rather than capture them: it travels to the workers.

    Examples
    --------
    >>> ledger = SharedRemoteLedger.create("team-budget", max_queries=10_000)        # doctest: +SKIP
    >>> bucket = SharedTokenBucket.create("team-rate", rate=20)                       # doctest: +SKIP
    >>> def make():                                                                     # doctest: +SKIP
    ...     return RemoteModel.from_preset("clarifai", ..., ledger=ledger, rate_limiter=bucket)
    >>> GridSearchCV(BARClassifier(PerProcessModel(make), ...), grid, n_jobs=-1)       # doctest: +SKIP
    """

    def __init__(self, factory: Callable[[], Any]) -> None:
        if not callable(factory):
            raise InvalidInputError(f"factory={factory!r}; expected a function that builds the model")
        self.factory = factory
        self._model: Any = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        """This process's model (built on first use; a forked child builds its own)."""
        with self._lock:
            if self._model is None or self._pid != os.getpid():
                self._model, self._pid = self.factory(), os.getpid()
            return self._model

    @property
    def n_classes(self) -> int:
        n_classes: int = self.model.n_classes
        return n_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.model.input_shape)

    @property
    def labels(self) -> Any:
        return getattr(self.model, "labels", None)

    @property
    def label_only(self) -> bool:
        return bool(getattr(self.model, "label_only", False))

    @property
    def ledger(self) -> Any:
        return getattr(self.model, "ledger", None)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        scores: np.ndarray = self.model.predict_proba(x)
        return scores

    def __getattr__(self, name: str) -> Any:  # anything else the model offers (quantization_step, ...)
        if name.startswith("_") or name in ("factory", "model"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def __reduce__(self) -> tuple[type[PerProcessModel], tuple[Callable[[], Any]]]:
        return (PerProcessModel, (self.factory,))

    def __deepcopy__(self, memo: dict[int, Any]) -> PerProcessModel:
        return self  # clones share this process's model (one connection, one cache)

    def __copy__(self) -> PerProcessModel:
        return self

    def __repr__(self) -> str:
        return f"PerProcessModel({getattr(self.factory, '__name__', type(self.factory).__name__)})"
