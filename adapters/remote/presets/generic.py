"""Any JSON API: the user says where the image goes and where labels and scores sit."""

from __future__ import annotations

import copy
import json
from typing import Any, Sequence

from bar_sdk.adapters.remote.http import HttpRequest, HttpResponse
from bar_sdk.adapters.remote.presets.base import (
    Answer,
    Preset,
    b64,
    dig,
    json_body,
    per_image,
    read_entries,
    read_mapping,
)
from bar_sdk.adapters.remote.secret import Secret, resolve_secret
from bar_sdk.contract import check_bool, check_choice, check_float, check_int
from bar_sdk.errors import InvalidInputError, RemoteError

__all__ = ["GenericJSONPreset", "IMAGE_PLACEHOLDER"]

IMAGE_PLACEHOLDER = "{image_b64}"


def _count_placeholders(obj: Any) -> int:
    if obj == IMAGE_PLACEHOLDER:
        return 1
    if isinstance(obj, dict):
        return sum(_count_placeholders(v) for v in obj.values())
    if isinstance(obj, list):
        return sum(_count_placeholders(v) for v in obj)
    return 0


def _fill(obj: Any, image: str) -> Any:
    if obj == IMAGE_PLACEHOLDER:
        return image
    if isinstance(obj, dict):
        return {k: _fill(v, image) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fill(v, image) for v in obj]
    return obj


class GenericJSONPreset(Preset):
    """A JSON API described by a request template and paths into the answer.

    Parameters
    ----------
    path : str
        Appended to ``base_url`` (e.g. ``"/v1/classify"``).
    request_template : dict
        The JSON body; the string ``"{image_b64}"`` (as a whole value) is
        replaced by the base64 image. Exactly one such placeholder.
    batch_path : str, optional
        Dotted path to a list in the template whose single element holds the
        placeholder; that element is repeated once per image, so one request
        carries up to ``batch_size`` images.
    batch_size : int
        Images per request; above 1 requires ``batch_path`` and ``results_path``.
    results_path : str, optional
        Dotted path to the per-image list in the answer (one entry per image
        sent). Without it the whole answer belongs to the single image.
    labels_path : str
        Dotted path, inside one image's answer, to either a list of objects
        (``label_key``/``score_key``) or an object ``{label: score}``.
    label_key, score_key : str
        Field names in the list form; ``score_key=None`` for label-only APIs.
    score_scale : float
        Scores are divided by this (100 for percentages); never renormalised.
    auth_header, auth_scheme : str
        The credential is sent as ``{auth_header}: {auth_scheme} {key}``
        (``auth_scheme=""`` sends the key alone).
    key_required : bool
        Whether a credential must be found.

    Examples
    --------
    >>> preset = GenericJSONPreset(path="/classify", request_template={"image": "{image_b64}"},
    ...                            labels_path="predictions", label_key="class", score_key="prob")
    """

    name = "generic"
    key_env = ()  # the credential comes from api_key, or BAR_API_KEY when key_required

    def __init__(
        self,
        *,
        path: str = "",
        request_template: dict[str, Any] | None = None,
        batch_path: str | None = None,
        batch_size: int = 1,
        results_path: str | None = None,
        labels_path: str = "",
        label_key: str = "label",
        score_key: str | None = "score",
        score_scale: float = 1.0,
        auth_header: str = "Authorization",
        auth_scheme: str = "Bearer",
        key_required: bool = True,
        method: str = "POST",
    ) -> None:
        template = {"image": IMAGE_PLACEHOLDER} if request_template is None else request_template
        try:
            template = json.loads(json.dumps(template))
        except (TypeError, ValueError):
            raise InvalidInputError(
                "request_template must be JSON-serialisable (dicts, lists, strings, numbers)"
            ) from None
        if _count_placeholders(template) != 1:
            raise InvalidInputError(
                f"request_template must hold the placeholder {IMAGE_PLACEHOLDER!r} exactly "
                f"once as a whole value; found {_count_placeholders(template)}"
            )
        self.path = path
        self.method = check_choice(method, "method", ("POST", "PUT"))
        self.request_template = template
        self.batch_path = batch_path
        self.max_batch = check_int(batch_size, "batch_size", low=1)
        if batch_path is not None:
            items = dig(template, batch_path, "request_template")
            if not isinstance(items, list) or len(items) != 1 or _count_placeholders(items[0]) != 1:
                raise InvalidInputError(
                    f"batch_path={batch_path!r} must point at a list with one element holding {IMAGE_PLACEHOLDER!r}"
                )
        if self.max_batch > 1 and (batch_path is None or results_path is None):
            raise InvalidInputError(
                f"batch_size={batch_size} needs batch_path= (where images go) and "
                "results_path= (where per-image answers come back)"
            )
        self.results_path = results_path
        self.labels_path = labels_path
        self.label_key = label_key
        self.score_key = score_key
        self.score_scale = check_float(score_scale, "score_scale", low=0.0, low_open=True)
        self.auth_header = auth_header
        self.auth_scheme = auth_scheme
        self.key_required = check_bool(key_required, "key_required")

    def resolve_credentials(self, api_key: Any) -> Secret | None:
        return resolve_secret(api_key, (), required=self.key_required)

    def authorize(self, request: HttpRequest, credentials: Secret | None) -> HttpRequest:
        if credentials is None:
            return request
        value = f"{self.auth_scheme} {credentials.reveal()}" if self.auth_scheme else credentials.reveal()
        return request.with_headers(**{self.auth_header: value})

    def build_request(self, base_url: str, images: Sequence[bytes], labels: Sequence[str]) -> HttpRequest:
        encoded = [b64(img) for img in images]
        if self.batch_path is None:
            body = _fill(self.request_template, encoded[0])
        else:
            body = copy.deepcopy(self.request_template)
            parent = body
            *head, last = self.batch_path.split(".")
            for part in head:
                parent = parent[int(part)] if isinstance(parent, list) else parent[part]
            key = int(last) if isinstance(parent, list) else last
            element = parent[key][0]
            parent[key] = [_fill(element, image) for image in encoded]
        return HttpRequest(self.method, f"{base_url}{self.path}", {"Content-Type": "application/json"}, json_body(body))

    def parse(self, response: HttpResponse, n_images: int) -> list[Answer | RemoteError]:
        body = response.json()
        if self.results_path is None:
            outputs = [body]
        else:
            outputs = per_image(dig(body, self.results_path, "response"), n_images, f"response {self.results_path}")
        answers: list[Answer | RemoteError] = []
        for i, out in enumerate(outputs):
            where = f"response {self.results_path + '.' + str(i) if self.results_path else ''}".rstrip()
            found = dig(out, self.labels_path, where)
            if isinstance(found, dict):
                answers.append(read_mapping(found, where, scale=self.score_scale))
            elif isinstance(found, list) and all(isinstance(v, str) for v in found):
                answers.append({v: None for v in found})  # label names only
            else:
                answers.append(
                    read_entries(
                        found,
                        f"{where} {self.labels_path}".rstrip(),
                        label_keys=(self.label_key,),
                        score_key=self.score_key,
                        scale=self.score_scale,
                    )
                )
        return answers
