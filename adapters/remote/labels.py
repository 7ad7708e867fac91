"""From an API's label names to a fixed score vector."""

from __future__ import annotations

import re
from itertools import chain
from typing import Mapping, Sequence

import numpy as np

from bar_sdk.adapters.remote.presets.base import DenseAnswers
from bar_sdk.contract import check_bool, check_float
from bar_sdk.errors import InvalidInputError, ResponseFormatError

__all__ = ["LabelMapper", "normalize_label"]

_MEMO = 100_000  # most distinct API names remembered (a vendor's vocabulary is far smaller)


def normalize_label(name: str) -> str:
    """Case-folded, ``_`` read as a space, runs of spaces collapsed: ``"Tiger_cat " -> "tiger cat"``."""
    return re.sub(r"\s+", " ", name.replace("_", " ")).strip().casefold()


class LabelMapper:
    """Maps answers ``{api label: score}`` onto ``labels``, in that order.

    A returned name matches a label when their :func:`normalize_label` forms
    agree, or through ``aliases`` (``{api name: label}``). Names that match no
    label are ignored: they are the API's other classes.

    Labels the API did not return score ``missing_score`` (0 by default).
    That is the documented rule: a top-k or thresholded API says nothing about
    the labels it left out except that they scored below what it returned.
    Scores are used as the API gave them (after the vendor's scale is removed)
    and are never renormalised.

    In ``label_only`` mode the answer's top label (highest score, or the first
    name when there are no scores) gets 1 and every other label 0.
    """

    def __init__(
        self,
        labels: Sequence[str],
        aliases: Mapping[str, str] | None = None,
        missing_score: float = 0.0,
        label_only: bool = False,
    ) -> None:
        if isinstance(labels, str) or len(labels) < 2 or not all(isinstance(v, str) and v for v in labels):
            raise InvalidInputError(f"labels={labels!r}; expected at least two non-empty label names")
        self.labels = tuple(labels)
        self.missing_score = check_float(missing_score, "missing_score", low=0.0, high=1.0)
        self.label_only = check_bool(label_only, "label_only")
        self._index: dict[str, int] = {}
        self._exact: dict[str, int | None] = {}
        for i, label in enumerate(self.labels):
            key = normalize_label(label)
            if key in self._index:
                raise InvalidInputError(
                    f"labels {self.labels[self._index[key]]!r} and {label!r} are the same name "
                    "once case and '_' are ignored; expected distinct labels"
                )
            self._index[key] = i
        for api_name, label in (aliases or {}).items():
            if normalize_label(label) not in self._index:
                raise InvalidInputError(f"label_aliases maps {api_name!r} to {label!r}, which is not in labels")
            self._index[normalize_label(api_name)] = self._index[normalize_label(label)]
        # An answer naming every label once, in order (a dense score tensor read back, or its cached copy),
        # maps onto the labels as it is, unless an alias sends one of those names to another label.
        self._in_order = all(self._index[normalize_label(label)] == i for i, label in enumerate(self.labels))

    def index(self, name: str) -> int | None:
        """Position of the API label ``name`` in :attr:`labels`, or ``None``."""
        try:
            return self._exact[name]  # names repeat in every answer: normalise each one once
        except KeyError:
            i = self._index.get(normalize_label(name))
            if len(self._exact) < _MEMO:
                self._exact[name] = i
            return i

    def to_matrix(self, answers: Sequence[Mapping[str, float | None]]) -> np.ndarray:
        """The score rows (float64, ``(len(answers), len(labels))``), equal to stacking :meth:`to_vector`'s.

        Answers that name every label once, in order, are read in one pass over their values (a
        1,000-class answer costs microseconds instead of a thousand name lookups); the others row by row.
        """
        n, width = len(answers), len(self.labels)
        if isinstance(answers, DenseAnswers) and answers.labels == self.labels and self._in_order:
            if not self.label_only:
                rows: np.ndarray = answers.rows.copy()
                return rows
            out = np.zeros((n, width), dtype=np.float64)
            out[np.arange(n), answers.rows.argmax(axis=1)] = 1.0  # the first of tied top scores, as to_vector
            return out
        if self._in_order and not self.label_only and n:
            if all(len(a) == width and tuple(a) == self.labels for a in answers):
                try:
                    values = np.fromiter(chain.from_iterable(a.values() for a in answers), np.float64, n * width)
                except (TypeError, ValueError):  # a value that is not a number: the row path says which
                    values = None
                # NumPy reads None as NaN: a row with a NaN goes the row path, which refuses a None score
                if values is not None and not np.isnan(values).any():
                    return values.reshape(n, width)
        out = np.empty((n, width), dtype=np.float64)
        for i, answer in enumerate(answers):
            out[i] = self.to_vector(answer)
        return out

    def to_vector(self, answer: Mapping[str, float | None]) -> np.ndarray:
        """The score vector (float64, ``len(labels)``) for one image's answer."""
        out = np.full(len(self.labels), self.missing_score, dtype=np.float64)
        if self.label_only:
            ranked = sorted(answer.items(), key=lambda kv: -(kv[1] if kv[1] is not None else 0.0))
            top = next((i for i in (self.index(name) for name, _ in ranked) if i is not None), None)
            out[:] = 0.0
            if top is not None:
                out[top] = 1.0
            return out
        seen = np.zeros(len(self.labels), dtype=bool)
        for name, value in answer.items():
            i = self.index(name)
            if i is None:
                continue
            if value is None:
                raise ResponseFormatError(
                    f"the API returned label {name!r} without a score; for an API that answers with names "
                    "only, pass label_only=True"
                )
            out[i] = value if not seen[i] else max(out[i], value)
            seen[i] = True
        return out
