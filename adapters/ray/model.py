"""RayModel: one model, n replicas on a Ray cluster, seen as one black box."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from bar_sdk.contract import check_float, check_images, check_int, check_scores, is_label_only
from bar_sdk.distributed.actors import _ensure_ray
from bar_sdk.errors import InvalidInputError

__all__ = ["RayModel"]


class _Replica:
    """The actor body: one copy of the model, and a count of the images it answered."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        from bar_sdk.contract import check_model

        self.model = factory()
        self.n_classes, self.input_shape = check_model(self.model, "model_factory()")
        self.answered = 0

    def info(self) -> dict[str, Any]:
        labels = getattr(self.model, "labels", None)
        return {
            "n_classes": self.n_classes,
            "input_shape": tuple(self.input_shape),
            "labels": None if labels is None else list(labels),
            "label_only": is_label_only(self.model),
        }

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        out = np.asarray(self.model.predict_proba(x))
        self.answered += len(x)
        return out

    def count(self) -> int:
        return self.answered


class RayModel:
    """A model copied onto ``replicas`` Ray actors; ``predict_proba`` splits each batch over them.

    It satisfies the black-box contract, so ``BARClassifier`` and every attack
    run on it unchanged. A batch of ``n`` images is cut into ``replicas``
    contiguous parts (``np.array_split``), one per replica, answered in
    parallel and put back in order. Counting stays where it always is: the
    ``MeteredModel`` that calls this model counts every image once; the
    replicas keep their own counts (:meth:`replica_counts`), which add up to it.

    Parameters
    ----------
    model_factory : callable
        ``model_factory()`` builds the model inside each replica (so a large
        network is loaded on its own worker, on its own GPU when
        ``num_gpus`` is set). It is pickled (cloudpickle) to the workers.
    replicas : int
        Number of actors.
    num_cpus, num_gpus : float
        Resources each replica holds.
    min_batch_per_replica : int
        Batches smaller than ``replicas * min_batch_per_replica`` use fewer
        replicas (a handful of images is not worth several round trips).
    address : str, optional
        Cluster to join if Ray is not started (``"auto"`` for ``ray start``).

    Notes
    -----
    Replicas are never restarted and their calls never retried by Ray
    (``max_restarts=0``, ``max_task_retries=0``): a retried call would let a
    model see images the ledger counted once. A replica that dies raises
    ``ray.exceptions.RayActorError`` from ``predict_proba``. Copies
    (``sklearn.clone``) share the replicas; :meth:`close` ends them.

    Examples
    --------
    >>> model = RayModel(lambda: TorchModel(make_net(), input_shape=(3, 32, 32)), replicas=4)  # doctest: +SKIP
    >>> BARClassifier(model, ...).fit(X, y)                                                     # doctest: +SKIP
    """

    def __init__(
        self,
        model_factory: Callable[[], Any],
        replicas: int = 2,
        *,
        num_cpus: float = 1,
        num_gpus: float = 0,
        min_batch_per_replica: int = 1,
        address: str | None = None,
    ) -> None:
        if not callable(model_factory):
            raise InvalidInputError(f"model_factory={model_factory!r}; expected a function that builds the model")
        self.replicas = check_int(replicas, "replicas", low=1)
        check_float(num_cpus, "num_cpus", low=0.0)
        check_float(num_gpus, "num_gpus", low=0.0)
        self.min_batch_per_replica = check_int(min_batch_per_replica, "min_batch_per_replica", low=1)
        ray = _ensure_ray("RayModel", address)
        actor = ray.remote(_Replica).options(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0, max_task_retries=0)
        self._ray = ray
        self._actors = [actor.remote(model_factory) for _ in range(self.replicas)]
        info = ray.get([a.info.remote() for a in self._actors])
        if any(i != info[0] for i in info):
            raise InvalidInputError(
                "model_factory() built models that differ in n_classes, input_shape or labels; "
                "expected the same model in every replica"
            )
        self.n_classes = int(info[0]["n_classes"])
        self.input_shape = tuple(info[0]["input_shape"])
        self.labels = info[0]["labels"]
        self.label_only = bool(info[0]["label_only"])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Scores ``(n, n_classes)``, in the order of ``x``."""
        x = check_images(x, "x", allow_nhwc=False)
        if x.shape[1:] != self.input_shape:
            raise InvalidInputError(f"x has shape {x.shape}; expected (n, {', '.join(map(str, self.input_shape))})")
        n = len(x)
        if n == 0:
            return np.zeros((0, self.n_classes))
        k = max(1, min(self.replicas, n // self.min_batch_per_replica))
        parts = np.array_split(x, k)
        answers = self._ray.get([a.predict_proba.remote(p) for a, p in zip(self._actors, parts, strict=False)])
        return np.concatenate(
            [check_scores(a, len(p), self.n_classes, "replica") for a, p in zip(answers, parts, strict=False)]
        )

    def replica_counts(self) -> list[int]:
        """Images each replica has answered (they add up to what the callers' ledgers counted)."""
        counts: list[int] = self._ray.get([a.count.remote() for a in self._actors])  # Ray is untyped
        return counts

    def close(self) -> None:
        """End the replicas."""
        for a in self._actors:
            self._ray.kill(a, no_restart=True)
        self._actors = []

    def __enter__(self) -> RayModel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __deepcopy__(self, memo: dict[int, Any]) -> RayModel:
        return self

    def __copy__(self) -> RayModel:
        return self

    def __repr__(self) -> str:
        return f"RayModel(replicas={self.replicas}, n_classes={self.n_classes}, input_shape={self.input_shape})"
