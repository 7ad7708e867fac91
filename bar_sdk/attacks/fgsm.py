"""Fast gradient sign method (Goodfellow, Shlens, Szegedy, ICLR 2015), white-box."""

from __future__ import annotations

from typing import Any

from bar_sdk.attacks.pgd import PGD

__all__ = ["FGSM"]


class FGSM(PGD):
    """One gradient step of size ``eps`` (signed for Linf, normalised for L2).

    Equivalent to :class:`PGD` with one step, ``step_size=eps`` and no
    random start. Costs three queries per image: the clean query, the
    gradient call, and the check of the result.

    Parameters
    ----------
    model : model with ``log_proba_gradient``
    norm : {"linf", "l2"}
    eps : float
    loss : {"ce", "margin"}
    max_queries, max_total_queries, quantize, batch_size, random_state, verbose
        As in :class:`PGD`.
    """

    def __init__(
        self,
        model: Any,
        norm: str = "linf",
        eps: float = 0.03,
        loss: str = "ce",
        max_queries: int | None = None,
        max_total_queries: int | None = None,
        quantize: bool = False,
        batch_size: int | None = None,
        random_state: Any = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(
            model,
            norm=norm,
            eps=eps,
            steps=1,
            step_size=None,
            random_start=False,
            loss=loss,
            max_queries=max_queries,
            max_total_queries=max_total_queries,
            quantize=quantize,
            batch_size=batch_size,
            random_state=random_state,
            verbose=verbose,
        )

    def _alpha(self, eps: float) -> float:
        return eps
