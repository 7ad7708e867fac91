"""Small torch classifiers and a trainer, for examples, tests and benchmarks.

Nothing here is needed to *use* bar-sdk; it gives every example the same
small, quickly trained target model, and a source domain that works offline
(scikit-learn's digits, upsampled).

Examples
--------
>>> from bar_sdk.adapters.nets import SmallCNN, digits_images, train_classifier   # doctest: +SKIP
>>> X, y = digits_images(size=16)
>>> net = train_classifier(SmallCNN(1, 10, 16, random_state=0), X, y, epochs=5, random_state=0)
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bar_sdk.adapters.train import train_module
from bar_sdk.contract import check_float, check_images, check_int, check_labels
from bar_sdk.errors import InvalidInputError

__all__ = ["SmallCNN", "MLPNet", "train_classifier", "digits_images"]


def _seed(random_state: Any) -> int:
    """A torch seed drawn from ``np.random.default_rng(random_state)``."""
    return int(np.random.default_rng(random_state).integers(2**62))


def _hw(input_size: Any) -> tuple[int, int]:
    size: tuple[int, ...]
    if isinstance(input_size, numbers.Integral) and not isinstance(input_size, bool):
        size = (int(input_size), int(input_size))
    else:
        try:
            size = tuple(int(s) for s in input_size)
        except TypeError:
            size = ()
    if len(size) != 2 or min(size) < 4:
        raise InvalidInputError(f"input_size={input_size!r}; expected an integer or (H, W), each >= 4")
    return size[0], size[1]


class SmallCNN(nn.Module):
    """Two conv-relu-maxpool blocks and a linear head.

    Parameters
    ----------
    in_channels : int
        1 (grey) or 3 (colour).
    n_classes : int
        Outputs (logits), >= 2.
    input_size : int or (int, int)
        Image height and width (16, 28, 32, ... any size >= 4).
    width : int, default 16
        Channels of the first block; the second has ``2 * width``.
    random_state : int, optional
        Seeds the initial weights without touching torch's global generator.
    """

    def __init__(
        self, in_channels: int, n_classes: int, input_size: Any, width: int = 16, random_state: Any = None
    ) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels", low=1)
        n_classes = check_int(n_classes, "n_classes", low=2)
        width = check_int(width, "width", low=1)
        h, w = _hw(input_size)
        with torch.random.fork_rng(devices=[]):
            if random_state is not None:
                torch.manual_seed(_seed(random_state))
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(width, 2 * width, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )
            self.head = nn.Linear(2 * width * (h // 4) * (w // 4), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(torch.flatten(self.features(x), 1))
        return out


class MLPNet(nn.Module):
    """A one-hidden-layer perceptron on flattened images.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)``.
    n_classes : int
        Outputs (logits), >= 2.
    hidden : int, default 128
        Hidden units.
    random_state : int, optional
        Seeds the initial weights without touching torch's global generator.
    """

    def __init__(self, input_shape: Any, n_classes: int, hidden: int = 128, random_state: Any = None) -> None:
        super().__init__()
        from bar_sdk.adapters._checks import check_input_shape

        features = int(np.prod(check_input_shape(input_shape)))
        n_classes = check_int(n_classes, "n_classes", low=2)
        hidden = check_int(hidden, "hidden", low=1)
        with torch.random.fork_rng(devices=[]):
            if random_state is not None:
                torch.manual_seed(_seed(random_state))
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


def train_classifier(
    module: nn.Module,
    X: Any,
    y: Any,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    random_state: Any = None,
    device: Any = "cpu",
) -> nn.Module:
    """Train ``module`` with Adam on cross-entropy; return it in eval mode.

    Deterministic for a given ``random_state`` on CPU (shuffling comes from
    ``np.random.default_rng(random_state)``; dropout and other torch
    randomness from a seed drawn from it, inside ``torch.random.fork_rng`` so
    torch's global generator is left as it was).

    Parameters
    ----------
    module : torch.nn.Module
        Maps ``(n, C, H, W)`` to logits ``(n, k)``. Trained in place.
    X : ndarray, shape (n, C, H, W)
        Images, float in [0, 1] or uint8.
    y : ndarray of int, shape (n,)
        Labels 0..k-1.
    epochs : int
        Passes over the data, >= 1.
    batch_size : int, default 128
    lr : float, default 1e-3
    random_state : int, optional
    device : str or torch.device, default "cpu"

    Returns
    -------
    module : torch.nn.Module
        The same module, trained, on ``device``, in eval mode.
    """
    if not isinstance(module, nn.Module):
        raise InvalidInputError(f"module={type(module).__name__}; expected a torch.nn.Module")
    X = check_images(X, "X", allow_nhwc=False)
    y, _ = check_labels(y, len(X))
    epochs = check_int(epochs, "epochs", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    lr = check_float(lr, "lr", low=0.0, low_open=True)
    rng = np.random.default_rng(random_state)
    device = torch.device(device)
    module = module.to(device).train()
    Xt = torch.from_numpy(X).to(device)
    yt = torch.from_numpy(y).to(device)
    seed = int(rng.integers(2**62))
    train_module(
        module.parameters(),
        lambda idx: F.cross_entropy(module(Xt[idx]), yt[idx]),
        len(X),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        rng=rng,
        device=device,
        seed=seed,
    )
    return module.eval()


def digits_images(size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits, upsampled (bilinear) to ``size`` x ``size``.

    Ships with scikit-learn, so it works offline.

    Parameters
    ----------
    size : int, default 16
        Output height and width, >= 8.

    Returns
    -------
    X : ndarray of float32, shape (1797, 1, size, size)
        Values in [0, 1].
    y : ndarray of int64, shape (1797,)
        Digit 0..9.
    """
    from sklearn.datasets import load_digits

    size = check_int(size, "size", low=8)
    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    # Bilinear weights are convex, so values stay in [0, 1] up to rounding; clamp only that rounding.
    X = images.clamp_(0.0, 1.0).numpy()
    return np.ascontiguousarray(X), digits.target.astype(np.int64)
