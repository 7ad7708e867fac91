"""Queries saved by a free local surrogate: warm start and surrogate-guided estimation.

A practitioner's question: "can a program trained on a model I can download
cut the queries I pay for?" :func:`warm_start_study` answers it on the
user's own data. For each seed it trains a program white-box on the
surrogate (free), then fits BAR on the black box at several query budgets,

- ``"cold"``: from a random program (the reference),
- ``"warm"``: starting from the surrogate's program (``initial_program=``),
- ``"guided"``: random start, directions biased toward the surrogate's
  gradient (``surrogate=``, prior-guided random gradient-free estimation),
- ``"warm+guided"``: both,
- ``"warm_shuffled"``: a control, the surrogate's parameters in a random
  order (a start as far from zero, with none of its content),
- ``"distilled"``: a warm start from a program trained on a copy of the
  surrogate fine-tuned on ``distill_queries`` of the black box's answers, in
  rounds (:func:`distilled_program`); those queries count in its budget,

and measures each on held-out data. :meth:`WarmStartStudy.savings` reads
off the smallest budget at which a strategy reaches the cold start's final
score.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from bar_sdk.contract import check_int, check_model, has_gradients
from bar_sdk.errors import InvalidInputError
from bar_sdk.reprogram import BARClassifier
from bar_sdk.transfer.distill import _OWN, distilled_program
from bar_sdk.transfer.local import trainer_of
from bar_sdk.transfer.metrics import classification_metrics
from bar_sdk.transfer.preflight import check_fit, check_test_split

__all__ = ["STRATEGIES", "WarmStartStudy", "warm_start_study"]

logger = logging.getLogger(__name__)

STRATEGIES = ("cold", "warm", "guided", "warm+guided", "warm_shuffled", "distilled")
METRICS = ("accuracy", "balanced_accuracy", "auc")


@dataclass(frozen=True)
class WarmStartStudy:
    """Test scores of BAR fits at several budgets, per strategy and seed.

    Attributes
    ----------
    rows : tuple of dict
        One per fit: ``strategy``, ``seed``, ``budget``, ``queries`` (every
        image sent to the black box before predicting: the fit's, plus the
        distillation's for ``"distilled"``), ``distill_queries``,
        ``eval_queries``, ``surrogate_queries``, the three metrics and
        ``fit_seconds``.
    surrogate_rows : tuple of dict
        One per seed and surrogate (``"surrogate"``: ``"as given"`` or
        ``"distilled"``): the white-box program on it (its metrics on the
        test data *through the surrogate*, its gradient calls, seconds; for
        the distilled copy also its fidelity, see :class:`DistilledSurrogate`).
    reference : str
        The strategy whose largest budget sets the level to reach (``"cold"``).
    """

    rows: tuple[dict[str, Any], ...]
    surrogate_rows: tuple[dict[str, Any], ...]
    reference: str = "cold"

    @property
    def strategies(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r["strategy"] for r in self.rows))

    def curve(self, strategy: str, metric: str = "accuracy") -> tuple[np.ndarray, np.ndarray]:
        """``(budgets, mean metric over seeds)`` for one strategy, budgets ascending."""
        _check(metric, METRICS, "metric")
        _check(strategy, self.strategies, "strategy")
        budgets = sorted({r["budget"] for r in self.rows if r["strategy"] == strategy})
        means = [
            float(np.mean([r[metric] for r in self.rows if r["strategy"] == strategy and r["budget"] == b]))
            for b in budgets
        ]
        return np.array(budgets), np.array(means)

    def reference_level(self, metric: str = "accuracy") -> tuple[int, float]:
        """``(budget, mean metric)`` of the reference strategy at its largest budget."""
        budgets, means = self.curve(self.reference, metric)
        return int(budgets[-1]), float(means[-1])

    def queries_to_reach(self, strategy: str, metric: str = "accuracy", level: float | None = None) -> int | None:
        """Smallest budget tried at which ``strategy``'s mean ``metric`` reaches ``level``.

        ``level`` defaults to the reference's final score. ``None`` when no
        budget tried reaches it. The true number can only be lower than a
        budget returned: only the budgets tried are known.
        """
        level = self.reference_level(metric)[1] if level is None else level
        budgets, means = self.curve(strategy, metric)
        reached = np.flatnonzero(means >= level)
        return int(budgets[reached[0]]) if reached.size else None

    def savings(self, metric: str = "accuracy") -> dict[str, dict[str, Any]]:
        """Per strategy: queries to reach the reference's final ``metric``, and that as a share of its budget."""
        ref_budget, level = self.reference_level(metric)
        out = {}
        for strategy in self.strategies:
            q = self.queries_to_reach(strategy, metric, level)
            out[strategy] = {
                "metric": metric,
                "level": round(level, 6),
                "reference_queries": ref_budget,
                "queries_to_reach": q,
                "fraction": None if q is None else round(q / ref_budget, 4),
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        curves = {
            s: {
                m: dict(zip(map(int, self.curve(s, m)[0]), map(float, self.curve(s, m)[1]), strict=False))
                for m in METRICS
            }
            for s in self.strategies
        }
        return {
            "reference": self.reference,
            "rows": list(self.rows),
            "surrogate": list(self.surrogate_rows),
            "curves": curves,
            "savings": {m: self.savings(m) for m in METRICS},
        }


def warm_start_study(
    model: Any,
    surrogate: Any,
    X_train: Any,
    y_train: Any,
    X_test: Any,
    y_test: Any,
    *,
    budgets: Sequence[int] | Mapping[str, Sequence[int]],
    seeds: Sequence[int] = (0,),
    strategies: Sequence[str] = ("cold", "warm", "guided"),
    surrogate_epochs: int = 10,
    bar_params: Mapping[str, Any] | None = None,
    distill_queries: int = 4000,
    distill_rounds: int = 2,
    distill_params: Mapping[str, Any] | None = None,
) -> WarmStartStudy:
    """Fit BAR on ``model`` with and without the help of ``surrogate``, at several budgets.

    Parameters
    ----------
    model : black box
        The model you pay to query.
    surrogate : model with gradients
        A local model with ``log_proba_gradient`` and ``model``'s
        ``input_shape`` (its label space may differ: each model gets its own
        frequency mapping). Its calls are free and reported apart.
    X_train, y_train, X_test, y_test : target data
        As for :meth:`BARClassifier.fit` and ``score``.
    budgets : sequence of int, or mapping strategy -> sequence of int
        ``max_queries`` of each fit; one list for every strategy, or one per
        strategy (the reference must have one).
    seeds : sequence of int, default (0,)
        ``random_state`` of the surrogate's program and of each fit; scores
        are averaged over seeds.
    strategies : sequence of str, default ("cold", "warm", "guided")
        Any of ``"cold"``, ``"warm"``, ``"guided"``, ``"warm+guided"``,
        ``"warm_shuffled"``, ``"distilled"``; ``"cold"`` is required (the
        reference).
    surrogate_epochs : int, default 10
        Epochs of white-box training on the surrogate.
    bar_params : mapping, optional
        Other :class:`BARClassifier` parameters, shared by every fit (the
        program settings must match for a warm start).
    distill_queries : int, default 4000
        For ``"distilled"``: black-box images spent fine-tuning the
        surrogate's copy. Part of each of its budgets, which must exceed it.
    distill_rounds : int, default 2
        Rounds of :func:`distilled_program` (the queries split evenly).
    distill_params : mapping, optional
        Other :func:`distill_surrogate` arguments (``epochs``, ...).

    Returns
    -------
    WarmStartStudy

    Every fit's settings and data, and the test split, are checked before
    the first query.
    """
    strategies = tuple(strategies)
    for s in strategies:
        _check(s, STRATEGIES, "strategies")
    if "cold" not in strategies:
        raise InvalidInputError(f"strategies={strategies!r}; expected 'cold' among them (the reference)")
    plan = _budgets(budgets, strategies)
    seeds = [check_int(s, "seeds", low=0) for s in seeds]
    if not seeds:
        raise InvalidInputError("seeds is empty; expected at least one random_state")
    check_int(surrogate_epochs, "surrogate_epochs", low=1)
    params = dict(bar_params or {})
    clash = sorted(set(params) & set(_OWN))
    if clash:
        raise InvalidInputError(f"bar_params sets {clash}; expected none of {list(_OWN)} (the study sets them)")
    _, shape = check_model(model)
    _, s_shape = check_model(surrogate, "surrogate")
    if s_shape != shape or not has_gradients(surrogate):
        raise InvalidInputError(
            f"surrogate has input_shape={s_shape} and gradients={has_gradients(surrogate)}; expected "
            f"input_shape={shape} (the model's) and a log_proba_gradient method"
        )

    distill_queries = check_int(distill_queries, "distill_queries", low=20)
    if "distilled" in strategies:
        if trainer_of(surrogate) is None:
            raise InvalidInputError(
                f"surrogate={type(surrogate).__name__} cannot be fine-tuned; expected a torch "
                "model (bar_sdk.adapters.TorchModel) for strategy 'distilled'"
            )
        short = [b for b in plan["distilled"] if b <= distill_queries]
        if short:
            raise InvalidInputError(
                f"budgets for 'distilled' include {short}; expected each above "
                f"distill_queries={distill_queries} (the distillation is part of the budget)"
            )
    _check_plan(
        model, surrogate, X_train, y_train, X_test, y_test, plan, seeds[0], surrogate_epochs, params, distill_queries
    )

    rows, surrogate_rows = [], []
    for seed in seeds:
        programs: dict[str, np.ndarray] = {}
        if any(s.startswith("warm") for s in strategies):
            programs["warm"], row = _surrogate_program(
                surrogate, X_train, y_train, X_test, y_test, seed, surrogate_epochs, params
            )
            surrogate_rows.append({"surrogate": "as given", **row})
        distilled = None
        if "distilled" in strategies:
            started = time.perf_counter()
            distilled = distilled_program(
                model,
                surrogate,
                X_train,
                y_train,
                max_queries=distill_queries,
                rounds=distill_rounds,
                surrogate_epochs=surrogate_epochs,
                bar_params=params,
                distill_params=distill_params,
                random_state=seed,
            )
            programs["distilled"] = distilled.theta
            last = distilled.rounds[-1]
            surrogate_rows.append(
                {
                    "surrogate": "distilled",
                    "seed": seed,
                    **classification_metrics(y_test, distilled.classifier.predict_proba(X_test)),
                    "fit_seconds": time.perf_counter() - started,
                    **distilled.to_dict(),
                    "agreement": last.agreement,
                    "agreement_before": last.agreement_before,
                }
            )
        for strategy in strategies:
            extra: dict[str, Any] = {}
            spent_before = 0
            if strategy in ("warm", "warm+guided"):
                extra["initial_program"] = programs["warm"]
            if strategy == "warm_shuffled":
                extra["initial_program"] = np.random.default_rng(seed).permutation(programs["warm"])
            if strategy in ("guided", "warm+guided"):
                extra["surrogate"] = surrogate
            if strategy == "distilled":
                extra["initial_program"] = programs["distilled"]
                assert distilled is not None  # made above whenever "distilled" is a strategy
                spent_before = distilled.queries
            for budget in plan[strategy]:
                started = time.perf_counter()
                clf = BARClassifier(model, max_queries=budget - spent_before, random_state=seed, **params, **extra)
                clf.fit(X_train, y_train)
                fit_seconds = time.perf_counter() - started
                scores = classification_metrics(y_test, clf.predict_proba(X_test))
                rows.append(
                    {
                        "strategy": strategy,
                        "seed": seed,
                        "budget": budget,
                        "queries": clf.queries_ + spent_before,
                        "distill_queries": spent_before,
                        "eval_queries": clf.ledger_.by_purpose.get("predict", 0),
                        "surrogate_queries": clf.surrogate_queries_,
                        **scores,
                        "fit_seconds": round(fit_seconds, 3),
                    }
                )
                logger.info("%s seed %d budget %d: %s", strategy, seed, budget, scores)
    return WarmStartStudy(rows=tuple(rows), surrogate_rows=tuple(surrogate_rows))


def _check_plan(
    model: Any,
    surrogate: Any,
    X_train: Any,
    y_train: Any,
    X_test: Any,
    y_test: Any,
    plan: dict[str, list[int]],
    seed: int,
    epochs: int,
    params: dict[str, Any],
    distill_queries: int,
) -> None:
    """Every fit's checks and the test split's, before the first query of the study.

    A fit's checks do not depend on the seed, and a larger budget passes
    wherever the smallest does, so each strategy is tried at its smallest.
    """
    check_fit(
        BARClassifier(surrogate, estimator="exact", max_epochs=epochs, random_state=seed, **params), X_train, y_train
    )
    for strategy, budgets in plan.items():
        extra = {"surrogate": surrogate} if strategy in ("guided", "warm+guided") else {}
        spent = distill_queries if strategy == "distilled" else 0
        check_fit(
            BARClassifier(model, max_queries=min(budgets) - spent, random_state=seed, **params, **extra),
            X_train,
            y_train,
        )
    shaper = BARClassifier(model, **params)
    layout, _ = shaper._layout_and_program(X_train, check_model(model)[1])
    check_test_split(X_train, y_train, X_test, y_test, layout)


def _surrogate_program(
    surrogate: Any, X_train: Any, y_train: Any, X_test: Any, y_test: Any, seed: int, epochs: int, params: dict[str, Any]
) -> tuple[np.ndarray, dict[str, Any]]:
    """A program trained white-box on ``surrogate`` (free), and a row describing it."""
    started = time.perf_counter()
    local = BARClassifier(surrogate, estimator="exact", max_epochs=epochs, random_state=seed, **params)
    local.fit(X_train, y_train)
    row = {
        "seed": seed,
        **classification_metrics(y_test, local.predict_proba(X_test)),
        "gradient_calls": local.queries_,
        "fit_seconds": time.perf_counter() - started,
    }
    return local.theta_, row


def _budgets(budgets: Any, strategies: tuple[str, ...]) -> dict[str, list[int]]:
    if isinstance(budgets, Mapping):
        missing = [s for s in strategies if s not in budgets]
        if missing:
            raise InvalidInputError(f"budgets has no entry for {missing}; expected one list per strategy")
        plan = {s: list(budgets[s]) for s in strategies}
    else:
        plan = {s: list(budgets) for s in strategies}
    for s, values in plan.items():
        if not values:
            raise InvalidInputError(f"budgets for {s!r} is empty; expected at least one max_queries")
        plan[s] = sorted({check_int(v, f"budgets[{s!r}]", low=1) for v in values})
    return plan


def _check(value: Any, choices: Sequence[str], name: str) -> None:
    if value not in choices:
        raise InvalidInputError(f"{name}={value!r}; expected one of {list(choices)}")
