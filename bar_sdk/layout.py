"""How target data becomes target images for the program.

Images keep their pixels (resized, grey repeated to RGB when the model wants
three channels). Tabular rows ``(n, features)`` are min-max scaled with
ranges learned on the training data and laid out as a small square patch,
each feature a block of pixels, as BAR did with brain-correlation matrices.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np

from bar_sdk.contract import as_input_array, check_images
from bar_sdk.errors import InvalidInputError
from bar_sdk.program import interpolation_matrix, resize_images

__all__ = ["TargetLayout"]

#: share of the model's input side given to the target by default (20 of 32, as BAR's 0.6-0.7)
DEFAULT_TARGET_SHARE = 0.625


class TargetLayout:
    """Learned on the training data; turns any later X into target images."""

    def __init__(
        self,
        kind: str,
        channels: int,
        target_hw: tuple[int, int],
        *,
        native_hw=None,
        native_channels=None,
        n_features=None,
        low=None,
        high=None,
    ):
        self.kind = kind
        self.channels = channels
        # (H, W) from the constructor's callers and saved layouts; a cast, so a saved value is read as before
        self.target_hw = cast("tuple[int, int]", tuple(int(v) for v in target_hw))
        self.native_hw = None if native_hw is None else tuple(int(v) for v in native_hw)
        self.native_channels = None if native_channels is None else int(native_channels)
        self.n_features = n_features
        self.low = low
        self.high = high

    # -- learning ---------------------------------------------------------------------------
    @classmethod
    def fit(cls, X, input_shape, target_size=None, full_frame: bool = False) -> "TargetLayout":
        """The layout for data like ``X`` (checked here) on a model of ``input_shape``."""
        return cls._fit_checked(_checked(as_input_array(X, "X")), input_shape, target_size, full_frame)

    @classmethod
    def fit_transform(
        cls, X, input_shape, target_size=None, full_frame: bool = False, owner: str = "TargetLayout"
    ) -> tuple["TargetLayout", np.ndarray]:
        """:meth:`fit` and :meth:`transform` of the same ``X``, which is checked once."""
        arr = as_input_array(X, "X")
        checked = _checked(arr)
        layout = cls._fit_checked(checked, input_shape, target_size, full_frame)
        return layout, layout._transform_checked(checked, arr.shape, owner)

    @classmethod
    def _fit_checked(cls, checked: np.ndarray, input_shape, target_size, full_frame) -> "TargetLayout":
        """``checked``: what :func:`_checked` returned (finite float64 rows, or float32 NCHW images in [0, 1])."""
        c, h, w = input_shape
        if checked.ndim == 2:
            n_features = checked.shape[1]
            side = math.ceil(math.sqrt(n_features))
            if full_frame:
                target = (h, w)
            elif target_size is None:
                block = max(1, int(DEFAULT_TARGET_SHARE * min(h, w)) // side)
                target = (side * block, side * block)
            else:
                target = _size(target_size, h, w)
            if side > min(h, w):
                raise InvalidInputError(
                    f"X has {n_features} features, laid out as a {side}x{side} patch, but the model's input is "
                    f"{h}x{w}; expected at most {min(h, w) ** 2} features"
                )
            if target[0] < side or target[1] < side:
                raise InvalidInputError(
                    f"target_size={target_size!r} cannot hold {n_features} features laid out as a "
                    f"{side}x{side} patch; expected at least ({side}, {side})"
                )
            lo, hi = checked.min(axis=0), checked.max(axis=0)
            return cls("tabular", c, target, n_features=n_features, low=lo, high=hi)
        images = checked
        if images.shape[1] == 3 and c == 1:
            raise InvalidInputError(
                f"X has 3 channels but the model's input_shape is {tuple(input_shape)}; "
                "expected grey images (n, H, W) for a one-channel model"
            )
        nh, nw = images.shape[2:]
        if full_frame:
            target = (h, w)
        elif target_size is None:
            ratio = min(1.0, DEFAULT_TARGET_SHARE * h / nh, DEFAULT_TARGET_SHARE * w / nw)
            target = (max(1, round(nh * ratio)), max(1, round(nw * ratio)))
        else:
            target = _size(target_size, h, w)
        return cls("image", c, target, native_hw=(nh, nw), native_channels=images.shape[1])

    # -- applying -----------------------------------------------------------------------------
    def transform(self, X, owner: str = "TargetLayout") -> np.ndarray:
        """Target images ``(n, C, th, tw)`` float32 in [0, 1] (``owner`` names the estimator in errors)."""
        arr = as_input_array(X, "X")
        if self.kind == "tabular" and arr.ndim == 2 and arr.shape[1] != self.n_features:
            raise InvalidInputError(
                f"X has {arr.shape[1]} features, but {owner} is expecting {self.n_features} features as input; "
                f"expected (n, {self.n_features}) like the data seen in fit"
            )
        if self.kind == "tabular" and arr.ndim != 2:
            raise InvalidInputError(
                f"X has shape {arr.shape}; expected (n, {self.n_features}) like the data seen in fit"
            )
        out = self._transform_checked(_checked(arr, tabular=self.kind == "tabular"), arr.shape, owner)
        if not np.all(np.isfinite(out)):  # never reached by checked data: the last guard of a public call
            raise InvalidInputError("X gives non-finite target images; expected finite values")
        return out

    def _transform_checked(self, checked: np.ndarray, shape: tuple, owner: str) -> np.ndarray:
        """:meth:`transform` of data :func:`_checked` already checked (``shape``: X's own, for messages)."""
        if self.kind == "tabular":
            if checked.ndim != 2 or checked.shape[1] != self.n_features:
                raise InvalidInputError(
                    f"X has shape {shape}; expected (n, {self.n_features}) like the data seen in fit"
                )
            values = checked
            # halved first: the difference of two finite float64 values near +-1.8e308 overflows, half of it not
            low, high = np.asarray(self.low, np.float64) / 2, np.asarray(self.high, np.float64) / 2
            span = np.where(high > low, high - low, 1.0)
            # the estimator's own scaling: values beyond the training range sit at the patch's ends
            scaled = np.clip((values / 2 - low) / span, 0.0, 1.0)
            side = math.ceil(math.sqrt(self.n_features))
            flat = np.zeros((len(scaled), side * side), dtype=np.float32)
            flat[:, : self.n_features] = scaled
            patch = flat.reshape(-1, 1, side, side)
            rows = interpolation_matrix(side, self.target_hw[0], "nearest")
            cols = interpolation_matrix(side, self.target_hw[1], "nearest")
            out = np.einsum("Hh,nchw,Ww->ncHW", rows, patch, cols, optimize=True)
        else:
            images = checked
            if images.shape[1] == 3 and self.channels == 1:
                raise InvalidInputError(
                    f"X has shape {shape} (3 channels); expected grey images for this one-channel model"
                )
            # a layout saved before the channel count was kept checks the size only
            channels_differ = self.native_channels is not None and images.shape[1] != self.native_channels
            if self.native_hw is not None and (images.shape[2:] != self.native_hw or channels_differ):
                expected = "" if self.native_channels is None else f"{self.native_channels} channel(s), "
                raise InvalidInputError(
                    f"X has images of {images.shape[1]} channel(s), {images.shape[2]}x{images.shape[3]}; expected "
                    f"{expected}{self.native_hw[0]}x{self.native_hw[1]}, like the images seen in fit (resize them first)"
                )
            out = resize_images(images, self.target_hw)
        if out.shape[1] != self.channels:
            out = np.repeat(out, self.channels, axis=1)
        return np.ascontiguousarray(out, dtype=np.float32)

    def state(self) -> tuple[dict, dict]:
        meta = {
            "kind": self.kind,
            "channels": self.channels,
            "target_hw": list(self.target_hw),
            "native_hw": None if self.native_hw is None else list(self.native_hw),
            "native_channels": self.native_channels,
            "n_features": self.n_features,
        }
        arrays = {} if self.low is None else {"layout.low": self.low, "layout.high": self.high}
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict) -> "TargetLayout":
        return cls(
            meta["kind"],
            meta["channels"],
            tuple(meta["target_hw"]),
            native_hw=meta["native_hw"],
            native_channels=meta.get("native_channels"),
            n_features=meta["n_features"],
            low=arrays.get("layout.low"),
            high=arrays.get("layout.high"),
        )


def _checked(arr: np.ndarray, tabular: bool | None = None) -> np.ndarray:
    """``arr`` (from ``as_input_array``) checked once: finite float64 rows, or float32 NCHW images in [0, 1]."""
    if arr.ndim == 2 if tabular is None else tabular:
        return _tabular(arr, "X")
    return check_images(arr, "X")


def _tabular(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or arr.dtype == bool or arr.dtype.kind == "c":
        raise InvalidInputError(f"{name} has dtype {arr.dtype}; expected numeric features (n, features)")
    if arr.shape[0] == 0:
        raise InvalidInputError(
            f"{name} has shape {arr.shape}: 0 sample(s) (shape={arr.shape}) while a minimum of "
            "1 is required; expected at least one row"
        )
    if arr.shape[1] == 0:
        raise InvalidInputError(
            f"{name} has shape {arr.shape}: 0 feature(s) (shape={arr.shape}) while a minimum of "
            "1 is required; expected at least one feature"
        )
    with np.errstate(over="ignore"):  # float128 beyond float64's range becomes inf, refused below
        values = arr.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise InvalidInputError(
            f"{name} has NaN or infinite values (or values beyond float64's range); expected finite features"
        )
    return values


def _size(target_size, h, w) -> tuple[int, int]:
    if isinstance(target_size, (int, np.integer)) and not isinstance(target_size, bool):
        size = (int(target_size), int(target_size))
    elif (
        isinstance(target_size, (tuple, list))
        and len(target_size) == 2
        and all(isinstance(v, (int, np.integer)) for v in target_size)
    ):
        size = (int(target_size[0]), int(target_size[1]))
    else:
        raise InvalidInputError(f"target_size={target_size!r}; expected an int or a pair (height, width)")
    if min(size) < 1 or size[0] > h or size[1] > w:
        raise InvalidInputError(
            f"target_size={target_size!r} does not fit the model's {h}x{w} input; expected 1..{h} x 1..{w}"
        )
    return size
