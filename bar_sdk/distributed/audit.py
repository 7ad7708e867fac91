"""Run an audit's attack plan over Ray tasks, in chunks of images, and put the results back together.

Every (attack run, chunk) is one Ray task. Image ``i`` of the whole set
draws its randomness from child ``i`` of the attack's seed
(``Attack.run(..., first_index=start)``), so the per-image results are those
of a local run whatever order the tasks finish in.

Retries: Ray's own are off (``max_retries=0``, ``retry_exceptions=False``).
A task Ray retries by itself is invisible to the report and, against a paid
API, would send again every image its first attempt sent. Instead the driver
resubmits a chunk whose *worker died* (``WorkerCrashedError``, a lost node),
up to ``max_chunk_retries`` times, and the report counts those retries. An
error raised by the attack itself is not retried: it is raised here, as in a
local run. Against a remote model, give it a shared ledger and an answer cache
(``RemoteModel(cache_dir=..., ledger=SharedRemoteLedger(...))``) so that a
redone chunk is answered from the cache where its first attempt was paid for.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from bar_sdk.attacks.base import Attack
from bar_sdk.attacks.result import AttackResult
from bar_sdk.contract import check_int
from bar_sdk.distributed.actors import _ensure_ray
from bar_sdk.errors import InvalidInputError

__all__ = ["run_plan", "merge_results"]

logger = logging.getLogger(__name__)


def _chunk_task(attack: Attack, x: np.ndarray, y: np.ndarray, first_index: int) -> AttackResult:
    # Arrays from Ray's object store are read-only; a model may write into (or torch may warn about) its input.
    return attack.run(np.array(x), np.array(y), first_index=first_index)


def check_plan(plan: dict[str, list[Attack]], random_state: Any) -> None:
    """Refuse, before any query, what cannot be split by image."""
    if (
        random_state is None
        or isinstance(random_state, np.random.Generator)
        or isinstance(random_state, bool)
        or not isinstance(random_state, (int, np.integer))
    ):
        raise InvalidInputError(
            f"random_state={random_state!r} with executor='ray'; expected an integer seed "
            "(each image's seed is derived from it and the image's index)"
        )
    for name, runs in plan.items():
        for attack in runs:
            if type(attack).run is not Attack.run:
                raise InvalidInputError(
                    f"attacks={name!r} works on the whole set at once ({type(attack).__name__} "
                    "fits one perturbation for all images); expected per-image attacks with "
                    "executor='ray', or run it with executor='local'"
                )
            if attack.max_total_queries is not None:
                raise InvalidInputError(
                    f"attacks={name!r} has max_total_queries={attack.max_total_queries}, a budget "
                    "over all images, which chunks cannot share; expected None with "
                    "executor='ray' (give a remote model a SharedRemoteLedger instead)"
                )


def run_plan(
    plan: dict[str, list[Attack]],
    x: np.ndarray,
    y: np.ndarray,
    *,
    chunk_size: int | None = None,
    address: str | None = None,
    max_chunk_retries: int = 2,
) -> tuple[dict[str, list[AttackResult]], dict[str, Any]]:
    """Run every attack of ``plan`` on ``(x, y)`` over Ray tasks; return the results and what it took.

    Returns
    -------
    results : dict
        Attack name -> one merged :class:`AttackResult` per run, as a local audit gives.
    info : dict
        ``executor``, ``chunk_size``, ``chunks`` (tasks), ``chunks_retried``, ``task_seconds`` (sum of
        the chunks' own wall times) and ``wall_seconds``.
    """
    ray = _ensure_ray("audit(..., executor='ray')", address)
    n = len(x)
    check_int(max_chunk_retries, "max_chunk_retries", low=0)
    if chunk_size is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        chunk_size = max(1, -(-n // (2 * workers)))  # two chunks per CPU: a slow chunk does not hold the rest
    chunk_size = check_int(chunk_size, "chunk_size", low=1)
    starts = list(range(0, n, chunk_size))
    task = ray.remote(_chunk_task).options(max_retries=0, retry_exceptions=False, num_cpus=1)
    crashes = (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.LocalRayletDiedError)
    start_time = time.perf_counter()
    xs = [ray.put(x[s : s + chunk_size]) for s in starts]
    ys = [y[s : s + chunk_size] for s in starts]
    pending: dict[Any, tuple[str, int, int, Any]] = {}
    attack_refs: dict[tuple[str, int], Any] = {}
    _check_travels({id(a.model): a.model for runs in plan.values() for a in runs}.values(), ray)
    for name, runs in plan.items():
        for k, attack in enumerate(runs):
            attack_refs[name, k] = ref = ray.put(attack)
            for c, s in enumerate(starts):
                pending[task.remote(ref, xs[c], ys[c], s)] = (name, k, c, 0)
    done: dict[tuple[str, int, int], AttackResult] = {}
    retried = 0
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        ref = ready[0]
        name, k, c, tries = pending.pop(ref)
        try:
            done[name, k, c] = ray.get(ref)
        except crashes as exc:
            if tries >= max_chunk_retries:
                raise RuntimeError(
                    f"chunk {c} (images {starts[c]}..{starts[c] + len(ys[c]) - 1}) of {name} lost its "
                    f"worker {tries + 1} times; last: {type(exc).__name__}"
                ) from None
            logger.warning(
                "audit: the worker of chunk %d of %s died (%s); running it again", c, name, type(exc).__name__
            )
            retried += 1
            pending[task.remote(attack_refs[name, k], xs[c], ys[c], starts[c])] = (name, k, c, tries + 1)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            for other in pending:
                ray.cancel(other)
            if isinstance(cause, Exception):
                raise cause from None
            raise
    results = {
        name: [merge_results([done[name, k, c] for c in range(len(starts))]) for k in range(len(runs))]
        for name, runs in plan.items()
    }
    info = {
        "executor": "ray",
        "chunk_size": chunk_size,
        "chunks": len(starts) * sum(map(len, plan.values())),
        "chunks_retried": retried,
        "task_seconds": round(sum(r.wall_time for r in done.values()), 3),
        "wall_seconds": round(time.perf_counter() - start_time, 3),
    }
    return results, info


def _check_travels(models: Any, ray: Any) -> None:
    """Refuse, before any task (so before any query), a model that cannot be pickled to the workers."""
    for model in models:
        try:
            ray.cloudpickle.dumps(model)
        except Exception as exc:
            raise InvalidInputError(
                f"model={type(model).__name__} cannot be sent to Ray workers ({type(exc).__name__}: {exc}); expected "
                "a picklable model: wrap one that holds a connection as bar_sdk.adapters.ray.PerProcessModel(make_model)"
            ) from None


_STATUS_ORDER = ("total_budget_exhausted", "budget_exhausted", "finished", "all_succeeded")


def merge_results(parts: list[AttackResult]) -> AttackResult:
    """One :class:`AttackResult` for the images of ``parts`` (chunks of one run, in order)."""
    first = parts[0]

    def cat(name: str) -> Any:
        values = [getattr(p, name) for p in parts]
        return None if values[0] is None else np.concatenate(values)

    success, queries, y = cat("success"), cat("queries"), cat("y")
    target, clean_label = cat("target"), cat("clean_label")
    already = clean_label == target if target is not None else clean_label != y
    won = success & ~already
    total = int(sum(p.total_queries for p in parts))
    med = f"{np.median(queries[won]):.0f}" if won.any() else "n/a"
    message = (
        f"{int(won.sum())}/{int((~already).sum())} images fooled ({int(already.sum())} already adversarial); "
        f"median {med} queries per fooled image, {total} queries in all"
    )
    status = min((p.status for p in parts), key=_STATUS_ORDER.index)
    return AttackResult(
        attack=first.attack,
        norm=first.norm,
        eps=first.eps,
        targeted=first.targeted,
        x_adv=cat("x_adv"),
        success=success,
        queries=queries,
        distortion=cat("distortion"),
        y=y,
        target=target,
        clean_label=clean_label,
        adv_label=cat("adv_label"),
        status=status,
        message=message,
        total_queries=total,
        wall_time=float(sum(p.wall_time for p in parts)),
        access=first.access,
        extra=dict(first.extra),
    )
