"""Program transfer: a program trained on one model, evaluated on others.

A fitted :class:`~bar_sdk.reprogram.BARClassifier` holds a program (the
trained frame) and a label mapping. :func:`evaluate_program` puts the same
frame in front of other models, either keeping the mapping (models that
share the label space) or re-estimating it on each model from one counted
pass over some labelled target data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from sklearn.utils.validation import check_is_fitted

from bar_sdk import losses as L
from bar_sdk.contract import check_int, check_labels, check_model
from bar_sdk.errors import InvalidInputError
from bar_sdk.ledger import MeteredModel, QueryLedger
from bar_sdk.mapping import check_mapping_size, frequency_mapping, source_frequencies
from bar_sdk.reprogram_steps import score_views
from bar_sdk.transfer.metrics import classification_metrics

__all__ = ["ProgramTransfer", "evaluate_program", "program_scores"]

#: images built and sent per model call
_CHUNK = 2048


@dataclass(frozen=True)
class ProgramTransfer:
    """How one trained program does in front of several models.

    Attributes
    ----------
    models : tuple of str
    metrics : dict name -> dict
        ``accuracy``, ``balanced_accuracy``, ``auc`` on the test data.
    queries : dict name -> int
        Images sent to each model (mapping pass included).
    remapped : bool
        Whether the label mapping was re-estimated on each model.
    mappings : dict name -> dict
        The mapping used for each model (target class -> source labels). When
        clf's mapping is kept and clf has a logistic readout (``readout_``),
        predictions come from that readout and this is the mapping it trained with.
    """

    models: tuple[str, ...]
    metrics: dict[str, Any]
    queries: dict[str, Any]
    remapped: bool
    mappings: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "model": m,
                **{k: round(v, 6) for k, v in self.metrics[m].items()},
                "queries": self.queries[m],
                "remapped": self.remapped,
            }
            for m in self.models
        ]


def program_scores(clf: Any, model: Any, X: Any, purpose: str = "predict") -> tuple[np.ndarray, int]:
    """Scores ``(n, model.n_classes)`` of ``model`` on ``X`` seen through ``clf``'s program (each image read
    from ``clf.views`` views and combined, as :meth:`BARClassifier.source_scores` reads them).

    Returns the scores and the number of images sent (all counted by a
    :class:`~bar_sdk.ledger.MeteredModel`).
    """
    check_is_fitted(clf, "theta_")
    program = clf.program_obj_
    _, shape = check_model(model)
    if tuple(shape) != tuple(program.input_shape):
        raise InvalidInputError(
            f"model.input_shape={shape}; expected {tuple(program.input_shape)}, the input shape the program was "
            "trained for"
        )
    metered = MeteredModel(model, QueryLedger())
    embedded = program.embed(clf.layout_.transform(X))
    # each image read from clf's views, as its readout was fitted on them (one view: _CHUNK images a call)
    scores = score_views(metered, program, clf.theta_, embedded, purpose, getattr(clf, "views", 1), chunk=_CHUNK)
    return scores, int(metered.ledger.queries)


def evaluate_program(
    clf: Any,
    models: Mapping[str, Any],
    X_test: Any,
    y_test: Any,
    *,
    X_map: Any = None,
    y_map: Any = None,
    labels_per_class: int | None = None,
) -> ProgramTransfer:
    """Evaluate ``clf``'s trained program in front of each of ``models``.

    Parameters
    ----------
    clf : fitted BARClassifier
        Trained on any model (white-box or black-box).
    models : mapping name -> model
        Models with the input shape the program was trained for.
    X_test, y_test : test data
        As given to ``clf.predict`` / ``clf.score``.
    X_map, y_map : labelled target data, optional
        When given, the frequency label mapping is re-estimated on each
        model from one pass over them (counted), as BAR's own mapping pass
        would; otherwise ``clf``'s mapping and readout are kept, which need models with
        the same label space.
    labels_per_class : int, optional
        Source labels per target class when re-mapping; by default as many
        as ``clf`` used.

    Returns
    -------
    ProgramTransfer
    """
    check_is_fitted(clf, "theta_")
    if not isinstance(models, Mapping) or not models:
        raise InvalidInputError(f"models={type(models).__name__}; expected a non-empty dict of name -> model")
    k = len(clf.classes_)
    y_test, _ = check_labels(y_test, len(np.asarray(X_test)), "y_test")
    if (X_map is None) != (y_map is None):
        raise InvalidInputError("X_map and y_map go together; expected both (re-map on each model) or neither")
    remap = X_map is not None
    if remap:
        y_map, k_map = check_labels(y_map, len(np.asarray(X_map)), "y_map")
        if k_map != k:
            raise InvalidInputError(f"y_map has {k_map} classes; expected {k}, the classes clf was trained on")
    per_class = check_int(labels_per_class, "labels_per_class", low=1, allow_none=True) or clf.mapping_.sources.shape[1]
    for name, model in models.items():
        n_source, _ = check_model(model, f"models[{name!r}]")
        if remap:
            check_mapping_size(n_source, k, per_class)
        elif n_source != clf.mapping_.n_source:
            raise InvalidInputError(
                f"models[{name!r}] has n_classes={n_source}; keeping clf's mapping needs {clf.mapping_.n_source} "
                "(the same label space): pass X_map, y_map to re-estimate the mapping on each model"
            )
    metrics, queries, mappings = {}, {}, {}
    for name, model in models.items():
        spent = 0
        if remap:
            scores, spent = program_scores(clf, model, X_map, purpose="mapping")
            labels = getattr(model, "labels", None)
            mapping = frequency_mapping(
                source_frequencies(scores, y_map, k),
                per_class,
                None if labels is None else tuple(str(v) for v in labels),
            )
        else:
            mapping = clf.mapping_
        scores, used = program_scores(clf, model, X_test)
        # clf's own readout (a learned one included) where its mapping is kept; a fresh mapping's mean scores else
        proba = L.normalise(mapping.target_scores(scores)) if remap else clf.proba_from_scores(scores)
        metrics[name] = classification_metrics(y_test, proba)
        queries[name] = spent + used
        mappings[name] = mapping.describe()
    return ProgramTransfer(models=tuple(models), metrics=metrics, queries=queries, remapped=remap, mappings=mappings)
