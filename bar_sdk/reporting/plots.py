"""Every plot of the package (PNG, Agg backend): learning curve, program, transfer heatmap; and the one rule
for a missing matplotlib (:func:`check_plots` at the boundary, :func:`pyplot` where a plot is drawn).

matplotlib is imported inside the functions, so importing bar-sdk configures nothing and needs no display.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from bar_sdk.errors import InvalidInputError, MissingDependencyError

__all__ = [
    "plots_available",
    "check_plots",
    "pyplot",
    "save",
    "plot_learning_curve",
    "plot_program",
    "plot_transfer_matrix",
]


def plots_available() -> bool:
    """Whether matplotlib (the ``report`` extra) is installed; nothing is imported."""
    return importlib.util.find_spec("matplotlib") is not None


def check_plots(out_dir: Any, name: str = "out_dir", *, without: str = "out_dir=None") -> None:
    """The one rule for a missing matplotlib, at the boundary: refuse a report that needs plots, before any query.

    ``without`` says how to run without plots. Raises :class:`InvalidInputError`
    naming ``name``, its value and the ``pip install`` that brings matplotlib.
    """
    if out_dir is not None and not plots_available():
        raise InvalidInputError(
            f"{name}={str(out_dir)!r} asks for a report whose plots need matplotlib, which is not installed; "
            f"expected `pip install 'bar-sdk[report]'`, or {without}"
        )


def pyplot() -> Any:  # the matplotlib.pyplot module
    """matplotlib's pyplot on the Agg backend (no display), or :class:`MissingDependencyError` naming the extra."""
    if not plots_available():
        raise MissingDependencyError(
            "plots need matplotlib, which is not installed; expected `pip install 'bar-sdk[report]'`"
        )
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save(plt: Any, fig: Any, path: str | Path) -> Path:
    """Lay ``fig`` out, write it to ``path`` (its folder made if missing), close it; return the path."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_learning_curve(path: str | Path, history: dict[str, Any], title: str = "BAR training") -> Path:
    """Loss and minibatch accuracy (smoothed) against queries spent."""
    plt = pyplot()
    q = np.asarray(history["queries"], dtype=float)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in ((ax1, "loss", "training loss"), (ax2, "accuracy", "minibatch accuracy")):
        v = np.asarray(history[key], dtype=float)
        ax.plot(q, v, color="0.8", lw=0.8, label="per step")
        if len(v) >= 5:
            k = max(5, len(v) // 30)
            smooth = np.convolve(v, np.ones(k) / k, mode="valid")
            ax.plot(q[k - 1 :], smooth, color="C0", lw=2, label=f"mean of {k} steps")
        ax.set_xlabel("queries spent")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    return save(plt, fig, path)


def plot_program(
    path: str | Path, program: np.ndarray, examples: np.ndarray | None = None, titles: list[str] | None = None
) -> Path:
    """The program P (in [-1, 1], shown as grey 0.5 = zero) and a few programmed inputs."""
    plt = pyplot()
    panels = [((program + 1) / 2, "program P = tanh(W * M)")]
    if examples is not None:
        for i, img in enumerate(examples):
            panels.append((img, titles[i] if titles else f"example {i}"))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
    axes = np.atleast_1d(axes)
    for ax, (img, title) in zip(axes, panels, strict=False):
        img = np.clip(np.asarray(img, dtype=float), 0, 1)
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(np.moveaxis(img, 0, -1), interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    return save(plt, fig, path)


def plot_transfer_matrix(result: Any, path: str | Path, title: str | None = None) -> Path:
    """A heatmap PNG of a :class:`~bar_sdk.transfer.TransferMatrix`: one panel per attack, sources down, targets
    across; white-box cells (target is the source) outlined."""
    plt = pyplot()
    n_a, n_s, n_t = result.rates.shape
    cols = min(3, n_a)
    rows = -(-n_a // cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(1.6 + (1.0 * n_t + 0.8) * cols, (1.2 + 0.55 * n_s) * rows + 0.6),
        squeeze=False,
        constrained_layout=True,
    )
    for ax in axes.flat[n_a:]:
        ax.set_visible(False)
    image = None
    for a, ax in enumerate(axes.flat[:n_a]):
        image = ax.imshow(np.nan_to_num(result.rates[a], nan=0.0), vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        for s in range(n_s):
            for t in range(n_t):
                v = result.rates[a, s, t]
                ax.text(
                    t,
                    s,
                    "n/a" if np.isnan(v) else f"{v:.2f}",
                    ha="center",
                    va="center",
                    color="white" if (np.isnan(v) or v < 0.6) else "black",
                    fontsize=8,
                )
                if result.white_box[s, t]:
                    ax.add_patch(plt.Rectangle((t - 0.5, s - 0.5), 1, 1, fill=False, lw=1.5, color="red"))
        ax.set_xticks(range(n_t), result.targets, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(n_s), result.sources if a % cols == 0 else [""] * n_s, fontsize=8)
        ax.set_title(result.attacks[a], fontsize=9)
        ax.set_xlabel("target", fontsize=8)
        if a % cols == 0:
            ax.set_ylabel("source", fontsize=8)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="success rate (target-correct inputs)")
    fig.suptitle(title or f"Transfer matrix ({result.n_samples} inputs; red: white-box)", fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
