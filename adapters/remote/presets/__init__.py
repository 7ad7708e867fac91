"""Vendor formats by name, and a registry for your own.

>>> from bar_sdk.adapters.remote.presets import available_presets
>>> print(", ".join(available_presets()))
aws_rekognition, azure_vision, clarifai, generic, google_vision, huggingface, open_inference, torchserve

A new vendor is one small :class:`Preset` subclass (``build_request`` and
``parse``; ``check`` and ``authorize`` when the defaults do not fit),
registered under a name::

    register_preset("myvendor", MyVendorPreset)
    RemoteModel.from_preset("myvendor", base_url=..., labels=[...], input_shape=(3, 64, 64))
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from bar_sdk.adapters.remote.presets.aws_rekognition import AwsRekognitionPreset
from bar_sdk.adapters.remote.presets.azure_vision import AzureVisionPreset
from bar_sdk.adapters.remote.presets.base import Preset
from bar_sdk.adapters.remote.presets.clarifai import ClarifaiPreset
from bar_sdk.adapters.remote.presets.generic import GenericJSONPreset
from bar_sdk.adapters.remote.presets.google_vision import GoogleVisionPreset
from bar_sdk.adapters.remote.presets.huggingface import HuggingFacePreset
from bar_sdk.adapters.remote.presets.open_inference import OpenInferencePreset
from bar_sdk.adapters.remote.presets.torchserve import TorchServePreset
from bar_sdk.errors import InvalidInputError

__all__ = [
    "Preset",
    "register_preset",
    "make_preset",
    "available_presets",
    "ClarifaiPreset",
    "GoogleVisionPreset",
    "AwsRekognitionPreset",
    "AzureVisionPreset",
    "HuggingFacePreset",
    "TorchServePreset",
    "GenericJSONPreset",
    "OpenInferencePreset",
]

_REGISTRY: dict[str, Callable[..., Preset]] = {}
_LOCK = threading.Lock()


def register_preset(name: str, factory: Callable[..., Preset], *, overwrite: bool = False) -> None:
    """Make ``factory`` (a :class:`Preset` subclass, or any callable returning a
    preset from keyword options) available as ``RemoteModel.from_preset(name, ...)``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise InvalidInputError(f"name={name!r}; expected an identifier such as 'my_vendor'")
    if not callable(factory):
        raise InvalidInputError(f"factory={factory!r}; expected a Preset subclass or a callable returning a Preset")
    with _LOCK:
        if name in _REGISTRY and not overwrite:
            raise InvalidInputError(f"a preset named {name!r} is already registered; pass overwrite=True to replace it")
        _REGISTRY[name] = factory


def available_presets() -> list[str]:
    """Registered preset names, sorted."""
    with _LOCK:
        return sorted(_REGISTRY)


def make_preset(name: str, **options: Any) -> Preset:
    """Build the preset registered as ``name`` from its options (``model_id=...``, ...)."""
    with _LOCK:
        factory = _REGISTRY.get(name)
    if factory is None:
        raise InvalidInputError(
            f"preset={name!r} is not registered; expected one of {', '.join(available_presets())}"
            " (or register your own with register_preset)"
        )
    try:
        preset = factory(**options)
    except TypeError as exc:
        raise InvalidInputError(
            f"preset {name!r} does not accept these options ({exc}); see help({getattr(factory, '__name__', factory)})"
        ) from None
    if not isinstance(preset, Preset):
        raise InvalidInputError(f"preset {name!r} factory returned {type(preset).__name__}; expected a Preset")
    return preset


for _cls in (
    ClarifaiPreset,
    GoogleVisionPreset,
    AwsRekognitionPreset,
    AzureVisionPreset,
    HuggingFacePreset,
    TorchServePreset,
    GenericJSONPreset,
    OpenInferencePreset,
):
    register_preset(_cls.name, _cls)
