"""Reading an Open Inference answer: a scores tensor (probabilities or logits) or Triton's classification
extension (top-k strings ``"<score>:<index>[:<label>]"``), one answer per image."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bar_sdk.adapters.remote.http import HttpResponse
from bar_sdk.adapters.remote.presets.base import Answer, DenseAnswers
from bar_sdk.adapters.remote.presets.open_inference_tensors import HEADER_LENGTH, decode_tensors
from bar_sdk.errors import ResponseFormatError

__all__ = ["read_answers", "parse_classification"]


def parse_classification(entry: bytes, where: str) -> tuple[float, int, str | None]:
    """``(score, index, label or None)`` from one classification-extension string ``"0.9:3:cat"``."""
    text = entry.decode("utf-8", errors="replace")
    parts = text.split(":", 2)
    try:
        value, index = float(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        raise ResponseFormatError(f"{where} is {text!r}; expected '<score>:<index>[:<label>]'") from None
    if not np.isfinite(value) or index < 0:
        raise ResponseFormatError(f"{where} is {text!r}; expected a finite score and an index >= 0")
    return value, index, parts[2] if len(parts) == 3 else None


def read_answers(
    response: HttpResponse, n_images: int, *, output_name: str | None, labels: Sequence[str], scores: str
) -> Sequence[Answer]:
    """One answer per image from an infer response (``scores``: "probabilities" or "logits"): a scores
    tensor as one :class:`DenseAnswers` block, the classification extension's strings as dicts."""
    doc, tensors = decode_tensors(
        response.content, response.headers.get(HEADER_LENGTH.lower()), "outputs", "open_inference response"
    )
    if not tensors:
        raise ResponseFormatError("open_inference response has an empty 'outputs' list")
    names = [meta.get("name") for meta, _ in tensors]
    if output_name is None:
        meta, values = tensors[0]
    elif output_name in names:
        meta, values = tensors[names.index(output_name)]
    else:
        raise ResponseFormatError(f"open_inference response has outputs {names}; expected {output_name!r}")
    where = f"open_inference output {meta.get('name')!r}"
    if meta["datatype"] == "BYTES":
        return _read_classes(values, n_images, where, labels, scores)
    rows = np.asarray(values, dtype=np.float64)
    rows = rows.reshape(n_images, -1) if rows.size % max(n_images, 1) == 0 else rows
    if rows.ndim != 2 or rows.shape != (n_images, len(labels)):
        raise ResponseFormatError(
            f"{where} has shape {meta['shape']} for {n_images} image(s); expected "
            f"{len(labels)} scores per image, one per label (labels must list the "
            "model's classes in output order)"
        )
    if not np.all(np.isfinite(rows)):
        raise ResponseFormatError(f"{where} holds a non-finite score")
    if scores == "logits":
        rows = np.exp(rows - rows.max(axis=1, keepdims=True))
        rows /= rows.sum(axis=1, keepdims=True)
    elif rows.min() < 0.0 or rows.max() > 1.0:
        raise ResponseFormatError(
            f"{where} holds scores in [{rows.min():g}, {rows.max():g}]; expected "
            "probabilities in [0, 1] (pass scores='logits' for a model that outputs logits)"
        )
    return DenseAnswers(labels, rows)


def _read_classes(values: list[bytes], n_images: int, where: str, labels: Sequence[str], scores: str) -> list[Answer]:
    if not values and n_images:
        raise ResponseFormatError(f"{where} holds no classification entries")
    if len(values) % n_images:
        raise ResponseFormatError(f"{where} holds {len(values)} classification entries for {n_images} image(s)")
    k = len(values) // n_images
    answers: list[Answer] = []
    for i in range(n_images):
        answer: Answer = {}
        for j, entry in enumerate(values[i * k : (i + 1) * k]):
            value, index, label = parse_classification(entry, f"{where} entry {i * k + j}")
            if not 0.0 <= value <= 1.0 and scores == "probabilities":
                raise ResponseFormatError(f"{where} entry {i * k + j} scores {value:g}; expected [0, 1]")
            if index >= len(labels):
                raise ResponseFormatError(
                    f"{where} entry {i * k + j} names class {index} ({label!r}); labels "
                    f"has {len(labels)} (labels must list every class in order)"
                )
            answer[labels[index]] = value
        answers.append(answer)
    return answers
