"""Run reports: a JSON document plus PNG plots a person can read.

matplotlib is imported inside the functions (Agg backend), so importing
bar-sdk configures nothing and needs no display.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from bar_sdk.errors import InvalidInputError

__all__ = ["check_out_dir", "write_json", "plot_learning_curve", "plot_program"]

logger = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def check_out_dir(value: Any, name: str = "out_dir", *, allow_none: bool = True) -> Path | None:
    """Return ``value`` as a folder that exists and is writable (created if needed), or None.

    Called with the other argument checks, so a bad folder is refused
    before any query is spent rather than after the run.
    """
    if value is None and allow_none:
        return None
    not_a_path = f"{name}={value!r}; expected a folder path (str or os.PathLike) or None"
    if not isinstance(value, (str, os.PathLike)) or (isinstance(value, str) and not value):
        raise InvalidInputError(not_a_path)
    try:
        path = Path(value)
        path.mkdir(parents=True, exist_ok=True)
    except TypeError:            # an os.PathLike whose __fspath__ returns bytes or another non-str
        raise InvalidInputError(not_a_path) from None
    except OSError as err:       # a file in the way, no permission, read-only file system, ...
        raise InvalidInputError(
            f"{name}={str(value)!r} cannot be created as a folder ({err.strerror or type(err).__name__}); "
            "expected a writable folder"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{name}={str(value)!r} is not writable; expected a writable folder")
    return path


def write_json(path: str | Path, document: dict) -> Path:
    """Write ``document`` (NumPy values allowed) as indented JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(document), indent=2, sort_keys=False) + "\n")
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_learning_curve(path: str | Path, history: dict, title: str = "BAR training") -> Path:
    """Loss and minibatch accuracy (smoothed) against queries spent."""
    plt = _pyplot()
    q = np.asarray(history["queries"], dtype=float)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in ((ax1, "loss", "training loss"), (ax2, "accuracy", "minibatch accuracy")):
        v = np.asarray(history[key], dtype=float)
        ax.plot(q, v, color="0.8", lw=0.8, label="per step")
        if len(v) >= 5:
            k = max(5, len(v) // 30)
            smooth = np.convolve(v, np.ones(k) / k, mode="valid")
            ax.plot(q[k - 1:], smooth, color="C0", lw=2, label=f"mean of {k} steps")
        ax.set_xlabel("queries spent")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    return _save(plt, fig, path)


def plot_program(path: str | Path, program: np.ndarray, examples: np.ndarray | None = None,
                 titles: list[str] | None = None) -> Path:
    """The program P (in [-1, 1], shown as grey 0.5 = zero) and a few programmed inputs."""
    plt = _pyplot()
    panels = [((program + 1) / 2, "program P = tanh(W * M)")]
    if examples is not None:
        for i, img in enumerate(examples):
            panels.append((img, titles[i] if titles else f"example {i}"))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
    axes = np.atleast_1d(axes)
    for ax, (img, title) in zip(axes, panels):
        img = np.clip(np.asarray(img, dtype=float), 0, 1)
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(np.moveaxis(img, 0, -1), interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    return _save(plt, fig, path)
