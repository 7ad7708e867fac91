"""Model adapters: put any classifier behind the black-box contract.

- :class:`TorchModel`: a ``torch.nn.Module`` (needs torch; loaded on first use,
  so ``import adapters`` works without torch).
- :class:`OnnxModel`: an ONNX classifier run by ONNX Runtime (needs the
  ``onnx`` extra; loaded on first use).
- :class:`CallableModel`: any function of an image batch.
- :class:`SklearnModel`: a fitted scikit-learn classifier.
- :class:`TopK`, :class:`Rounded`, :class:`LabelOnly`: wrappers that make any
  model answer like a real API (top-k scores, rounded scores, label only).
- :class:`RemoteModel`: a paid cloud classification API (Clarifai, Google
  Vision, AWS Rekognition, Azure Vision, Hugging Face, TorchServe, any JSON
  API) with rate limits, retries, a budget and a cache (needs the ``remote``
  extra; loaded on first use). :mod:`bar_sdk.adapters.server` serves any model like
  such an API, for rehearsals and tests.

Small torch networks, a trainer and an offline digits source live in
:mod:`bar_sdk.adapters.nets` (needs torch); pretrained ImageNet classifiers, offline,
in :mod:`bar_sdk.adapters.zoo` (needs the ``imagenet`` extra).
"""

from __future__ import annotations

from typing import Any

from bar_sdk.adapters.callable import CallableModel
from bar_sdk.adapters.restrict import LabelOnly, Rounded, TopK
from bar_sdk.adapters.sklearn import SklearnModel

__all__ = [
    "RemoteModel",
    "TorchModel",
    "OnnxModel",
    "CallableModel",
    "SklearnModel",
    "TopK",
    "Rounded",
    "LabelOnly",
]


def __getattr__(name: str) -> Any:
    # torch and the HTTP stack are heavy and optional: import them only when asked for.
    if name == "TorchModel":
        from bar_sdk.adapters.torch import TorchModel

        return TorchModel
    if name == "OnnxModel":
        from bar_sdk.adapters.onnx import OnnxModel

        return OnnxModel
    if name == "RemoteModel":
        from bar_sdk.adapters.remote import RemoteModel

        return RemoteModel
    raise AttributeError(f"module 'bar_sdk.adapters' has no attribute {name!r}")
