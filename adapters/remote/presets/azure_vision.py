"""Azure AI Vision Image Analysis, tags: one image per request, raw bytes.

4.0: ``POST {endpoint}/computervision/imageanalysis:analyze?api-version=...&features=tags``,
scores ``tagsResult.values[].confidence``; 3.2:
``POST {endpoint}/vision/v3.2/analyze?visualFeatures=Tags``, scores
``tags[].confidence``. Header ``Ocp-Apim-Subscription-Key``. No top-k: the
service returns every tag above its own threshold. 429 comes with
``Retry-After``, which is honoured.
"""

from __future__ import annotations

from typing import Sequence
from urllib.parse import urlencode

from bar_sdk.adapters.remote.http import HttpRequest, HttpResponse
from bar_sdk.adapters.remote.presets.base import Answer, Preset, dig, read_entries, revealed
from bar_sdk.adapters.remote.secret import Secret
from bar_sdk.contract import check_choice
from bar_sdk.errors import RemoteError

__all__ = ["AzureVisionPreset"]


class AzureVisionPreset(Preset):
    """Azure AI Vision ``analyze`` with the tags feature.

    Parameters
    ----------
    api_version : {"2024-02-01", "2023-10-01", "v3.2"}
        Image Analysis 4.0 API version, or ``"v3.2"`` for the older
        ``/vision/v3.2/analyze`` route.
    language : str, optional
        Tag language (default English).

    Notes
    -----
    ``base_url`` is your resource's endpoint, e.g.
    ``https://NAME.cognitiveservices.azure.com``.
    """

    name = "azure_vision"
    key_env = ("AZURE_VISION_KEY", "VISION_KEY")

    def __init__(self, *, api_version: str = "2024-02-01", language: str | None = None) -> None:
        self.api_version = check_choice(api_version, "api_version", ("2024-02-01", "2023-10-01", "v3.2"))
        self.language = language

    def build_request(self, base_url: str, images: Sequence[bytes], labels: Sequence[str]) -> HttpRequest:
        query: dict[str, str]
        if self.api_version == "v3.2":
            path, query = "/vision/v3.2/analyze", {"visualFeatures": "Tags"}
        else:
            path, query = "/computervision/imageanalysis:analyze", {"api-version": self.api_version, "features": "tags"}
        if self.language:
            query["language"] = self.language
        return HttpRequest(
            "POST",
            f"{base_url}{path}?{urlencode(query)}",
            {"Content-Type": "application/octet-stream"},
            bytes(images[0]),
        )

    def authorize(self, request: HttpRequest, credentials: Secret | None) -> HttpRequest:
        return request.with_headers(**{"Ocp-Apim-Subscription-Key": revealed(credentials, self.name)})

    def parse(self, response: HttpResponse, n_images: int) -> list[Answer | RemoteError]:
        body = response.json()
        path = "tags" if self.api_version == "v3.2" else "tagsResult.values"
        return [
            read_entries(
                dig(body, path, "azure_vision response"),
                f"azure_vision response {path}",
                label_keys=("name",),
                score_key="confidence",
            )
        ]
