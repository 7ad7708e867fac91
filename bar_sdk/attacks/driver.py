"""The one loop every attack runs in.

An attack is written for a single sample, as a generator: it *yields* the
images it wants the model to see (a ``(m, C, H, W)`` stack) and *receives*
the scores ``(m, n_classes)``; a white-box attack yields a
:class:`GradientRequest` and receives ``(log_probs, gradient)``. The driver
runs the generators of all unfinished samples side by side and, each round,

1. retires a sample whose next request would cross its ``max_queries``,
2. refuses the whole round if it would cross ``max_total_queries``
   (nothing is sent, the run stops),
3. sends every request in **one** model call through the
   :class:`~bar_sdk.ledger.MeteredModel` (split by ``batch_size``),
4. counts each image against the sample that asked for it,
5. checks success on the scores just returned (no extra query): a row
   counts when the model puts it in a wrong class (or the target), it lies
   in [0, 1], on the 8-bit grid when ``quantize=True``, and inside the
   ``eps``-ball for bounded attacks. The best such row is kept per sample;
6. stops a sample as soon as it succeeded (a distortion-minimising attack
   without ``eps`` keeps going until its budget or its own schedule ends).

A sample whose request holds a NaN or infinite value (its iterate diverged)
is stopped before that request leaves: nothing non-finite is ever sent. It
keeps its best adversarial row, or else its last finite iterate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Union

import numpy as np

from bar_sdk.attacks.geometry import distance, inside, on_grid, project, quantize
from bar_sdk.ledger import MeteredModel

__all__ = ["Threat", "Sample", "GradientRequest", "RunContext", "drive"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Threat:
    """The threat model of a run: norm, budget, whether eps bounds the search, quantisation."""

    norm: str
    eps: float | None
    bounded: bool
    quantize: bool

    def candidate(self, x: np.ndarray, x0: np.ndarray) -> np.ndarray:
        """``x`` made admissible: in the ball (bounded attacks), in [0, 1], on the grid if quantising."""
        x = project(x, x0, self.norm, self.eps if self.bounded else None)
        return quantize(x, x0, self.norm, self.eps if self.bounded else None) if self.quantize else x

    def admissible(self, rows: np.ndarray, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mask, distances)``: which rows may count as a success, and their distortion."""
        dist = distance(rows, x0, self.norm)
        ok = inside(dist, self.eps) if self.bounded else np.ones(len(rows), dtype=bool)
        if self.quantize:
            ok &= on_grid(rows)
        return ok, dist

    @property
    def stops_early(self) -> bool:
        """A sample stops at its first success, except when minimising distortion with no ``eps``."""
        return self.bounded or self.eps is not None


@dataclass(frozen=True)
class GradientRequest:
    """A white-box request: log-probabilities and the gradient of ``loss`` at ``x``.

    ``loss(logp (m, n_classes)) -> (losses (m,), dlosses/dlogp (m, n_classes))``.
    The answer sent back is ``(logp, dsum(losses)/dx)``.
    """

    x: np.ndarray
    loss: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


Request = Union[np.ndarray, GradientRequest]


@dataclass(frozen=True)
class RunContext:
    """What an attack's per-sample generator may read about the run."""

    threat: Threat
    n_classes: int
    input_shape: tuple[int, int, int]
    max_queries: int | None
    cache: dict[Any, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(np.prod(self.input_shape))


@dataclass(eq=False)
class Sample:
    """One image under attack, as its generator sees it.

    The generator reads ``x0``, ``label``, ``target``, ``clean_scores``,
    ``rng`` and ``remaining``, and keeps ``current`` (its iterate) up to
    date: the driver returns it for samples that did not succeed.
    """

    index: int
    x0: np.ndarray
    label: int
    target: int | None
    clean_scores: np.ndarray
    rng: np.random.Generator
    max_queries: int | None
    queries: int = 1
    current: np.ndarray | None = None
    best: np.ndarray | None = None
    best_dist: float = np.inf
    best_label: int = -1
    success: bool = False
    exhausted: bool = False
    diverged: bool = False  # stopped because its next request was not finite
    last_finite: np.ndarray | None = None  # the iterate when its last finite request left

    @property
    def remaining(self) -> int | float:
        """Queries this sample may still spend (``inf`` without a per-sample cap)."""
        return np.inf if self.max_queries is None else self.max_queries - self.queries

    def is_adversarial(self, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels)
        fooled: np.ndarray = labels == self.target if self.target is not None else labels != self.label
        return fooled


def _rows(req: Request) -> np.ndarray | None:
    """The images of a request, or None when one is not finite (the sample is then stopped, nothing sent)."""
    x = req.x if isinstance(req, GradientRequest) else req
    if not isinstance(x, np.ndarray) or x.ndim != 4 or len(x) == 0:
        raise RuntimeError(
            f"an attack yielded {type(x).__name__} {getattr(x, 'shape', '')}; "
            "expected a non-empty (m, C, H, W) array (bug in the attack)"
        )
    if not np.all(np.isfinite(x)):
        return None
    if x.min() < 0.0 or x.max() > 1.0:
        raise RuntimeError("an attack asked for values outside [0, 1] (bug in the attack)")
    return x


def final_image(s: Sample) -> np.ndarray:
    """What a sample that did not succeed returns: its iterate, or its last finite one if it diverged."""
    cur = s.current
    if cur is not None and np.all(np.isfinite(cur)):
        return cur
    return s.last_finite if s.last_finite is not None else s.x0


def _observe(s: Sample, rows: np.ndarray, labels: np.ndarray, threat: Threat) -> None:
    adv = s.is_adversarial(labels)
    if not adv.any():
        return
    ok, dist = threat.admissible(rows[adv], s.x0)
    if not ok.any():
        return
    cand = np.flatnonzero(ok)
    j = cand[np.argmin(dist[cand])]
    if dist[j] < s.best_dist:
        s.best, s.best_dist, s.best_label = rows[adv][j].copy(), float(dist[j]), int(labels[adv][j])
    s.success = bool(inside(s.best_dist, threat.eps))


def _call_scores(
    metered: MeteredModel, items: list[tuple[Any, np.ndarray]], purpose: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    x = np.concatenate([req for _, req in items]) if len(items) > 1 else items[0][1]
    scores = metered.predict_proba(x, purpose=purpose)
    out, start = [], 0
    for _, req in items:
        part = scores[start : start + len(req)]
        out.append((part, part.argmax(axis=1)))
        start += len(req)
    return out


def _call_gradients(metered: MeteredModel, items: list[tuple[Any, Any]], purpose: str) -> list[Any]:
    x = np.concatenate([req.x for _, req in items]) if len(items) > 1 else items[0][1].x
    sizes = [len(req.x) for _, req in items]
    seen: dict[str, np.ndarray] = {}

    def loss_fn(logp: Any) -> tuple[float, np.ndarray]:
        logp = np.asarray(logp, dtype=np.float64)
        seen["logp"] = logp
        total, grads, start = 0.0, [], 0
        for (_, req), m in zip(items, sizes, strict=False):
            losses, g = req.loss(logp[start : start + m])
            total += float(np.sum(losses))
            grads.append(g)
            start += m
        return total, np.concatenate(grads)

    _, grad = metered.log_proba_gradient(x, loss_fn, purpose=purpose)
    grad = np.asarray(grad, dtype=np.float32)
    logp = seen["logp"]
    out, start = [], 0
    for m in sizes:
        part = logp[start : start + m]
        out.append(((part, grad[start : start + m]), part.argmax(axis=1)))
        start += m
    return out


def drive(
    metered: MeteredModel,
    samples: list[Sample],
    attack_one: Callable[[Sample], Generator[Request, Any, None]],
    threat: Threat,
    purpose: str,
    progress: Callable[[int], object] | None = None,
) -> bool:
    """Run ``attack_one`` on every sample, batched; return True if ``max_total_queries`` stopped it."""
    pending: dict[int, tuple[Generator[Any, Any, Any], Request, np.ndarray]] = {}
    by_index = {s.index: s for s in samples}

    def advance(s: Sample, gen: Generator[Any, Any, Any], answer: Any, first: bool = False) -> None:
        try:
            req = next(gen) if first else gen.send(answer)
        except StopIteration:
            pending.pop(s.index, None)
            if progress:
                progress(1)
            return
        rows = _rows(req)
        if rows is None:  # the iterate diverged: stop here, before anything non-finite leaves
            logger.warning("sample %d stopped: its next query holds NaN or infinite values (nothing sent)", s.index)
            s.diverged = True
            gen.close()
            pending.pop(s.index, None)
            if progress:
                progress(1)
            return
        if s.current is not None and np.all(np.isfinite(s.current)):
            s.last_finite = np.array(s.current, copy=True)
        pending[s.index] = (gen, req, rows)

    for s in samples:
        advance(s, attack_one(s), None, first=True)

    rounds = 0
    while pending:
        for i in list(pending):
            gen, _, rows = pending[i]
            s = by_index[i]
            if len(rows) > s.remaining:
                s.exhausted = True
                gen.close()
                del pending[i]
                if progress:
                    progress(1)
        if not pending:
            break
        order = sorted(pending)
        need = sum(len(pending[i][2]) for i in order)
        if not metered.ledger.can_afford(need):
            logger.info("max_total_queries reached: a round of %d images refused, nothing sent", need)
            for i in order:
                pending.pop(i)[0].close()
            return True
        score_items: list[tuple[int, np.ndarray]] = []
        grad_items: list[tuple[int, GradientRequest]] = []
        for i in order:
            req = pending[i][1]
            if isinstance(req, GradientRequest):
                grad_items.append((i, req))
            else:
                score_items.append((i, req))
        answers: dict[int, tuple[Any, np.ndarray]] = {}
        if score_items:
            answers.update(zip([i for i, _ in score_items], _call_scores(metered, score_items, purpose), strict=False))
        if grad_items:
            answers.update(zip([i for i, _ in grad_items], _call_gradients(metered, grad_items, purpose), strict=False))
        rounds += 1
        for i in order:
            gen, _, rows = pending[i]
            s = by_index[i]
            s.queries += len(rows)
            answer, labels = answers[i]
            _observe(s, rows, labels, threat)
            if s.success and threat.stops_early:
                gen.close()
                del pending[i]
                if progress:
                    progress(1)
            else:
                advance(s, gen, answer)
    logger.debug("attack finished after %d rounds", rounds)
    return False
