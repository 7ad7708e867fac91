"""The base class every attack derives from: parameters, input checks, one run.

``__init__`` only stores its arguments (scikit-learn style); ``run``
validates everything before the first query, sends the clean images once
(the first counted query of every sample), and hands the samples that are
not adversarial yet to :func:`~bar_sdk.attacks.driver.drive`.

Budgets
-------
``max_queries`` is **per sample** and includes the clean query: a sample
never costs more. ``max_total_queries`` (optional) caps the whole run; the
run stops before the first round that would cross it.
"""

from __future__ import annotations

import inspect
import logging
import numbers
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Generator

import numpy as np

from bar_sdk.attacks.driver import RunContext, Sample, Threat, drive, final_image
from bar_sdk.attacks.geometry import NORMS, distance, project, quantize
from bar_sdk.attacks.result import AttackResult
from bar_sdk.contract import (
    check_bool,
    check_choice,
    check_class_labels,
    check_float,
    check_images,
    check_int,
    check_model,
    has_gradients,
    is_label_only,
)
from bar_sdk.errors import InvalidInputError
from bar_sdk.ledger import MeteredModel, QueryLedger

__all__ = ["Attack", "check_class_labels", "is_label_only", "sample_rngs"]

logger = logging.getLogger(__name__)


def sample_rngs(random_state: Any, n: int, first_index: int = 0) -> list[np.random.Generator]:
    """One generator per image: child ``first_index + i`` of ``random_state``'s seed sequence.

    With ``first_index=0`` these are ``default_rng(random_state).spawn(n)``; a
    chunk starting at ``first_index`` gets the generators the whole run gives
    its images, whatever order chunks run in.
    """
    first_index = check_int(first_index, "first_index", low=0)
    if first_index == 0:
        return np.random.default_rng(random_state).spawn(n)
    if not isinstance(random_state, numbers.Integral) or isinstance(random_state, bool):
        raise InvalidInputError(
            f"random_state={random_state!r} with first_index={first_index}; expected an integer "
            "seed (a chunk of a larger run must derive each image's seed from it)"
        )
    return [
        np.random.default_rng(np.random.SeedSequence(int(random_state), spawn_key=(first_index + i,))) for i in range(n)
    ]


class Attack(ABC):
    """Base class of every attack.

    Subclasses set the class attributes below, store their arguments in
    ``__init__`` and implement :meth:`_attack_sample`.
    """

    #: what the attack needs from the model: "score", "decision" (labels) or "gradient"
    access: ClassVar[str] = "score"
    #: "bounded": eps constrains the search, success = adversarial inside the ball;
    #: "minimal": the attack minimises distortion, success = distortion <= eps (any when eps is None)
    mode: ClassVar[str] = "bounded"
    #: norms the attack supports
    norms: ClassVar[tuple[str, ...]] = NORMS
    #: whether ``max_queries`` caps each image (False: a budget shared by the run, as a universal perturbation's)
    per_image_budget: ClassVar[bool] = True

    model: Any
    norm: str
    eps: float | None
    max_queries: int | None
    max_total_queries: int | None
    quantize: bool
    batch_size: int | None
    random_state: Any
    verbose: bool

    if TYPE_CHECKING:  # the constructor every registered attack has (each subclass defines its own)

        def __init__(self, model: Any, **params: Any) -> None: ...

    # -- parameters (scikit-learn style) ---------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, by name."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "Attack":
        """Set constructor arguments by name; return ``self``."""
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise InvalidInputError(
                    f"{name}={value!r} is not a parameter of {type(self).__name__}; "
                    f"expected one of {', '.join(sorted(valid))}"
                )
            setattr(self, name, value)
        return self

    def clone(self, **overrides: Any) -> "Attack":
        """A new attack with the same arguments, some replaced."""
        return type(self)(**self.get_params()).set_params(**overrides)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if k != "model")
        return f"{type(self).__name__}({type(self.model).__name__}, {shown})"

    # -- checks --------------------------------------------------------------------------

    def _check_params(self, n: int, n_classes: int, input_shape: tuple[int, int, int]) -> None:
        """Check the common parameters; subclasses extend (call super)."""
        check_choice(self.norm, "norm", self.norms)
        dim = int(np.prod(input_shape))
        top = 1.0 if self.norm == "linf" else float(np.sqrt(dim))
        if self.mode == "bounded":
            if self.eps is None:
                raise InvalidInputError(f"eps=None; {type(self).__name__} needs a budget eps in (0, {top:.4g}]")
            check_float(self.eps, "eps", low=0.0, high=top, low_open=True)
        else:
            check_float(self.eps, "eps", low=0.0, high=top, low_open=True, allow_none=True)
        check_int(self.max_queries, "max_queries", low=1, allow_none=self.access == "gradient")
        check_int(self.max_total_queries, "max_total_queries", low=1, allow_none=True)
        if self.max_total_queries is not None and self.max_total_queries < n:
            raise InvalidInputError(
                f"max_total_queries={self.max_total_queries}; expected at least one query per image (>= {n})"
            )
        check_bool(self.quantize, "quantize")
        check_bool(self.verbose, "verbose")
        check_int(self.batch_size, "batch_size", low=1, allow_none=True)
        rs = self.random_state
        if not (
            rs is None
            or isinstance(rs, np.random.Generator)
            or (isinstance(rs, numbers.Integral) and not isinstance(rs, bool) and int(rs) >= 0)
        ):
            raise InvalidInputError(f"random_state={rs!r}; expected None, an integer >= 0 or a numpy Generator")

    def _bound(self) -> float:
        """``eps`` of a bounded attack as a float (``_check_params`` refused None before any query)."""
        assert self.eps is not None, "a bounded attack's eps is checked before any query"
        return float(self.eps)

    def _query_cap(self) -> int:
        """``max_queries`` of a query attack as an int (``_check_params`` refused None unless access is "gradient")."""
        assert self.max_queries is not None, "a query attack's max_queries is checked before any query"
        return int(self.max_queries)

    def _check_model_access(self) -> tuple[int, tuple[int, int, int]]:
        n_classes, shape = check_model(self.model)
        name = type(self).__name__
        if self.access == "score" and is_label_only(self.model):
            raise InvalidInputError(
                f"model={type(self.model).__name__} answers labels only (label_only=True); {name} needs "
                "scores: use a decision-based attack (HopSkipJump, RayS) for label-only APIs"
            )
        if self.access == "gradient" and not has_gradients(self.model):
            raise InvalidInputError(
                f"model={type(self.model).__name__} offers no gradients; {name} is white-box and expected "
                "a local model with log_proba_gradient (e.g. bar_sdk.adapters.TorchModel). Use a black-box attack "
                "(SquareAttack, NESAttack, ...) for models you can only query"
            )
        return n_classes, shape

    def _validate(self, x: Any, y: Any, target: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, RunContext]:
        n_classes, shape = self._check_model_access()
        x = check_images(x, "x")
        if x.shape[1:] != shape:
            raise InvalidInputError(
                f"x has images shaped {x.shape[1:]}; expected model.input_shape={shape} (resize them first)"
            )
        n = x.shape[0]
        y = check_class_labels(y, n, n_classes, "y")
        if target is not None:
            target = check_class_labels(target, n, n_classes, "target")
            same = np.flatnonzero(target == y)
            if same.size:
                raise InvalidInputError(
                    f"target equals y for {same.size} images (first at index {same[0]}); "
                    "expected target classes different from the true labels"
                )
        self._check_params(n, n_classes, shape)
        threat = Threat(self.norm, None if self.eps is None else float(self.eps), self.mode == "bounded", self.quantize)
        ctx = RunContext(threat, n_classes, shape, self.max_queries)
        return x, y, target, ctx

    def check(self, x: Any, y: Any, target: Any = None) -> None:
        """Raise :class:`~bar_sdk.errors.InvalidInputError` if ``run(x, y, target)`` would; query nothing."""
        self._validate(x, y, target)

    # -- the run -------------------------------------------------------------------------

    def _prepare(self, ctx: RunContext) -> None:  # noqa: B027 (an optional hook: most attacks need none)
        """Per-run precomputation shared by all samples (stored in ``ctx.cache``)."""

    @abstractmethod
    def _attack_sample(self, s: Sample, ctx: RunContext) -> Generator[Any, Any, Any]:
        """Attack one sample: yield query stacks (or GradientRequests), receive answers."""

    def run(self, x: Any, y: Any, target: Any = None, *, first_index: int = 0) -> AttackResult:
        """Attack every image of ``x``.

        Parameters
        ----------
        x : array (n, C, H, W) or (n, H, W)
            uint8, or floats in [0, 1], shaped like ``model.input_shape``.
        y : array (n,) int
            True labels.
        target : array (n,) int, optional
            Target classes; the attack is targeted when given.
        first_index : int
            Index of ``x[0]`` in a larger data set this call is a chunk of.
            Image ``i`` draws its randomness from child ``first_index + i`` of
            the seed, so chunks run anywhere (``audit(..., executor="ray")``)
            give the per-image results of one run over the whole set. Needs
            an integer ``random_state`` when not 0.

        Returns
        -------
        AttackResult
        """
        start = time.perf_counter()
        x, y, target, ctx = self._validate(x, y, target)
        rngs = sample_rngs(self.random_state, len(x), first_index)
        self._prepare(ctx)
        ledger = QueryLedger(self.max_total_queries)
        metered = MeteredModel(self.model, ledger, self.batch_size)
        return self._execute(metered, x, y, target, ctx, start, rngs=rngs)

    def _execute(
        self,
        metered: MeteredModel,
        x: np.ndarray,
        y: np.ndarray,
        target: np.ndarray | None,
        ctx: RunContext,
        start: float,
        shared_queries: int = 0,
        extra: dict[str, Any] | None = None,
        rngs: list[np.random.Generator] | None = None,
    ) -> AttackResult:
        n = len(x)
        clean = metered.predict_proba(x, purpose="clean")
        clean_label = clean.argmax(axis=1)
        if rngs is None:
            rngs = sample_rngs(self.random_state, n)
        samples = [
            Sample(
                i,
                x[i],
                int(y[i]),
                None if target is None else int(target[i]),
                clean[i],
                rngs[i],
                ctx.max_queries,
                current=x[i].copy(),
            )
            for i in range(n)
        ]
        todo = []
        for s in samples:
            if s.is_adversarial(clean_label[s.index]):
                s.success, s.best, s.best_dist, s.best_label = True, s.x0.copy(), 0.0, int(clean_label[s.index])
            else:
                todo.append(s)
        bar = None
        if self.verbose:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, initial=n - len(todo), desc=type(self).__name__, unit="img")
        try:
            hit_total = drive(
                metered,
                todo,
                lambda s: self._attack_sample(s, ctx),
                ctx.threat,
                purpose=type(self).__name__,
                progress=bar.update if bar else None,
            )
        finally:
            if bar:
                bar.close()
        return self._result(
            samples,
            x,
            y,
            target,
            clean_label,
            ctx,
            hit_total,
            metered.ledger.queries + shared_queries,
            time.perf_counter() - start,
            extra or {},
        )

    def _result(
        self,
        samples: list[Sample],
        x: np.ndarray,
        y: np.ndarray,
        target: np.ndarray | None,
        clean_label: np.ndarray,
        ctx: RunContext,
        hit_total: bool,
        total: int,
        wall: float,
        extra: dict[str, Any],
    ) -> AttackResult:
        threat = ctx.threat
        x_adv = np.empty_like(x)
        adv_label = np.full(len(x), -1, dtype=np.int64)
        for s in samples:
            if s.best is not None:
                x_adv[s.index], adv_label[s.index] = s.best, s.best_label
            else:
                cur = project(final_image(s), s.x0, threat.norm, threat.eps if threat.bounded else None)
                if threat.quantize:
                    cur = quantize(cur, s.x0, threat.norm, threat.eps if threat.bounded else None)
                x_adv[s.index] = cur
        success = np.array([s.success for s in samples])
        queries = np.array([s.queries for s in samples], dtype=np.int64)
        already = clean_label == target if target is not None else clean_label != y
        attacked = ~already
        diverged = int(sum(s.diverged for s in samples))
        if hit_total:
            status = "total_budget_exhausted"
        elif diverged:
            status = "stopped_non_finite"
        elif success[attacked].all():
            status = "all_succeeded"
        elif any(
            s.exhausted or (not s.success and s.max_queries is not None and s.queries >= s.max_queries) for s in samples
        ):  # retired by the driver, or an attack that stopped itself at its budget
            status = "budget_exhausted"
        else:
            status = "finished"
        won = success & attacked
        med = f"{np.median(queries[won]):.0f}" if won.any() else "n/a"
        message = (
            f"{int(won.sum())}/{int(attacked.sum())} images fooled "
            f"({int(already.sum())} already adversarial); median {med} queries per fooled image, "
            f"{total} queries in all"
        )
        if diverged:
            message += (
                f"; {diverged} stopped when their iterate became NaN or infinite (nothing non-finite "
                "was sent; the last finite image is returned)"
            )
        logger.info("%s: %s", type(self).__name__, message)
        return AttackResult(
            attack=type(self).__name__,
            norm=threat.norm,
            eps=threat.eps,
            targeted=target is not None,
            x_adv=x_adv,
            success=success,
            queries=queries,
            distortion=np.asarray(distance(x_adv, x, threat.norm), dtype=np.float64).reshape(-1),
            y=y,
            target=target,
            clean_label=clean_label.astype(np.int64),
            adv_label=adv_label,
            status=status,
            message=message,
            total_queries=int(total),
            wall_time=float(wall),
            access=self.access,
            extra=extra,
        )
