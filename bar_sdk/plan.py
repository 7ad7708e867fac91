"""What a BARClassifier run will send, cost and take, before any query is spent.

>>> from sklearn.datasets import load_breast_cancer
>>> from bar_sdk import BARClassifier
>>> from bar_sdk.adapters.server import DemoModel            # stands for your vendor's API
>>> from bar_sdk.plan import plan_bar
>>> X, y = load_breast_cancer(return_X_y=True)
>>> plan = plan_bar(BARClassifier(DemoModel((3, 32, 32), 10), max_queries=40_000), X[:400], n_eval=169,
...                 price_per_query=0.0015, rate_limit=10)
>>> print(plan)                                             # images per phase, dollars, hours
phase             images    requests
mapping              400         400
train             39,180      39,180
readout              400         400
predict              169         169
total             40,149      40,149
training steps: 653
1 image(s) per request at most
cost: $60.22 at $0.0015 per image (at most: cached images are not billed)
time: 1.12 h at 10 requests/s (at least: throttles and retries add to it)
>>> plan.fit_queries <= 40_000
True

The numbers come from the rules ``fit`` follows (the label-mapping pass, one
training step of ``batch_size x evaluations`` images while the next step and
the readout pass fit in ``max_queries``, the readout pass, then evaluation),
walked step by step without querying anything. Requests are counted the way
the images travel: ``fit`` scores at most 4096 images per call (512 in the
readout pass) and a remote model splits each call into requests of its
preset's ``max_batch``. Cached answers make the bill smaller, never larger:
the plan is an upper bound on money, exact on images asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bar_sdk.contract import check_float, check_int, check_model
from bar_sdk.errors import InvalidInputError

__all__ = ["QueryPlan", "plan_bar", "plan_audit"]

_SCORE_CHUNK = 4096  # score_programs' chunk: images per call


@dataclass(frozen=True)
class QueryPlan:
    """Images per phase (``mapping``, ``train``, ``readout``, ``predict``), requests, dollars and hours."""

    queries_by_phase: dict[str, int]
    requests_by_phase: dict[str, int]
    steps: int
    price_per_query: float | None = None
    rate_limit: float | None = None
    max_batch: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def queries(self) -> int:
        """Every image the run asks the model for (fit and evaluation)."""
        return sum(self.queries_by_phase.values())

    @property
    def fit_queries(self) -> int:
        """What ``fit`` asks for (``clf.queries_`` after the run); everything but evaluation."""
        return self.queries - self.queries_by_phase.get("predict", 0)

    @property
    def requests(self) -> int:
        return sum(self.requests_by_phase.values())

    @property
    def dollars(self) -> float | None:
        return None if self.price_per_query is None else self.queries * self.price_per_query

    @property
    def hours(self) -> float | None:
        """Hours at ``rate_limit`` requests per second (throttles and retries add to it)."""
        return None if self.rate_limit is None else self.requests / self.rate_limit / 3600.0

    def __str__(self) -> str:
        lines = [f"{'phase':<10}{'images':>14}{'requests':>12}"]
        for phase, n in self.queries_by_phase.items():
            lines.append(f"{phase:<10}{n:>14,}{self.requests_by_phase[phase]:>12,}")
        lines.append(f"{'total':<10}{self.queries:>14,}{self.requests:>12,}")
        if self.steps:
            lines.append(f"training steps: {self.steps:,}")
        lines.append(f"{self.max_batch} image(s) per request at most")
        if self.dollars is not None:
            lines.append(
                f"cost: ${self.dollars:,.2f} at ${self.price_per_query:g} per image (at most: cached "
                "images are not billed)"
            )
        if self.hours is not None:
            lines.append(
                f"time: {self.hours:,.2f} h at {self.rate_limit:g} requests/s (at least: throttles "
                "and retries add to it)"
            )
        lines += self.notes
        return "\n".join(lines)


def _api_terms(model: Any, price_per_query: Any, rate_limit: Any, max_batch: Any) -> tuple[float | None, int]:
    """Checked price and batch size, defaulting to what a remote model says (its ledger, its preset)."""
    check_float(rate_limit, "rate_limit", low=0.0, low_open=True, allow_none=True)
    if price_per_query is None:
        price_per_query = getattr(getattr(model, "ledger", None), "price_per_query", None)
    price = check_float(price_per_query, "price_per_query", low=0.0, allow_none=True)
    if max_batch is None:
        max_batch = int(getattr(getattr(model, "preset", None), "max_batch", 1) or 1)
    return price, check_int(max_batch, "max_batch", low=1)


def _requests(calls: list[int], max_batch: int) -> int:
    return sum(math.ceil(n / max_batch) for n in calls)


def _score_calls(n_images: int, n_programs: int) -> list[int]:
    """Call sizes of ``bar_sdk.reprogram_steps.score_programs`` for ``n_images`` under ``n_programs`` programs."""
    per_program = max(1, _SCORE_CHUNK // max(n_programs, 1))
    return [min(per_program, n_images - s) * n_programs for s in range(0, n_images, per_program)]


def plan_bar(
    clf: Any,
    X: Any,
    *,
    n_eval: int = 0,
    price_per_query: float | None = None,
    rate_limit: float | None = None,
    max_batch: int | None = None,
) -> QueryPlan:
    """The plan of ``clf.fit(X, y)`` followed by ``clf.predict`` on ``n_eval`` samples.

    Parameters
    ----------
    clf : BARClassifier
        Not fitted, with its ``model``: nothing is sent to it.
    X : array
        The training data (its length and shape set the program and the passes).
    n_eval : int
        Samples predicted afterwards (one image each).
    price_per_query : float, optional
        Dollars per image; default the model ledger's ``price_per_query`` when it has one.
    rate_limit : float, optional
        Requests per second the API allows.
    max_batch : int, optional
        Images per request; default the remote model's preset's ``max_batch`` (1 otherwise).
    """
    from bar_sdk.reprogram_setup import fit_costs, fit_estimator

    n_eval = check_int(n_eval, "n_eval", low=0)
    model = clf.model
    price_per_query, max_batch = _api_terms(model, price_per_query, rate_limit, max_batch)
    clf._validate_params()
    _, input_shape = check_model(model)
    layout, program = clf.build_program(X, input_shape)
    n = len(layout.transform(X))
    # priced as fit prices itself (the same refusal of a max_queries below one step)
    costs = fit_costs(clf, n, fit_estimator(clf, guided=getattr(clf, "surrogate", None) is not None), program.n_params)
    batch, evaluations, step_cost = costs.batch, costs.evaluations, costs.step_cost
    mapping, readout, total_steps = costs.mapping_cost, costs.readout_cost, costs.total_steps
    views = clf.views
    spent, steps, pos, train_calls = mapping, 0, 0, []
    # fit's loop: a step goes out while it and the reserved readout pass fit in max_queries
    while total_steps is None or steps < total_steps:
        if clf.max_queries is not None and spent + step_cost + readout > clf.max_queries:
            break
        b = min(batch, n - pos)
        train_calls += _score_calls(b, evaluations)
        spent += b * evaluations
        steps += 1
        pos = 0 if pos + batch >= n else pos + batch
    calls = {
        "mapping": _score_calls(mapping, 1) if mapping else [],
        "train": train_calls,
        # the readout pass sends READOUT_CHUNK images a call, each read from every view
        "readout": [min(clf.READOUT_CHUNK, n - s) * views for s in range(0, n, clf.READOUT_CHUNK)] if readout else [],
        "predict": _score_calls(n_eval, views) if n_eval else [],
    }
    notes = []
    if getattr(clf, "surrogate", None) is not None:
        notes.append("the surrogate's own queries are free (local) and not counted here")
    return QueryPlan(
        queries_by_phase={k: sum(v) for k, v in calls.items()},
        requests_by_phase={k: _requests(v, max_batch) for k, v in calls.items()},
        steps=steps,
        price_per_query=price_per_query,
        rate_limit=rate_limit,
        max_batch=max_batch,
        notes=notes,
    )


def plan_audit(
    model: Any,
    n_samples: int,
    *,
    attacks: Any = "auto",
    eps: Any = (0.01, 0.02, 0.05),
    norm: str = "linf",
    max_queries: int = 1000,
    price_per_query: float | None = None,
    rate_limit: float | None = None,
    max_batch: int | None = None,
) -> QueryPlan:
    """Upper bounds on what ``bar_sdk.audit(model, x, y, ...)`` sends for ``n_samples`` images.

    Every attack run (one per attack and ``eps``) spends at most ``max_queries``
    per image, the clean query included (its own ``max_total_queries`` when
    smaller); that is the bound ``audit`` enforces. An attack stops early on
    the images it has already fooled, so a run usually costs less. Requests:
    each round sends at most one image per remaining sample, so a run makes at
    most ``max_queries x ceil(n_samples / max_batch)`` requests. White-box
    attacks (PGD on a local model) are listed with their gradient calls
    under ``max_queries=None`` as 0: they need a local model and are not billed.
    Phases are named ``"<attack>@<eps>"``.
    """
    from bar_sdk.attacks.universal import UniversalPerturbation
    from bar_sdk.audit import _build, _name, _specs

    n_samples = check_int(n_samples, "n_samples", low=1)
    max_queries = check_int(max_queries, "max_queries", low=1)
    price_per_query, max_batch = _api_terms(model, price_per_query, rate_limit, max_batch)
    check_model(model)
    try:
        eps_list = sorted(float(e) for e in eps)
    except (TypeError, ValueError):
        raise InvalidInputError(f"eps={eps!r}; expected a list of numbers") from None
    queries: dict[str, int] = {}
    requests: dict[str, int] = {}
    notes = ["upper bounds: attacks stop early on the images they fool"]
    for spec in _specs(attacks, model, norm):
        for e in eps_list:
            attack = _build(spec, model, norm, e, max_queries, 0)
            if isinstance(attack, UniversalPerturbation):
                raise InvalidInputError(
                    "attacks holds a UniversalPerturbation, whose max_queries is a total for the "
                    "whole run, not per image; plan_audit does not bound it"
                )
            key = f"{_name(spec)}@{e:g}"
            if type(attack).access == "gradient":
                queries[key] = requests[key] = 0
                notes.append(f"{key}: white-box (a local model's gradients), not billed")
                continue
            per_image = min(attack.max_queries or max_queries, max_queries)
            total = n_samples * per_image
            rounds = per_image
            total_cap = getattr(attack, "max_total_queries", None)
            if total_cap is not None:
                total = min(total, total_cap)
            queries[key] = total
            requests[key] = min(rounds * math.ceil(n_samples / max_batch), total)
    return QueryPlan(
        queries_by_phase=queries,
        requests_by_phase=requests,
        steps=0,
        price_per_query=price_per_query,
        rate_limit=rate_limit,
        max_batch=max_batch,
        notes=notes,
    )
