"""The frozen record every attack run returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["AttackResult"]


@dataclass(frozen=True)
class AttackResult:
    """What one attack run did, sample by sample.

    Attributes
    ----------
    attack : str
        Class name of the attack.
    norm : {"linf", "l2"}
        Norm in which ``distortion`` and ``eps`` are measured.
    eps : float or None
        The budget: a constraint for bounded attacks, the success threshold
        for distortion-minimising ones (``None``: any adversarial counts).
    targeted : bool
        Whether the run aimed at ``target`` classes.
    x_adv : ndarray (n, C, H, W) float32
        The adversarial image where the attack succeeded, otherwise the best
        (or last) iterate; ``x`` itself for samples already adversarial.
    success : ndarray (n,) bool
        The model was seen (by a counted query) to put ``x_adv`` in a wrong
        class (untargeted) or in the target class (targeted), within ``eps``.
    queries : ndarray (n,) int
        Images sent to the model for each sample, the first clean query
        included. White-box gradient calls count one per image as well.
    distortion : ndarray (n,) float
        ``||x_adv - x||`` in ``norm``.
    y : ndarray (n,) int
        True labels given to ``run``.
    target : ndarray (n,) int or None
        Target classes of a targeted run.
    clean_label, adv_label : ndarray (n,) int
        The model's top class for ``x`` and for ``x_adv`` (``-1`` where
        ``x_adv`` was never sent to the model as it is).
    status : str
        ``"all_succeeded"``, ``"budget_exhausted"`` (some samples spent
        their ``max_queries``), ``"total_budget_exhausted"`` (the run hit
        ``max_total_queries``), ``"stopped_non_finite"`` (some samples were
        stopped because their next query held NaN or infinite values, which
        are never sent; their best adversarial, or else last finite,
        image is kept) or ``"finished"`` (the attack ran its course).
    message : str
        One readable sentence on the outcome.
    total_queries : int
        Every image sent during the run, including work shared by all
        samples (the training of a universal perturbation).
    wall_time : float
        Seconds the run took.
    access : {"score", "decision", "gradient"}
        What the attack used: scores, top-1 labels only, or exact gradients
        (white-box).
    extra : dict
        Attack-specific details (e.g. the universal perturbation itself).
    """

    attack: str
    norm: str
    eps: float | None
    targeted: bool
    x_adv: np.ndarray
    success: np.ndarray
    queries: np.ndarray
    distortion: np.ndarray
    y: np.ndarray
    target: np.ndarray | None
    clean_label: np.ndarray
    adv_label: np.ndarray
    status: str
    message: str
    total_queries: int
    wall_time: float
    access: str = "score"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("x_adv", "success", "queries", "distortion", "y", "target", "clean_label", "adv_label"):
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                value.flags.writeable = False

    @property
    def n_samples(self) -> int:
        return int(self.success.shape[0])

    @property
    def clean_correct(self) -> np.ndarray:
        """The model classified the clean image correctly."""
        correct: np.ndarray = self.clean_label == self.y
        return correct

    @property
    def initially_adversarial(self) -> np.ndarray:
        """Samples that needed no attack: already misclassified (or already the target)."""
        if self.target is not None:
            correct: np.ndarray = self.clean_label == self.target
            return correct
        return ~self.clean_correct

    @property
    def success_rate(self) -> float:
        """Fraction of the samples that needed an attack (not already adversarial) that were fooled.

        ``nan`` when no sample needed an attack.
        """
        attacked = ~self.initially_adversarial
        return float(self.success[attacked].mean()) if attacked.any() else float("nan")

    @property
    def median_queries(self) -> float:
        """Median queries over the successfully attacked samples (``nan`` if none), clean query included."""
        won = self.success & ~self.initially_adversarial
        return float(np.median(self.queries[won])) if won.any() else float("nan")

    @property
    def mean_queries(self) -> float:
        """Mean queries over the successfully attacked samples (``nan`` if none)."""
        won = self.success & ~self.initially_adversarial
        return float(self.queries[won].mean()) if won.any() else float("nan")

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean_correct.mean())

    @property
    def robust_accuracy(self) -> float:
        """Fraction of all samples classified correctly and not fooled by this attack."""
        return float((self.clean_correct & ~self.success).mean())

    def summary(self) -> dict[str, Any]:
        """Scalars only (JSON-ready): rates, query statistics, status."""

        def num(v: float) -> float | None:
            return None if not np.isfinite(v) else round(float(v), 6)

        won = self.success & ~self.initially_adversarial
        return {
            "attack": self.attack,
            "access": self.access,
            "norm": self.norm,
            "eps": self.eps,
            "targeted": self.targeted,
            "n_samples": self.n_samples,
            "clean_accuracy": num(self.clean_accuracy),
            "success_rate": num(self.success_rate),
            "robust_accuracy": num(self.robust_accuracy),
            "median_queries": num(self.median_queries),
            "mean_queries": num(self.mean_queries),
            "median_distortion": num(float(np.median(self.distortion[won]))) if won.any() else None,
            "total_queries": int(self.total_queries),
            "wall_time": round(float(self.wall_time), 3),
            "status": self.status,
            "message": self.message,
        }

    def __repr__(self) -> str:
        return (
            f"AttackResult({self.attack}, n={self.n_samples}, success_rate={self.success_rate:.3f}, "
            f"median_queries={self.median_queries:.1f}, total_queries={self.total_queries}, "
            f"status={self.status!r})"
        )
