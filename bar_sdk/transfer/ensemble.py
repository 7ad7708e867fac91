"""Several local models seen as one: the source of an ensemble transfer attack."""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from bar_sdk.contract import check_int, check_model, check_scores, has_gradients
from bar_sdk.errors import InvalidInputError, QueryBudgetExceeded
from bar_sdk.ledger import QueryLedger, refuse_non_finite

__all__ = ["EnsembleModel"]

#: floor under a member's probability before its log (a top-k answer has zeros)
_FLOOR = 1e-30


class EnsembleModel:
    """The weighted mean of several models' log-probabilities, renormalised.

    Averaging log-probabilities (logits, up to a constant per image) is the
    ensemble of Liu et al. (ICLR 2017) that makes adversarial examples
    transfer better than any single source. The ensemble satisfies the
    black-box contract and, exactly when every member offers gradients, the
    white-box capability too (``log_proba_gradient``), so white-box attacks
    (FGSM, PGD, ...) run on it as on one model.

    Parameters
    ----------
    models : sequence or mapping of models
        At least one; all with the same ``n_classes`` and ``input_shape``.
        A mapping keeps the names for ``repr``.
    weights : sequence of float, optional
        One non-negative weight per member (normalised to sum to one);
        equal weights by default.
    max_queries : int, optional
        Hard cap on the images sent to the members, all together; a call
        that would cross it is refused whole before any member is asked.

    Attributes
    ----------
    n_classes : int
    input_shape : tuple (C, H, W)
    labels : tuple of str or None
        The first member's label names.
    names : tuple of str
    ledger : QueryLedger
        Every image sent to every member, by member name (``by_purpose``):
        one query of the ensemble on ``n`` images sends ``n`` to each member
        (a gradient call ``2 n``: a reading pass and a backward pass), so a
        ledger around the ensemble counts ``n`` while this one counts each
        member's share. A paid member (a ``RemoteModel``) also keeps its own
        bill.

    Examples
    --------
    >>> source = EnsembleModel({"cnn": cnn, "mlp": mlp})          # doctest: +SKIP
    >>> PGD(source, eps=8 / 255).run(x, y)                         # doctest: +SKIP
    """

    def __new__(cls, models: Any = (), weights: Any = None, max_queries: Any = None) -> EnsembleModel:
        # the white-box capability is there exactly when every member has it (contract.has_gradients)
        members = (
            list(models.values())
            if isinstance(models, Mapping)
            else (list(models) if isinstance(models, (list, tuple)) else [])
        )
        if cls is EnsembleModel and members and all(has_gradients(m) for m in members):
            cls = _GradientEnsemble
        return super().__new__(cls)

    def __init__(
        self,
        models: Sequence[Any] | Mapping[str, Any],
        weights: Sequence[float] | None = None,
        max_queries: int | None = None,
    ) -> None:
        if isinstance(models, Mapping):
            names, members = tuple(str(k) for k in models), list(models.values())
        elif isinstance(models, (list, tuple)):
            members = list(models)
            names = tuple(f"{type(m).__name__}#{i}" for i, m in enumerate(members))
        else:
            raise InvalidInputError(f"models={type(models).__name__}; expected a list or a dict of models")
        if not members:
            raise InvalidInputError("models is empty; expected at least one model")
        n_classes, shape = check_model(members[0], f"models[{names[0]!r}]")
        for name, m in zip(names[1:], members[1:], strict=False):
            k, s = check_model(m, f"models[{name!r}]")
            if (k, s) != (n_classes, shape):
                raise InvalidInputError(
                    f"models[{name!r}] has n_classes={k}, input_shape={s}; expected n_classes={n_classes}, "
                    f"input_shape={shape} like models[{names[0]!r}]"
                )
        if weights is None:
            w = np.full(len(members), 1.0 / len(members))
        else:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (len(members),) or not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
                raise InvalidInputError(
                    f"weights={weights!r}; expected {len(members)} finite non-negative numbers, not all zero"
                )
            w = w / w.sum()
        if len(set(names)) != len(names):
            raise InvalidInputError(f"models has the names {list(names)}; expected each member named once")
        self.ledger = QueryLedger(check_int(max_queries, "max_queries", low=1, allow_none=True))
        self.models = tuple(members)
        self.names = names
        self.weights = w
        self.n_classes = n_classes
        self.input_shape = shape
        self.labels = getattr(members[0], "labels", None)

    @property
    def queries(self) -> int:
        """Images sent to the members so far, all together."""
        return self.ledger.queries

    def _admit(self, x: Any, passes: int) -> np.ndarray:
        """``x`` checked (finite) and the whole call's member images checked against ``max_queries``."""
        arr = np.asarray(x)
        refuse_non_finite(arr)
        need = passes * len(arr) * len(self.models)
        if not self.ledger.can_afford(need):
            raise QueryBudgetExceeded(need, self.ledger.queries, self.ledger.max_queries)  # type: ignore[arg-type]
        return arr

    def _ask(self, name: str, call: Callable[[], Any], n: int) -> Any:
        """One member call of ``n`` images, counted under the member's name before it leaves."""
        self.ledger.reserve(n, name)
        try:
            return call()
        except QueryBudgetExceeded:  # the member's own budget refused it whole: nothing left
            self.ledger.release(n, name)
            raise
        except BaseException:
            self.ledger.mark_failed(n)
            raise

    def _member_logp(self, x: np.ndarray) -> list[np.ndarray]:
        return [
            np.log(
                np.maximum(
                    check_scores(
                        self._ask(name, functools.partial(m.predict_proba, x), len(x)), len(x), self.n_classes, name
                    ),
                    _FLOOR,
                )
            )
            for name, m in zip(self.names, self.models, strict=False)
        ]

    def _combine(self, logps: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(mixed, log_softmax(mixed))`` with ``mixed = sum_i w_i logp_i``."""
        mixed = sum(w * lp for w, lp in zip(self.weights, logps, strict=False))
        top = mixed.max(axis=1, keepdims=True)
        return mixed, mixed - top - np.log(np.exp(mixed - top).sum(axis=1, keepdims=True))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Ensemble probabilities ``(n, n_classes)``: each member queried once (and counted)."""
        _, logp = self._combine(self._member_logp(self._admit(x, 1)))
        proba: np.ndarray = np.exp(logp)
        return proba

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}: {w:.3g}" for n, w in zip(self.names, self.weights, strict=False))
        return f"EnsembleModel({{{parts}}}, n_classes={self.n_classes}, input_shape={self.input_shape})"


class _ConstantGradient:
    """A ``loss_fn`` that returns ``share`` as dloss/dlogp whatever the log-probabilities (back-propagation of it)."""

    def __init__(self, share: np.ndarray) -> None:
        self.share = share

    def __call__(self, logp: np.ndarray) -> tuple[float, np.ndarray]:
        return 0.0, self.share


class _GradientEnsemble(EnsembleModel):
    """An ensemble whose members all offer gradients: it offers them too."""

    def log_proba_gradient(
        self, x: np.ndarray, loss_fn: Callable[[np.ndarray], tuple[float, np.ndarray]]
    ) -> tuple[float, np.ndarray]:
        """Exact gradient of ``loss_fn`` of the ensemble's log-probabilities.

        Two passes per member: one reads its log-probabilities, one
        back-propagates its share of ``dloss/dlogp`` (both counted).
        """
        x = self._admit(x, 2)
        logps = []
        for name, m in zip(self.names, self.models, strict=False):
            seen: dict[str, np.ndarray] = {}

            def read(logp: np.ndarray, seen: dict[str, np.ndarray] = seen) -> tuple[float, np.ndarray]:
                seen["logp"] = np.asarray(logp, dtype=np.float64)
                return 0.0, np.zeros_like(seen["logp"])

            self._ask(name, functools.partial(m.log_proba_gradient, x, read), len(x))
            logps.append(seen["logp"])
        _, logp = self._combine(logps)
        loss, g = loss_fn(logp)
        g = np.asarray(g, dtype=np.float64)
        # through log_softmax: dL/dmixed = g - softmax * sum(g); then dmixed/dlogp_i = w_i
        g_mixed = g - np.exp(logp) * g.sum(axis=1, keepdims=True)
        grad = np.zeros(x.shape, dtype=np.float64)
        for name, w, m in zip(self.names, self.weights, self.models, strict=False):
            if w == 0:
                continue
            _, gx = self._ask(name, functools.partial(m.log_proba_gradient, x, _ConstantGradient(w * g_mixed)), len(x))
            grad += np.asarray(gx, dtype=np.float64)
        return float(loss), grad.astype(np.float32)
