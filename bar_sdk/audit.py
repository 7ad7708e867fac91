"""Robustness audit: run a set of attacks at several budgets and write a readable report.

>>> from bar_sdk.audit import audit
>>> report = audit(model, x, y, attacks=["square", "hopskipjump"], eps=[0.02, 0.05],
...                out_dir="runs/audit", price_per_query=0.001)      # doctest: +SKIP
>>> report.robust_accuracy["any attack"]                               # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bar_sdk._modules import make_callable
from bar_sdk.attacks import Attack, AttackResult
from bar_sdk.attacks.base import is_label_only
from bar_sdk.attacks.registry import ATTACKS as REGISTERED, AUDIT_ATTACKS
from bar_sdk.contract import (
    check_bool,
    check_choice,
    check_class_labels,
    check_float,
    check_images,
    check_int,
    check_model,
    has_gradients,
)
from bar_sdk.errors import InvalidInputError
from bar_sdk.reporting.files import check_out_dir
from bar_sdk.reporting.plots import check_plots

__all__ = ["audit", "AuditReport", "ATTACKS"]

logger = logging.getLogger(__name__)

#: attack names accepted by :func:`audit` (and ``bar audit --attacks``), from :mod:`bar_sdk.attacks.registry`
ATTACKS: dict[str, type[Attack]] = {name: REGISTERED[name] for name in AUDIT_ATTACKS}

ANY = "any attack"


@dataclass(frozen=True)
class AuditReport:
    """What an audit found.

    Attributes
    ----------
    model : str
        A description of the model (its class; never a credential).
    norm : str
    eps : tuple of float
    n_samples : int
    clean_accuracy : float
    results : dict
        Attack name -> one :class:`AttackResult` per ``eps``.
    robust_accuracy : dict
        Attack name (and ``"any attack"``: an image counts as robust only if
        every attack failed on it) -> accuracy under attack per ``eps``.
    success_rate, median_queries : dict
        Attack name -> per ``eps`` (over the images the model got right).
    total_queries : int
        Every image sent to the model during the audit.
    cost : float or None
        ``total_queries * price_per_query``.
    wall_time : float
    files : dict
        Paths written (``json``, ``markdown``, plots), when ``out_dir`` was given.
    executor : dict
        Empty for a local run; with ``executor="ray"``: ``chunk_size``,
        ``chunks``, ``chunks_retried`` (chunks redone after their worker died),
        ``task_seconds`` and ``wall_seconds``.
    """

    model: str
    norm: str
    eps: tuple[float, ...]
    n_samples: int
    clean_accuracy: float
    results: dict[str, list[AttackResult]]
    robust_accuracy: dict[str, list[float]]
    success_rate: dict[str, list[float | None]]
    median_queries: dict[str, list[float | None]]
    total_queries: int
    cost: float | None
    price_per_query: float | None
    max_queries: int
    wall_time: float
    files: dict[str, Any] = field(default_factory=dict)
    #: attack name -> the per-image cap its runs had (``None`` for a budget shared by the run)
    caps: dict[str, int | None] = field(default_factory=dict)
    executor: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no image arrays)."""
        return {
            "model": self.model,
            "norm": self.norm,
            "eps": list(self.eps),
            "n_samples": self.n_samples,
            "clean_accuracy": self.clean_accuracy,
            "max_queries_per_image": self.max_queries,
            "robust_accuracy": self.robust_accuracy,
            "success_rate": self.success_rate,
            "median_queries": self.median_queries,
            "total_queries": self.total_queries,
            "price_per_query": self.price_per_query,
            "cost": self.cost,
            "wall_time": round(self.wall_time, 3),
            "runs": {
                name: [{**r.summary(), "max_queries_per_image": self.caps.get(name)} for r in runs]
                for name, runs in self.results.items()
            },
            **({"executor": dict(self.executor)} if self.executor else {}),
        }


def _default_attacks(model: Any, norm: str) -> list[str]:
    if is_label_only(model):
        return ["hopskipjump"] + (["rays"] if norm == "linf" else [])
    names = ["square", "simba"]
    if has_gradients(model):
        names.append("pgd")
    return names


def _build(spec: Any, model: Any, norm: str, eps: float, max_queries: int, random_state: Any) -> Attack:
    """The attack run at ``eps``: a name built on ``model``, or a copy of an instance, capped at ``max_queries``."""
    if isinstance(spec, Attack):
        own = spec.max_queries
        if spec.per_image_budget and (
            own is None or (isinstance(own, numbers.Integral) and not isinstance(own, bool) and own > max_queries)
        ):
            own = max_queries  # the audit's cap applies to every attack, white-box ones too
        attack = spec.clone(eps=eps, max_queries=own)
        if "norm" in attack.get_params() and norm in type(attack).norms:
            attack.set_params(norm=norm)
        return attack
    cls = ATTACKS[check_choice(spec, "attacks", tuple(ATTACKS))]
    if norm not in cls.norms:
        raise InvalidInputError(
            f"attacks={spec!r} supports norm {', '.join(cls.norms)} only; expected an attack for norm={norm!r}"
        )
    params = {"eps": eps, "random_state": random_state}
    if "norm" in cls._param_names():
        params["norm"] = norm
    params["max_queries"] = max_queries  # white-box attacks count their gradient calls too
    return cls(model, **params)


def _specs(attacks: Any, model: Any, norm: str) -> list[Any]:
    """``attacks`` as a list of names and Attack instances (``"auto"`` resolved for ``model``)."""
    expected = f"expected 'auto', an attack name ({', '.join(ATTACKS)}), an Attack instance or a list of them"
    if isinstance(attacks, str) and attacks == "auto":
        return _default_attacks(model, norm)
    if isinstance(attacks, (str, Attack)):
        return [attacks]
    if not isinstance(attacks, Sequence) or isinstance(attacks, bytes):
        raise InvalidInputError(f"attacks={attacks!r}; {expected}")
    for spec in attacks:
        if not isinstance(spec, (str, Attack)):
            raise InvalidInputError(f"attacks={list(attacks)!r} holds {spec!r}; {expected}")
    return list(attacks)


def _check_instances(specs: list[Any], model: Any) -> None:
    """Refuse an attack instance aimed at another model: it would attack that one under ``model``'s name."""
    for i, spec in enumerate(specs):
        if isinstance(spec, Attack) and spec.model is not model:
            raise InvalidInputError(
                f"attacks[{i}]={type(spec).__name__} was built on model={type(spec.model).__name__}, not on the "
                f"audited model={type(model).__name__}; expected attacks built on the audited model (or attack "
                "names), since the report is labelled with it"
            )


def _name(spec: Any) -> str:
    return spec if isinstance(spec, str) else type(spec).__name__


def audit(
    model: Any,
    x: Any,
    y: Any,
    attacks: Any = "auto",
    eps: Sequence[float] = (0.01, 0.02, 0.05),
    norm: str = "linf",
    max_queries: int = 1000,
    out_dir: str | Path | None = None,
    price_per_query: float | None = None,
    random_state: Any = 0,
    n_examples: int = 6,
    verbose: bool = False,
    executor: str = "local",
    chunk_size: int | None = None,
    ray_address: str | None = None,
) -> AuditReport:
    """Attack ``model`` on ``(x, y)`` at every ``eps`` with every attack; report.

    Everything is validated before the first query (images, labels, every
    attack at every ``eps``), so a bad argument never costs anything.

    Parameters
    ----------
    model : black box
        Local (bar_sdk.adapters.TorchModel, ...) or remote (bar_sdk.adapters.RemoteModel).
    x : array (n, C, H, W) or (n, H, W)
        uint8 or floats in [0, 1].
    y : array (n,) int
        True labels.
    attacks : "auto", or a list of names from :data:`ATTACKS` or :class:`Attack` instances
        ``"auto"``: Square Attack and SimBA for scores, HopSkipJump (and RayS
        for Linf) for label-only models, plus PGD when gradients exist.
    eps : sequence of float
        Budgets, in ``norm``. An :class:`Attack` instance must be built on
        ``model`` (the report is labelled with it).
    norm : {"linf", "l2"}
    max_queries : int
        Per image and attack run (clean query included), for every attack:
        white-box ones count their gradient calls, and an :class:`Attack`
        instance with a larger (or no) ``max_queries`` runs capped at this
        one (a smaller cap of its own is kept, and reported per run).
    out_dir : path, optional
        Where ``report.json``, ``report.md`` and the plots go; created (and
        checked writable, and matplotlib checked importable) before the
        first query. ``report.json`` is written before any plot.
    price_per_query : float, optional
        Turns queries into money in the report.
    random_state : int or None
    n_examples : int
        Clean/adversarial pairs shown in the report.
    verbose : bool
    executor : {"local", "ray"}
        ``"ray"`` spreads the images, in chunks, over Ray tasks (needs the
        ``ray`` extra and an integer ``random_state``); the per-image results
        equal a local run's (see :mod:`bar_sdk.distributed.audit`). The model
        is pickled to the workers: a local model as it is; for a remote API
        pass a :class:`bar_sdk.adapters.ray.RayModel` or build the attacks' model in
        each worker.
    chunk_size : int, optional
        Images per task (``executor="ray"``); two chunks per CPU by default.
    ray_address : str, optional
        Cluster to join if Ray is not started yet (``"auto"`` for ``ray start``).

    Returns
    -------
    AuditReport
    """
    start = time.perf_counter()
    n_classes, shape = check_model(model)
    check_choice(norm, "norm", ("linf", "l2"))
    check_int(max_queries, "max_queries", low=1)
    check_float(price_per_query, "price_per_query", low=0.0, allow_none=True)
    check_int(n_examples, "n_examples", low=0)
    check_bool(verbose, "verbose")
    check_choice(executor, "executor", ("local", "ray"))
    check_int(chunk_size, "chunk_size", low=1, allow_none=True)
    x = check_images(x, "x")
    y = check_class_labels(y, len(x), n_classes, "y")
    try:
        eps_list = sorted(float(e) for e in eps)
    except (TypeError, ValueError):
        raise InvalidInputError(f"eps={eps!r}; expected a list of numbers") from None
    if not eps_list:
        raise InvalidInputError("eps=[]; expected at least one budget")
    specs = _specs(attacks, model, norm)
    if not specs:
        raise InvalidInputError(f"attacks={attacks!r}; expected at least one attack")
    names = [_name(s) for s in specs]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"attacks={names!r} names an attack twice; expected each once")
    _check_instances(specs, model)

    plan: dict[str, list[Attack]] = {}
    for spec, name in zip(specs, names, strict=False):
        plan[name] = [_build(spec, model, norm, e, max_queries, random_state) for e in eps_list]
        for attack in plan[name]:
            attack.check(x, y)  # raises before any query is spent
    check_plots(out_dir, without="out_dir=None (the AuditReport is returned either way)")
    if executor == "ray":
        from bar_sdk.distributed.audit import check_plan

        check_plan(plan, random_state)
    out_dir = check_out_dir(out_dir)  # last check: the folder is created only for a valid call

    results: dict[str, list[AttackResult]] = {}
    info: dict[str, Any] = {}
    if executor == "ray":
        from bar_sdk.distributed.audit import run_plan

        results, info = run_plan(plan, x, y, chunk_size=chunk_size, address=ray_address)
    for name, runs in ({} if executor == "ray" else plan).items():
        results[name] = []
        for attack in runs:
            if verbose:
                attack.set_params(verbose=True)
            logger.info("audit: %s at eps=%s", name, attack.eps)
            results[name].append(attack.run(x, y))

    first = next(iter(results.values()))[0]
    clean_correct = first.clean_correct
    robust = {name: [r.robust_accuracy for r in runs] for name, runs in results.items()}
    fooled_any = [np.any([runs[k].success for runs in results.values()], axis=0) for k in range(len(eps_list))]
    robust[ANY] = [float((clean_correct & ~f).mean()) for f in fooled_any]

    def num(v: float) -> float | None:
        return None if not np.isfinite(v) else float(v)

    total = int(sum(r.total_queries for runs in results.values() for r in runs))
    report = AuditReport(
        model=type(model).__name__,
        norm=norm,
        eps=tuple(eps_list),
        n_samples=len(x),
        clean_accuracy=float(clean_correct.mean()),
        results=results,
        robust_accuracy=robust,
        success_rate={name: [num(r.success_rate) for r in runs] for name, runs in results.items()},
        median_queries={name: [num(r.median_queries) for r in runs] for name, runs in results.items()},
        total_queries=total,
        cost=None if price_per_query is None else total * float(price_per_query),
        price_per_query=price_per_query,
        max_queries=int(max_queries),
        wall_time=time.perf_counter() - start,
        executor=info,
        caps={
            name: (int(runs[0].max_queries) if runs[0].per_image_budget and runs[0].max_queries is not None else None)
            for name, runs in plan.items()
        },
    )
    if out_dir is not None:
        from bar_sdk.reporting.audit import write_report

        files = write_report(report, x, out_dir, labels=getattr(model, "labels", None), n_examples=n_examples)
        report = dataclasses.replace(report, files=files)
    return report


make_callable(__name__)  # bar_sdk.audit(model, x, y) runs audit(); `import bar_sdk.audit` gives this module
