"""Boundary checks shared by the adapters: input shapes, label names, batches."""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from bar_sdk.contract import check_images, check_input_shape, check_int  # check_input_shape: re-exported
from bar_sdk.errors import InvalidInputError
from bar_sdk.ledger import checked_batch

__all__ = ["check_input_shape", "check_label_names", "check_batch", "check_per_channel", "check_probed_classes"]


def check_label_names(labels: Any, n_classes: int, name: str = "labels") -> tuple[str, ...] | None:
    """Return ``labels`` as a tuple of ``n_classes`` strings (or ``None``), or raise."""
    if labels is None:
        return None
    if isinstance(labels, str) or not isinstance(labels, Sequence) and not isinstance(labels, np.ndarray):
        raise InvalidInputError(f"{name}={labels!r}; expected a sequence of {n_classes} class names or None")
    names = tuple(str(s) for s in labels)
    if len(names) != n_classes:
        raise InvalidInputError(f"{name} has {len(names)} names; expected n_classes={n_classes} names or None")
    return names


def check_batch(x: Any, input_shape: tuple[int, int, int], name: str = "x") -> np.ndarray:
    """Validate a batch for ``predict_proba``: float32 NCHW in [0, 1] shaped like ``input_shape``.

    The batch a :class:`~bar_sdk.ledger.MeteredModel` is sending, which it
    scanned a moment ago, is not scanned again (:func:`~bar_sdk.ledger.checked_batch`);
    a direct call is checked in full.
    """
    if checked_batch(x, input_shape):
        return x
    arr = check_images(x, name, allow_nhwc=False)
    if arr.shape[1:] != tuple(input_shape):
        raise InvalidInputError(f"{name} has shape {np.shape(x)}; expected (n, {', '.join(map(str, input_shape))})")
    return arr


def check_per_channel(value: Any, name: str, channels: int, default: float, *, positive: bool) -> tuple[float, ...]:
    """Normalisation constants as one float per channel, or raise naming ``name``."""
    if value is None:
        return (default,) * channels
    values = (
        [value]
        if isinstance(value, numbers.Real)
        else (list(value) if isinstance(value, (list, tuple, np.ndarray)) else None)
    )
    expected = f"expected a finite number or {channels} per-channel numbers" + (" > 0" if positive else "")
    if values is None or len(values) not in (1, channels):
        raise InvalidInputError(f"{name}={value!r}; {expected}")
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name}={value!r}; {expected}") from None
    if not all(np.isfinite(floats)) or (positive and min(floats) <= 0):
        raise InvalidInputError(f"{name}={value!r}; {expected}")
    return tuple(floats * channels) if len(floats) == 1 else tuple(floats)


def check_probed_classes(n_classes: Any, found: int, what: str) -> int:
    """``n_classes`` as given (checked against ``found``, the outputs a probe run gave) or ``found``."""
    if n_classes is None:
        return int(found)
    n_classes_int = check_int(n_classes, "n_classes", low=2)
    if n_classes_int != found:
        raise InvalidInputError(f"n_classes={n_classes!r}; expected {found}, the {what}'s number of outputs")
    return n_classes_int
