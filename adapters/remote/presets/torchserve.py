"""TorchServe (or any self-hosted server of that shape): ``POST {base_url}/predictions/{model}``.

The body is the raw image; the answer is ``{"label": prob, ...}`` (newer
versions) or ``[{"label": prob}, ...]`` (older ones); both are read. No
credential by default; with one, ``Authorization: Bearer <key>`` is sent
(TorchServe's token authorisation).
"""

from __future__ import annotations

from typing import Any, Sequence

from bar_sdk.adapters.remote.http import HttpRequest, HttpResponse
from bar_sdk.adapters.remote.presets.base import Answer, Preset, path_part, read_mapping
from bar_sdk.errors import InvalidInputError, RemoteError

__all__ = ["TorchServePreset"]


class TorchServePreset(Preset):
    """TorchServe inference API.

    Parameters
    ----------
    model : str
        Registered model name.
    version : str, optional
        Model version (``/predictions/{model}/{version}``).
    """

    name = "torchserve"
    key_env = ("TORCHSERVE_TOKEN",)
    key_required = False
    default_base_url = "http://127.0.0.1:8080"

    def __init__(self, model: str, *, version: str | None = None) -> None:
        if not isinstance(model, str) or not model:
            raise InvalidInputError(f"model={model!r}; expected the registered TorchServe model name")
        self.model = model
        self.version = version

    def build_request(self, base_url: str, images: Sequence[bytes], labels: Sequence[str]) -> HttpRequest:
        url = f"{base_url}/predictions/{path_part(self.model)}"
        if self.version is not None:
            url += f"/{path_part(self.version)}"
        return HttpRequest("POST", url, {"Content-Type": "application/octet-stream"}, bytes(images[0]))

    def parse(self, response: HttpResponse, n_images: int) -> list[Answer | RemoteError]:
        body = response.json()
        if isinstance(body, list) and all(isinstance(item, dict) for item in body):
            merged: dict[str, Any] = {}
            for item in body:
                merged.update(item)
            body = merged
        return [read_mapping(body, "torchserve response")]
