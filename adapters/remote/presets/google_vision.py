"""Google Cloud Vision label detection: ``POST {base_url}/v1/images:annotate``.

Up to 16 images per request as ``requests[].image.content`` (base64);
scores ``responses[i].labelAnnotations[].score`` in [0, 1], multi-label.
An image the API could not read comes back inside a 200 answer as
``responses[i].error``. The API key travels in the ``x-goog-api-key`` header,
never in the URL (URLs end up in logs).
"""

from __future__ import annotations

from typing import Any, Sequence

from bar_sdk.adapters.remote.http import HttpRequest, HttpResponse
from bar_sdk.adapters.remote.presets.base import (
    Answer,
    Preset,
    b64,
    classify_status,
    dig,
    json_body,
    per_image,
    read_entries,
    revealed,
    throttle,
)
from bar_sdk.adapters.remote.retry import parse_retry_after
from bar_sdk.adapters.remote.secret import Secret
from bar_sdk.contract import check_choice, check_int
from bar_sdk.errors import RemoteError, ResponseFormatError

__all__ = ["GoogleVisionPreset"]

MAX_BATCH = 16


class GoogleVisionPreset(Preset):
    """Google Cloud Vision ``images:annotate`` with ``LABEL_DETECTION``.

    Parameters
    ----------
    max_results : int, optional
        ``maxResults`` per image. Default: the length of the label list
        (Google's own default is 10).
    auth : {"api_key", "bearer"}
        ``"api_key"`` sends the key as ``x-goog-api-key``; ``"bearer"`` sends an
        OAuth access token as ``Authorization: Bearer``.
    user_project : str, optional
        ``x-goog-user-project`` header (quota project) for bearer tokens.
    batch_size : int
        Images per request (1-16).
    """

    name = "google_vision"
    key_env = ("GOOGLE_VISION_API_KEY", "GOOGLE_API_KEY")
    default_base_url = "https://vision.googleapis.com"

    def __init__(
        self,
        *,
        max_results: int | None = None,
        auth: str = "api_key",
        user_project: str | None = None,
        batch_size: int = MAX_BATCH,
    ) -> None:
        self.max_results = check_int(max_results, "max_results", low=1, allow_none=True)
        self.auth = check_choice(auth, "auth", ("api_key", "bearer"))
        self.user_project = user_project
        self.max_batch = check_int(batch_size, "batch_size", low=1, high=MAX_BATCH)

    def build_request(self, base_url: str, images: Sequence[bytes], labels: Sequence[str]) -> HttpRequest:
        feature = {"type": "LABEL_DETECTION", "maxResults": self.max_results or len(labels)}
        body = {"requests": [{"image": {"content": b64(img)}, "features": [feature]} for img in images]}
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self.user_project:
            headers["x-goog-user-project"] = self.user_project
        return HttpRequest("POST", f"{base_url}/v1/images:annotate", headers, json_body(body))

    def authorize(self, request: HttpRequest, credentials: Secret | None) -> HttpRequest:
        if self.auth == "bearer":
            return request.with_headers(Authorization=f"Bearer {revealed(credentials, self.name)}")
        return request.with_headers(**{"x-goog-api-key": revealed(credentials, self.name)})

    def check(self, response: HttpResponse) -> None:
        if response.ok:
            return
        try:
            error: Any = response.json().get("error") or {}
        except (ResponseFormatError, AttributeError):
            error = {}
        if isinstance(error, dict) and error.get("status") == "RESOURCE_EXHAUSTED":
            raise throttle(
                f"google_vision quota exhausted (HTTP {response.status_code}): {error.get('message')!r}",
                parse_retry_after(response.headers.get("retry-after")),
            )
        raise classify_status(response, "google_vision")

    def parse(self, response: HttpResponse, n_images: int) -> list[Answer | RemoteError]:
        items = per_image(
            dig(response.json(), "responses", "google_vision response"), n_images, "google_vision response responses"
        )
        answers: list[Answer | RemoteError] = []
        for i, item in enumerate(items):
            where = f"google_vision response responses.{i}"
            if not isinstance(item, dict):
                raise ResponseFormatError(f"{where} is {item!r}; expected an object")
            if "error" in item:
                answers.append(RemoteError(f"google_vision refused image {i}: {item['error']!r}"))
                continue
            # No labelAnnotations at all means no label was found for this image.
            answers.append(
                read_entries(
                    item.get("labelAnnotations", []),
                    f"{where}.labelAnnotations",
                    label_keys=("description",),
                    score_key="score",
                )
            )
        return answers
