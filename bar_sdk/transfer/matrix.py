"""Transfer matrices: attacks crafted on models you own, tried on models you do not.

An auditor's question, "if I craft attacks on a model I own, how many fool
the vendor's model?", answered for every (attack, source, target) triple:
adversarial examples are crafted on each source with each attack, rounded
to 8-bit images (what an API receives), and sent to every target through a
:class:`~bar_sdk.ledger.MeteredModel`, so each target's queries are counted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from bar_sdk.contract import check_class_labels, check_images, check_int, check_model
from bar_sdk.errors import InvalidInputError
from bar_sdk.ledger import MeteredModel, QueryLedger
from bar_sdk.reporting.files import check_out_dir
from bar_sdk.reporting.plots import check_plots, plot_transfer_matrix
from bar_sdk.reporting.transfer import (
    save_transfer_matrix,
    transfer_document,
    transfer_rows,
    write_transfer_csv,
    write_transfer_json,
)
from bar_sdk.transfer.ensemble import EnsembleModel

__all__ = ["TransferMatrix", "transfer_matrix", "to_uint8"]

logger = logging.getLogger(__name__)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Images in [0, 1] rounded to the nearest of the 256 levels an 8-bit file keeps."""
    return np.round(np.asarray(x, dtype=np.float64) * 255.0).astype(np.uint8)


@dataclass(frozen=True)
class TransferMatrix:
    """Success rates of adversarial examples, indexed ``[attack, source, target]``.

    Attributes
    ----------
    attacks, sources, targets : tuple of str
        The names along each axis, in the order of the mappings given.
    rates : ndarray (A, S, T)
        Share of the inputs the target classified correctly (clean) that it
        misclassifies once attacked. ``nan`` where it got none right. Where
        the target *is* the source (same object or same name), this is the
        source's own white-box rate.
    rates_source_correct : ndarray (A, S, T)
        The same, over inputs both the source and the target classified
        correctly (the attack leaves an input the source already gets
        wrong untouched, which caps ``rates``).
    fooled : ndarray (A, S, T) int
        Numerators of ``rates``.
    n_correct : ndarray (T,) int
        Inputs each target classified correctly (denominators of ``rates``).
    clean_accuracy : ndarray (T,)
        Each target's accuracy on the clean 8-bit inputs.
    white_box : ndarray (S, T) bool
        Where the target is the source itself.
    source_rates : ndarray (A, S)
        Each attack's success on its own source, over inputs the source
        classified correctly, as the attack itself measured it.
    source_accuracy : ndarray (S,)
        Each source's clean accuracy, as the attacks saw it.
    source_queries : ndarray (A, S) int
        Queries each attack spent on its source (local, free); for an
        :class:`EnsembleModel` source, the images sent to its members, all
        together (its ledger).
    target_queries : ndarray (T,) int
        Images sent to each target (clean pass included).
    max_linf : ndarray (A, S)
        Largest L-infinity change of any 8-bit adversarial image (check it
        against the attack's ``eps``).
    mean_l2 : ndarray (A, S)
        Mean L2 change over the images the attack changed.
    adversarial : ndarray (A, S, n, C, H, W) uint8
        The adversarial images exactly as the targets received them.
    y : ndarray (n,) int
        True labels.
    wall_time : float
        Seconds for the whole run.
    """

    attacks: tuple[str, ...]
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    rates: np.ndarray
    rates_source_correct: np.ndarray
    fooled: np.ndarray
    n_correct: np.ndarray
    clean_accuracy: np.ndarray
    white_box: np.ndarray
    source_rates: np.ndarray
    source_accuracy: np.ndarray
    source_queries: np.ndarray
    target_queries: np.ndarray
    max_linf: np.ndarray
    mean_l2: np.ndarray
    adversarial: np.ndarray
    y: np.ndarray
    wall_time: float

    def __post_init__(self) -> None:
        for value in self.__dict__.values():
            if isinstance(value, np.ndarray):
                value.flags.writeable = False

    @property
    def n_samples(self) -> int:
        return int(self.y.shape[0])

    def rate(self, attack: str, source: str, target: str) -> float:
        """``rates[attack, source, target]`` by name."""
        return float(
            self.rates[
                _index(self.attacks, attack, "attack"),
                _index(self.sources, source, "source"),
                _index(self.targets, target, "target"),
            ]
        )

    def rows(self) -> list[dict[str, Any]]:
        """One flat record per (attack, source, target), for tables."""
        return transfer_rows(self)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the images, JSON-ready (``nan`` as ``None``)."""
        return transfer_document(self)

    def to_csv(self, path: str | Path) -> Path:
        """Write :meth:`rows` as CSV."""
        return write_transfer_csv(self, path)

    def to_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON."""
        return write_transfer_json(self, path)

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """A heatmap PNG: one panel per attack, sources down, targets across.

        White-box cells (target is the source) are outlined. Needs matplotlib.
        """
        return plot_transfer_matrix(self, path, title)

    def save(self, out_dir: str | Path, images: bool = True) -> dict[str, Path]:
        """Write ``transfer_matrix.csv``, ``.json``, ``.png`` and the 8-bit images.

        Images go to ``adversarial/<attack>__<source>.npz`` (keys ``images``
        uint8 NCHW, ``labels``).
        """
        return save_transfer_matrix(self, out_dir, images)

    def __repr__(self) -> str:
        return (
            f"TransferMatrix(attacks={list(self.attacks)}, sources={list(self.sources)}, "
            f"targets={list(self.targets)}, n_samples={self.n_samples})"
        )


def transfer_matrix(
    sources: Mapping[str, Any],
    targets: Mapping[str, Any],
    attacks: Mapping[str, Any],
    x: Any,
    y: Any,
    *,
    max_target_queries: int | None = None,
    batch_size: int | None = None,
    out_dir: str | Path | None = None,
) -> TransferMatrix:
    """Craft adversarial examples on each source with each attack; try them on every target.

    Parameters
    ----------
    sources : mapping name -> model
        Models you own (white-box attacks need ``log_proba_gradient``). A
        list or tuple of models as a value is one source: their
        :class:`EnsembleModel`.
    targets : mapping name -> model
        Any black boxes (local models, :class:`bar_sdk.adapters.remote.RemoteModel`).
        Put a source among the targets (the same object) to get its
        white-box rate on the diagonal.
    attacks : mapping name -> attack
        Each an attack object whose ``clone(model=...)`` gives the same
        attack on another model (every :mod:`bar_sdk.attacks` attack; the
        model it was built with is ignored), or a callable
        ``make(model) -> attack``. An attack has ``run(x, y)`` returning an
        object with ``x_adv``, ``success`` and ``clean_label`` (an
        :class:`~bar_sdk.attacks.AttackResult`). Attacks with a
        ``quantize`` parameter are run with ``quantize=True``, so they
        judge their own success on the 8-bit images the targets receive.
    x : array (n, C, H, W) or (n, H, W)
        uint8, or floats in [0, 1] (rounded to 8 bits first, as an API
        would receive them), shaped like the models' ``input_shape``.
    y : array (n,) int
        True labels in the models' shared label space.
    max_target_queries : int, optional
        Cap per target. The run is refused before any query when
        ``n * (1 + attacks * sources)`` images would not fit.
    batch_size : int, optional
        Largest batch sent to a target at once.
    out_dir : str or path, optional
        Where to write CSV, JSON, the heatmap PNG and the images
        (:meth:`TransferMatrix.save`); created (and checked writable)
        before the first query.

    Returns
    -------
    TransferMatrix
        ``rates[attack, source, target]``: success over inputs the target
        classified correctly.

    Examples
    --------
    >>> from bar_sdk.attacks import FGSM, PGD                                  # doctest: +SKIP
    >>> m = transfer_matrix({"cnn": cnn, "mlp": mlp, "both": [cnn, mlp]},
    ...                     {"cnn": cnn, "mlp": mlp, "api": remote},
    ...                     {"fgsm": FGSM(None, eps=8 / 255), "pgd": PGD(None, eps=8 / 255, steps=10)},
    ...                     x, y, out_dir="runs/transfer")                     # doctest: +SKIP
    >>> m.rate("pgd", "cnn", "api")                                           # doctest: +SKIP
    """
    started = time.perf_counter()
    src = _models(sources, "sources", ensemble=True)
    tgt = _models(targets, "targets", ensemble=False)
    att = _mapping(attacks, "attacks")
    shapes = {
        (name, kind): check_model(m, f"{kind}[{name!r}]")
        for kind, ms in (("sources", src), ("targets", tgt))
        for name, m in ms.items()
    }
    (first, first_kind), (n_classes, shape) = next(iter(shapes.items()))
    for (name, kind), found in shapes.items():
        if found != (n_classes, shape):
            raise InvalidInputError(
                f"{kind}[{name!r}] has n_classes={found[0]}, input_shape={found[1]}; expected n_classes={n_classes}, "
                f"input_shape={shape} like {first_kind}[{first!r}] (one label space, one input shape)"
            )
    xf = check_images(x, "x")
    if xf.shape[1:] != shape:
        raise InvalidInputError(f"x has images shaped {xf.shape[1:]}; expected the models' input_shape={shape}")
    y = check_class_labels(y, len(xf), n_classes)
    max_target_queries = check_int(max_target_queries, "max_target_queries", low=1, allow_none=True)
    batch_size = check_int(batch_size, "batch_size", low=1, allow_none=True)
    n = len(xf)
    need = n * (1 + len(att) * len(src))
    if max_target_queries is not None and need > max_target_queries:
        raise InvalidInputError(
            f"max_target_queries={max_target_queries} is too small: each target answers {n} clean images and "
            f"{n} x {len(att)} attacks x {len(src)} sources adversarial ones; expected at least {need}"
        )
    bound = {(a, s): _bind(template, model, a, s) for a, template in att.items() for s, model in src.items()}
    x8 = to_uint8(xf)
    xq = check_images(x8, "x")
    for attack in bound.values():  # every attack's own checks, before the first one runs
        if callable(getattr(attack, "check", None)):
            attack.check(xq, y)
    check_plots(out_dir)  # the heatmap needs matplotlib: refused now, not after the queries
    out_dir = check_out_dir(out_dir)  # created with the other checks, before the first query
    n_a, n_s, n_t = len(att), len(src), len(tgt)
    adversarial = np.empty((n_a, n_s) + x8.shape, dtype=np.uint8)
    source_rates = np.full((n_a, n_s), np.nan)
    source_correct = np.zeros((n_a, n_s, n), dtype=bool)
    source_queries = np.zeros((n_a, n_s), dtype=np.int64)
    max_linf = np.zeros((n_a, n_s))
    mean_l2 = np.zeros((n_a, n_s))
    for a, attack in enumerate(att):
        for s, source in enumerate(src):
            members = src[source].ledger.queries if isinstance(src[source], EnsembleModel) else None
            result = bound[attack, source].run(xq, y)
            adv8 = to_uint8(np.clip(np.asarray(result.x_adv, dtype=np.float64), 0.0, 1.0))
            adversarial[a, s] = adv8
            correct = np.asarray(result.clean_label) == y
            source_correct[a, s] = correct
            if correct.any():
                source_rates[a, s] = float(np.asarray(result.success, dtype=bool)[correct].mean())
            source_queries[a, s] = (
                int(getattr(result, "total_queries", 0)) if members is None else (src[source].ledger.queries - members)
            )
            delta = (adv8.astype(np.float64) - x8.astype(np.float64)).reshape(n, -1) / 255.0
            max_linf[a, s] = float(np.abs(delta).max()) if delta.size else 0.0
            changed = np.abs(delta).max(axis=1) > 0
            mean_l2[a, s] = float(np.sqrt((delta[changed] ** 2).sum(axis=1)).mean()) if changed.any() else 0.0
            logger.info(
                "%s on %s: white-box rate %.3f, %d source queries",
                attack,
                source,
                source_rates[a, s],
                source_queries[a, s],
            )

    fooled = np.zeros((n_a, n_s, n_t), dtype=np.int64)
    fooled_both = np.zeros((n_a, n_s, n_t), dtype=np.int64)
    both = np.zeros((n_a, n_s, n_t), dtype=np.int64)
    n_correct = np.zeros(n_t, dtype=np.int64)
    clean_accuracy = np.zeros(n_t)
    target_queries = np.zeros(n_t, dtype=np.int64)
    for t, (tname, model) in enumerate(tgt.items()):
        metered = MeteredModel(model, QueryLedger(max_target_queries), batch_size)
        correct = metered.predict_proba(xq, purpose="clean").argmax(axis=1) == y
        n_correct[t], clean_accuracy[t] = int(correct.sum()), float(correct.mean())
        for a, attack in enumerate(att):
            for s, source in enumerate(src):
                pred = metered.predict_proba(
                    adversarial[a, s].astype(np.float32) / np.float32(255.0), purpose=f"{attack}/{source}"
                ).argmax(axis=1)
                wrong = (pred != y) & correct
                fooled[a, s, t] = int(wrong.sum())
                fooled_both[a, s, t] = int((wrong & source_correct[a, s]).sum())
                both[a, s, t] = int((correct & source_correct[a, s]).sum())
        target_queries[t] = metered.ledger.queries
        logger.info("target %s: clean accuracy %.3f, %d queries", tname, clean_accuracy[t], target_queries[t])

    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(n_correct > 0, fooled / np.maximum(n_correct, 1), np.nan)
        rates_both = np.where(both > 0, fooled_both / np.maximum(both, 1), np.nan)
    white_box = np.array(
        [[(sname == tname) or (src[sname] is tgt[tname]) for tname in tgt] for sname in src], dtype=bool
    ).reshape(n_s, n_t)
    source_accuracy = source_correct[0].mean(axis=1)
    result = TransferMatrix(
        attacks=tuple(att),
        sources=tuple(src),
        targets=tuple(tgt),
        rates=rates,
        rates_source_correct=rates_both,
        fooled=fooled,
        n_correct=n_correct,
        clean_accuracy=clean_accuracy,
        white_box=white_box,
        source_rates=source_rates,
        source_accuracy=source_accuracy,
        source_queries=source_queries,
        target_queries=target_queries,
        max_linf=max_linf,
        mean_l2=mean_l2,
        adversarial=adversarial,
        y=y,
        wall_time=time.perf_counter() - started,
    )
    if out_dir is not None:
        result.save(out_dir)
    return result


# --------------------------------------------------------------------------- helpers
def _mapping(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not value:
        raise InvalidInputError(f"{name}={type(value).__name__}; expected a non-empty dict of name -> object")
    bad = [k for k in value if not isinstance(k, str) or not k]
    if bad:
        raise InvalidInputError(f"{name} has keys {bad!r}; expected non-empty strings (they name rows and files)")
    return dict(value)


def _models(value: Any, name: str, ensemble: bool) -> dict[str, Any]:
    out = _mapping(value, name)
    for key, model in out.items():
        if isinstance(model, (list, tuple)):
            if not ensemble:
                raise InvalidInputError(f"{name}[{key!r}] is a {type(model).__name__}; expected one model")
            out[key] = EnsembleModel(list(model))
    return out


def _bind(template: Any, model: Any, attack: str, source: str) -> Any:
    """The attack ``template`` aimed at ``model``."""
    if callable(getattr(template, "clone", None)) and callable(getattr(template, "get_params", None)):
        extra = {"quantize": True} if "quantize" in template.get_params() else {}
        bound = template.clone(model=model, **extra)
    elif callable(template):
        bound = template(model)
    else:
        raise InvalidInputError(
            f"attacks[{attack!r}]={type(template).__name__}; expected an attack with clone(model=...) "
            "(bar_sdk.attacks) or a callable make(model) -> attack"
        )
    if not callable(getattr(bound, "run", None)):
        raise InvalidInputError(
            f"attacks[{attack!r}] for source {source!r} gave {type(bound).__name__}, which has no run(x, y); "
            "expected an attack"
        )
    return bound


def _index(names: tuple[str, ...], name: str, kind: str) -> int:
    try:
        return names.index(name)
    except ValueError:
        raise InvalidInputError(f"{kind}={name!r}; expected one of {list(names)}") from None
