"""One table, one data split: reprogramming a black box against transfer learning on a local model.

The practitioner's question, "is reprogramming this API better than
transfer learning on a model I can download?", answered by
:func:`compare`: every method is fitted on the same training data and
scored on the same test data, beside the queries it spent and its wall
time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from bar_sdk._modules import make_callable
from bar_sdk.contract import check_int, check_model, has_gradients
from bar_sdk.errors import InvalidInputError
from bar_sdk.reprogram import BARClassifier
from bar_sdk.transfer.local import LocalTransferClassifier, trainer_of
from bar_sdk.transfer.metrics import classification_metrics
from bar_sdk.transfer.preflight import check_fit, check_test_split

__all__ = ["Comparison", "compare", "default_methods"]

logger = logging.getLogger(__name__)

#: the one default method that queries the black box; the others use the local model
BLACK_BOX_METHOD = "BAR (black box)"
COLUMNS = ("method", "model", "accuracy", "balanced_accuracy", "auc", "queries", "wall_time")


@dataclass(frozen=True)
class Comparison:
    """The table :func:`compare` returns.

    Attributes
    ----------
    rows : tuple of dict
        One per method: ``method``, ``model`` (``"black box"`` or
        ``"local"``: which model it used), ``accuracy``,
        ``balanced_accuracy``, ``auc``, ``queries`` (images sent to that
        model during fit, through the black-box contract or as white-box
        gradient calls), ``wall_time`` (seconds, fit and test predictions).
    n_train, n_test : int
    """

    rows: tuple[dict[str, Any], ...]
    n_train: int
    n_test: int

    def row(self, method: str) -> dict[str, Any]:
        for r in self.rows:
            if r["method"] == method:
                return r
        raise InvalidInputError(f"method={method!r}; expected one of {[r['method'] for r in self.rows]}")

    def to_dict(self) -> dict[str, Any]:
        return {"n_train": self.n_train, "n_test": self.n_test, "rows": [dict(r) for r in self.rows]}

    def to_markdown(self) -> str:
        """A markdown table (three decimals)."""
        head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
        body = "".join("| " + " | ".join(_cell(r[c]) for c in COLUMNS) + " |\n" for r in self.rows)
        return head + body

    def __repr__(self) -> str:
        return f"Comparison({len(self.rows)} methods, n_train={self.n_train}, n_test={self.n_test})"


def default_methods(
    model: Any = None,
    local_model: Any = None,
    *,
    max_queries: int = 20_000,
    epochs: int = 20,
    random_state: int | None = 0,
    bar_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The standard line-up, as unfitted scikit-learn estimators.

    - ``"BAR (black box)"``: :class:`BARClassifier` on ``model``, ``max_queries``;
    - ``"white-box reprogramming"``: the same program trained with
      ``local_model``'s exact gradients for ``epochs`` epochs;
    - ``"linear probe"``, ``"fine-tuning"``, ``"from scratch"``:
      :class:`LocalTransferClassifier` on ``local_model`` (the last two need
      a torch model).

    Methods whose model is missing, or lacks what they need, are left out.
    """
    params = dict(bar_params or {})
    out: dict[str, Any] = {}
    if model is not None:
        out[BLACK_BOX_METHOD] = BARClassifier(model, max_queries=max_queries, random_state=random_state, **params)
    if local_model is not None:
        if has_gradients(local_model):
            out["white-box reprogramming"] = BARClassifier(
                local_model, estimator="exact", max_epochs=epochs, random_state=random_state, **params
            )
        out["linear probe"] = LocalTransferClassifier(local_model, mode="probe", random_state=random_state)
        if trainer_of(local_model) is not None:
            out["fine-tuning"] = LocalTransferClassifier(
                local_model, mode="finetune", epochs=epochs, random_state=random_state
            )
            out["from scratch"] = LocalTransferClassifier(
                local_model, mode="scratch", epochs=epochs, random_state=random_state
            )
    return out


def compare(
    X_train: Any,
    y_train: Any,
    X_test: Any,
    y_test: Any,
    *,
    model: Any = None,
    local_model: Any = None,
    methods: Mapping[str, Any] | None = None,
    max_queries: int = 20_000,
    epochs: int = 20,
    random_state: int | None = 0,
    bar_params: Mapping[str, Any] | None = None,
) -> Comparison:
    """Fit every method on the same split and return one table.

    Parameters
    ----------
    X_train, y_train, X_test, y_test : target data
        Images (uint8 or floats in [0, 1]) or tabular rows, integer labels.
    model : black box, optional
        The model you pay to query (BAR).
    local_model : model, optional
        A model you can download (white-box reprogramming, probe,
        fine-tuning, and its architecture trained from scratch).
    methods : mapping name -> estimator or None, optional
        Added to :func:`default_methods` (a name already there replaces it;
        ``None`` removes it). Any estimator with ``fit`` and
        ``predict_proba`` works; its ``queries_`` attribute, when present,
        fills the queries column.
    max_queries : int, default 20000
        BAR's budget on ``model``.
    epochs : int, default 20
        Epochs of the white-box, fine-tuning and from-scratch methods.
    random_state : int, optional
    bar_params : mapping, optional
        Extra :class:`BARClassifier` parameters (BAR and white-box).

    Returns
    -------
    Comparison

    Every :class:`BARClassifier` method's checks and the test split are
    made before the first query, and the methods on ``model`` are fitted
    after the others, so a failing method costs no paid query.

    Examples
    --------
    >>> table = compare(Xa, ya, Xb, yb, model=api, local_model=cnn, max_queries=50_000)   # doctest: +SKIP
    >>> print(table.to_markdown())                                                      # doctest: +SKIP
    """
    check_int(max_queries, "max_queries", low=1)
    check_int(epochs, "epochs", low=1)
    plan = default_methods(
        model, local_model, max_queries=max_queries, epochs=epochs, random_state=random_state, bar_params=bar_params
    )
    own: set[str] = set()  # methods the caller passed: their model column is found by identity
    if methods is not None:
        if not isinstance(methods, Mapping):
            raise InvalidInputError(f"methods={type(methods).__name__}; expected a dict of name -> estimator")
        for name, est in methods.items():
            if est is None:
                plan.pop(name, None)
            elif not (callable(getattr(est, "fit", None)) and callable(getattr(est, "predict_proba", None))):
                raise InvalidInputError(
                    f"methods[{name!r}]={type(est).__name__}; expected an estimator with fit and predict_proba"
                )
            else:
                plan[name] = est
                own.add(name)
    if not plan:
        raise InvalidInputError("nothing to compare: expected model=, local_model= or methods=")
    bars = [est for est in plan.values() if isinstance(est, BARClassifier)]
    for est in bars:  # every BAR fit's checks before the first query of any
        check_fit(est, X_train, y_train)
    layout = bars[0]._layout_and_program(X_train, check_model(bars[0].model)[1])[0] if bars else None
    check_test_split(X_train, y_train, X_test, y_test, layout)
    y_test = np.asarray(y_test)
    # methods on the paid model go last: a failure elsewhere then costs no query (rows keep the plan's order)
    order = sorted(plan, key=lambda name: model is not None and getattr(plan[name], "model", None) is model)
    done = {}
    for name in order:
        est = plan[name]
        started = time.perf_counter()
        est.fit(X_train, y_train)
        proba = est.predict_proba(X_test)
        wall = time.perf_counter() - started
        used = getattr(est, "model", None)
        if name not in own:
            where = "black box" if name == BLACK_BOX_METHOD else "local"
        else:
            where = (
                "black box"
                if model is not None and used is model
                else ("local" if local_model is not None and used is local_model else "-")
            )
        done[name] = {
            "method": name,
            "model": where,
            **classification_metrics(y_test, proba),
            "queries": int(getattr(est, "queries_", 0)),
            "wall_time": round(wall, 3),
        }
        logger.info("%s: %s", name, done[name])
    rows = [done[name] for name in plan]
    return Comparison(rows=tuple(rows), n_train=len(np.asarray(y_train)), n_test=len(y_test))


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if not np.isfinite(v) else f"{v:.3f}"
    return str(v)


make_callable(__name__)  # bar_sdk.transfer.compare(...) runs compare(); the name still gives this module
