"""The black-box contract and the checks at the boundary.

A *black box* is any object with

- ``predict_proba(x) -> ndarray (n, n_classes)``: scores for a float32 batch
  ``x`` shaped ``(n, C, H, W)`` with values in [0, 1];
- ``n_classes``: the number of scores per image;
- ``input_shape``: ``(C, H, W)``;
- optionally ``labels``: a sequence of ``n_classes`` names.

No base class is needed (duck typing). Scores need not sum to one: an API
that returns only its top-k labels fills the rest with zeros.

A model that can also give exact gradients (for white-box baselines only)
additionally implements :class:`GradientModel`.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Callable, Literal, Protocol, Sequence, overload, runtime_checkable

import numpy as np

from bar_sdk.errors import InvalidInputError, InvalidModelError, ModelOutputError

__all__ = [
    "BlackBox",
    "GradientModel",
    "check_model",
    "check_images",
    "check_input_shape",
    "check_scores",
    "encode_labels",
    "check_labels",
    "check_class_labels",
    "as_input_array",
    "NonNumericInputError",
    "has_gradients",
    "is_label_only",
]


@runtime_checkable
class BlackBox(Protocol):
    """What bar-sdk needs from a model: scores out, nothing else."""

    n_classes: int
    input_shape: tuple[int, int, int]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - protocol
        ...


@runtime_checkable
class GradientModel(Protocol):
    """Optional capability: exact input gradients (white-box baselines only).

    ``log_proba_gradient(x, loss_fn)`` runs the model on ``x``, hands the
    log-probabilities ``(n, n_classes)`` to ``loss_fn``, which returns
    ``(loss, dloss_dlogp)``, and returns ``(loss, dloss_dx)`` with
    ``dloss_dx`` shaped like ``x``. Every loss of the scores can be written
    this way (``dL/dlogp = dL/dp * p``), and log-probabilities are the
    numerically stable form (a logit margin equals a log-probability margin).
    """

    def log_proba_gradient(
        self, x: np.ndarray, loss_fn: Callable[[np.ndarray], tuple[float, np.ndarray]]
    ) -> tuple[float, np.ndarray]:  # pragma: no cover - protocol
        ...


def has_gradients(model: Any) -> bool:
    """True when ``model`` offers exact input gradients."""
    return callable(getattr(model, "log_proba_gradient", None))


def is_label_only(model: Any) -> bool:
    """True when ``model`` (or a model it wraps) declares ``label_only=True``."""
    seen = 0
    while model is not None and seen < 8:
        if getattr(model, "label_only", False) is True:
            return True
        model = getattr(model, "model", None)
        seen += 1
    return False


def check_input_shape(
    value: Any, name: str = "input_shape", *, error: type[Exception] = InvalidInputError
) -> tuple[int, int, int]:
    """Return ``value`` as ``(C, H, W)``: integers, C in (1, 3), H, W >= 1; or raise ``error`` naming ``name``.

    The one input-shape check: a model's ``input_shape`` (:func:`check_model`,
    raising :class:`InvalidModelError`) and an adapter's ``input_shape``
    argument go through it.
    """
    try:
        shape = tuple(value)
    except TypeError:
        shape = None
    if (
        shape is None
        or len(shape) != 3
        or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in shape)
        or shape[0] not in (1, 3)
        or min(shape[1:]) < 1
    ):
        raise error(f"{name}={value!r}; expected a tuple (C, H, W) of integers with C in (1, 3) and H, W >= 1")
    c, h, w = (int(s) for s in shape)
    return c, h, w


def check_model(model: Any, name: str = "model") -> tuple[int, tuple[int, int, int]]:
    """Check that ``model`` satisfies the contract; return ``(n_classes, input_shape)``."""
    if not callable(getattr(model, "predict_proba", None)):
        raise InvalidModelError(
            f"{name}={type(model).__name__!s} has no callable predict_proba; expected an object with "
            "predict_proba(x) -> (n, n_classes), n_classes and input_shape (C, H, W)"
        )
    n_classes = getattr(model, "n_classes", None)
    if not isinstance(n_classes, numbers.Integral) or isinstance(n_classes, bool) or n_classes < 2:
        raise InvalidModelError(f"{name}.n_classes={n_classes!r}; expected an integer >= 2")
    shape = check_input_shape(getattr(model, "input_shape", None), f"{name}.input_shape", error=InvalidModelError)
    labels = getattr(model, "labels", None)
    if labels is not None and len(labels) != n_classes:
        raise InvalidModelError(f"{name}.labels has {len(labels)} names; expected n_classes={n_classes}")
    return int(n_classes), shape


def check_images(x: Any, name: str = "X", *, allow_nhwc: bool = True) -> np.ndarray:
    """Validate an image batch and return it as float32 NCHW in [0, 1].

    Accepted: ``(n, H, W)`` (grey) or ``(n, C, H, W)`` with C in (1, 3); also
    ``(n, H, W, C)`` when that reading is unambiguous (C in (1, 3) last and
    not second). dtype uint8 (divided by 255) or floating point with every
    value in [0, 1]. Anything else is refused, never clipped.
    """
    arr = np.asarray(x)
    if arr.dtype == object or not (arr.dtype == np.uint8 or np.issubdtype(arr.dtype, np.floating)):
        raise InvalidInputError(f"{name} has dtype {arr.dtype}; expected uint8 or floats in [0, 1]")
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4:
        if arr.shape[1] not in (1, 3):
            if allow_nhwc and arr.shape[3] in (1, 3):
                arr = np.moveaxis(arr, 3, 1)
            else:
                raise InvalidInputError(
                    f"{name} has shape {arr.shape}; expected (n, C, H, W) or (n, H, W, C) with C in (1, 3)"
                )
    else:
        raise InvalidInputError(f"{name} has shape {arr.shape}; expected images (n, H, W) or (n, C, H, W)")
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{name} is empty (shape {arr.shape}); expected at least one image")
    if min(arr.shape[2:]) < 1:
        raise InvalidInputError(f"{name} has shape {arr.shape}; expected H, W >= 1")
    if arr.dtype == np.uint8:
        scaled: np.ndarray = np.ascontiguousarray(arr, dtype=np.float32) / np.float32(255.0)
        return scaled
    # Two passes, not three: min and max propagate NaN and show an infinity, so a finite pair
    # proves every value finite; the count of bad values is taken only to word the error.
    lo, hi = float(arr.min()), float(arr.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise InvalidInputError(f"{name} has {bad} NaN or infinite values; expected floats in [0, 1]")
    if lo < 0.0 or hi > 1.0:
        raise InvalidInputError(
            f"{name} has values in [{lo:.4g}, {hi:.4g}]; expected floats in [0, 1] "
            "(scale them yourself, or pass uint8; nothing is clipped silently)"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


def check_scores(scores: Any, n: int, n_classes: int, name: str = "model") -> np.ndarray:
    """Validate what a model returned for a batch of ``n`` images."""
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise ModelOutputError(
            f"{name}.predict_proba returned {type(scores).__name__}; expected a numeric array (n, n_classes)"
        ) from None
    if arr.shape != (n, n_classes):
        raise ModelOutputError(
            f"{name}.predict_proba returned shape {arr.shape} for {n} images; expected ({n}, {n_classes})"
        )
    if not np.all(np.isfinite(arr)):
        raise ModelOutputError(f"{name}.predict_proba returned NaN or infinite scores; expected finite scores >= 0")
    if arr.size and arr.min() < 0:
        raise ModelOutputError(
            f"{name}.predict_proba returned a negative score ({arr.min():.4g}); expected scores >= 0"
        )
    return arr


# --- small parameter checks shared by estimators and attacks -----------------------------


@overload
def check_int(
    value: Any, name: str, *, low: int | None = ..., high: int | None = ..., allow_none: Literal[False] = ...
) -> int: ...
@overload
def check_int(
    value: Any, name: str, *, low: int | None = ..., high: int | None = ..., allow_none: bool
) -> int | None: ...
def check_int(
    value: Any, name: str, *, low: int | None = None, high: int | None = None, allow_none: bool = False
) -> int | None:
    """Return ``value`` as int, or raise naming ``name`` and the bounds.

    ``None`` is returned only for ``value=None`` with ``allow_none=True``.
    """
    if value is None and allow_none:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise InvalidInputError(f"{name}={value!r}; expected an integer" + _bounds(low, high))
    number = int(value)
    if (low is not None and number < low) or (high is not None and number > high):
        raise InvalidInputError(f"{name}={value!r}; expected an integer" + _bounds(low, high))
    return number


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` as bool when it is True or False (NumPy's too), else raise naming ``name``.

    Truthy stand-ins (``"yes"``, ``"no"``, ``1``) are refused: ``"no"`` would read as True.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidInputError(f"{name}={value!r}; expected True or False")
    return bool(value)


@overload
def check_float(
    value: Any,
    name: str,
    *,
    low: float | None = ...,
    high: float | None = ...,
    low_open: bool = ...,
    allow_none: Literal[False] = ...,
) -> float: ...
@overload
def check_float(
    value: Any, name: str, *, low: float | None = ..., high: float | None = ..., low_open: bool = ..., allow_none: bool
) -> float | None: ...
def check_float(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    allow_none: bool = False,
) -> float | None:
    """Return ``value`` as float, or raise naming ``name`` and the bounds.

    ``None`` is returned only for ``value=None`` with ``allow_none=True``.
    """
    if value is None and allow_none:
        return None
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(np.asarray(value)):
        raise InvalidInputError(f"{name}={value!r}; expected a finite number" + _bounds(low, high, low_open))
    number = float(value)
    if (low is not None and (number < low or (low_open and number == low))) or (high is not None and number > high):
        raise InvalidInputError(f"{name}={value!r}; expected a number" + _bounds(low, high, low_open))
    return number


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise listing them."""
    if not isinstance(value, str) or value not in choices:
        raise InvalidInputError(f"{name}={value!r}; expected one of {', '.join(map(repr, choices))}")
    return value


def _integer_labels(y: Any, n: int, name: str, expected: str) -> np.ndarray:
    """``y`` as int64 ``(n,)``: a column ``(n, 1)`` is raveled; floats must be whole (``1.0``, not ``0.5``).

    The one rule for integer labels: whole-valued floats are accepted (labels
    read from CSV or a float array are common), anything else not integer is
    refused, naming ``expected``.
    """
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InvalidInputError(f"{name} has shape {np.asarray(y).shape}; expected ({n},) labels, one per sample")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise InvalidInputError(f"{name} has non-integer values; expected integer labels {expected}")
    elif arr.dtype.kind not in "iu":
        raise InvalidInputError(f"{name} has dtype {arr.dtype}; expected integer labels {expected}")
    return arr.astype(np.int64)


def check_labels(y: Any, n: int, name: str = "y") -> tuple[np.ndarray, int]:
    """Validate training labels 0..k-1 (k >= 2, every label present); return ``(y, k)``."""
    arr = _integer_labels(y, n, name, "0..k-1")
    classes = np.unique(arr)
    if classes.size < 2:
        raise InvalidInputError(f"{name} holds a single class ({classes.tolist()}); expected at least two classes")
    if classes[0] != 0 or classes[-1] != classes.size - 1:
        raise InvalidInputError(
            f"{name} has labels {classes.tolist()[:10]}; expected every label in 0..k-1 to occur "
            "(encode them with sklearn.preprocessing.LabelEncoder)"
        )
    return arr, int(classes.size)


def check_class_labels(y: Any, n: int, n_classes: int, name: str = "y") -> np.ndarray:
    """Validate labels of a model's classes: int64 ``(n,)`` in ``0..n_classes-1`` (a column ``(n, 1)`` is accepted)."""
    arr = _integer_labels(y, n, name, f"0..{n_classes - 1}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise InvalidInputError(
            f"{name} has labels in [{arr.min()}, {arr.max()}]; expected 0..{n_classes - 1} "
            f"(model.n_classes={n_classes})"
        )
    return arr


def encode_labels(y: Any, n: int, name: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Validate class labels of any kind; return ``(codes, classes)`` with ``classes[codes] == y``.

    Labels may be integers (any values), strings or booleans, as for any
    scikit-learn classifier; ``classes`` is their sorted set (at least two)
    and ``codes`` the int64 positions ``0 .. k-1`` the estimator trains on.
    A column vector ``(n, 1)`` is raveled with a ``DataConversionWarning``;
    continuous, multi-output or non-finite targets are refused.
    """
    from sklearn.exceptions import DataConversionWarning
    from sklearn.utils.multiclass import type_of_target

    if y is None:
        raise InvalidInputError(
            f"{name}=None: this estimator requires y to be passed, but the target y is None; "
            f"expected ({n},) class labels"
        )
    if _is_sparse(y):
        raise InvalidInputError(
            f"{name} is a sparse {type(y).__name__}; sparse labels are not supported, expected a dense ({n},) array"
        )
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change the shape of y "
            "to (n_samples, ), for example using ravel().",
            DataConversionWarning,
            stacklevel=3,
        )
        arr = arr[:, 0]
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InvalidInputError(f"{name} has shape {np.asarray(y).shape}; expected ({n},) labels, one per sample")
    if arr.dtype.kind == "c":
        raise InvalidInputError(f"{name} has dtype {arr.dtype}: Complex data not supported; expected class labels")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{name} has NaN or infinite values; expected class labels")
    try:
        kind = type_of_target(arr)
    except TypeError:  # labels that cannot be sorted together
        raise InvalidInputError(
            f"{name} mixes label types (strings and numbers); expected labels of one type"
        ) from None
    if kind == "continuous":
        raise InvalidInputError(
            f"{name} has continuous values (Unknown label type: continuous); expected class "
            "labels (integers, strings or booleans)"
        )
    if kind not in ("binary", "multiclass"):
        raise InvalidInputError(
            f"{name} has dtype {arr.dtype} (Unknown label type: {kind}); expected class labels "
            "(integers, strings or booleans)"
        )
    classes, codes = np.unique(arr, return_inverse=True)
    if classes.size < 2:
        raise InvalidInputError(
            f"{name} holds a single class ({classes.tolist()}), and one class cannot be "
            "learned; expected at least two classes"
        )
    return codes.reshape(-1).astype(np.int64), classes


class NonNumericInputError(InvalidInputError, TypeError):
    """An object array holds a value that is not a number (a TypeError too, as NumPy's own)."""


def _is_sparse(x: Any) -> bool:
    if not hasattr(x, "tocsr") and not hasattr(x, "todense"):  # scipy.sparse's matrices and arrays
        return False
    from scipy import sparse

    return sparse.issparse(x)


def as_input_array(x: Any, name: str = "X") -> np.ndarray:
    """``x`` as a NumPy array, refusing what no layout can read (None, sparse, complex, non-numbers)."""
    if x is None:
        raise InvalidInputError(f"{name}=None; expected images (n, H, W), (n, C, H, W) or rows (n, features)")
    if _is_sparse(x):
        raise InvalidInputError(
            f"{name} is a sparse {type(x).__name__}: sparse input is not supported; expected a dense array "
            f"({name}.toarray())"
        )
    try:
        arr = np.asarray(x)
    except ValueError as exc:  # ragged nested lists
        raise InvalidInputError(f"{name} cannot be read as an array ({exc}); expected equal-length rows") from None
    if arr.dtype.kind == "c":
        raise InvalidInputError(f"{name} has dtype {arr.dtype}: Complex data not supported; expected real numbers")
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except TypeError as exc:
            raise NonNumericInputError(
                f"{name} has dtype object and a value that is not a number ({exc}); expected numeric values"
            ) from None
        except ValueError as exc:
            raise InvalidInputError(
                f"{name} has dtype object and a value that is not a number ({exc}); expected numeric values"
            ) from None
    if arr.ndim < 2:
        raise InvalidInputError(
            f"{name} has shape {arr.shape}; expected rows (n, features) or images (n, H, W) / (n, C, H, W). "
            f"Reshape your data: {name}.reshape(-1, 1) for a single feature, {name}.reshape(1, -1) for a single "
            "sample"
        )
    return arr


def _bounds(low: Any, high: Any, low_open: bool = False) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low}, {high}]"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" <= {high}"
    return ""
