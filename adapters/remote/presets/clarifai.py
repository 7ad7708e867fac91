"""Clarifai v2 predict: ``POST {base_url}/v2/models/{model_id}/outputs``.

Header ``Authorization: Key <PAT>``; images as ``inputs[].data.image.base64``,
at most 128 per request; scores ``outputs[i].data.concepts[].value`` in
[0, 1]. ``status.code`` arrives as an int (``11005``) or a string
(``"CONN_THROTTLED"``); both are read.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

from bar_sdk.adapters.remote.http import HttpRequest, HttpResponse
from bar_sdk.adapters.remote.presets.base import (
    Answer,
    Preset,
    b64,
    classify_status,
    dig,
    json_body,
    path_part,
    per_image,
    read_entries,
    revealed,
    throttle,
    transient,
)
from bar_sdk.adapters.remote.retry import parse_retry_after
from bar_sdk.adapters.remote.secret import Secret
from bar_sdk.contract import check_bool, check_float, check_int
from bar_sdk.errors import AuthenticationError, InvalidInputError, RemoteError, ResponseFormatError

__all__ = ["ClarifaiPreset"]

SUCCESS, MIXED_STATUS = 10000, 10010
_NAMES = {
    "SUCCESS": 10000,
    "MIXED_STATUS": 10010,
    "CONN_TOKEN_INVALID": 11001,
    "CONN_CREDENTIALS_INVALID": 11002,
    "CONN_EXCEED_HOURLY_LIMIT": 11003,
    "CONN_EXCEED_MONTHLY_LIMIT": 11004,
    "CONN_THROTTLED": 11005,
    "CONN_EXCEEDS_LIMITS": 11006,
    "CONN_KEY_INVALID": 11008,
    "MODEL_DOES_NOT_EXIST": 21200,
    "MODEL_INVALID_ARGUMENT": 21202,
    "MODEL_BUSY_PLEASE_RETRY": 21354,
    "INPUT_FAILED": 30002,
    "INPUT_OVER_LIMIT": 30105,
    "ALL_INPUT_INVALID_BYTES": 30300,
    "RPC_REQUEST_QUEUE_FULL": 40030,
}
_AUTH = {11001, 11002, 11008}
_LIMITS = {11003, 11004, 11006}  # hourly / monthly / account limits: waiting seconds will not help
_BUSY = {21354, 40030}
MAX_BATCH = 128
MAX_CONCEPTS = 200


def status_code(value: Any) -> int | None:
    """Clarifai's ``status.code`` as an int, whether it came as int, digits or a name."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value) if value.isdigit() else _NAMES.get(value)
    return None


class ClarifaiPreset(Preset):
    """Clarifai v2 ``outputs`` (predict).

    Parameters
    ----------
    model_id : str
        The model, e.g. ``"general-image-recognition"``.
    user_id, app_id : str, optional
        Address the model as ``/v2/users/{user_id}/apps/{app_id}/models/...``
        (both or neither).
    version_id : str, optional
        A model version (``.../versions/{version_id}/outputs``).
    max_concepts : int, optional
        Concepts per image (1-200). Default: the length of the label list when
        it fits (so a model whose concepts are the label list returns all of
        them), else 200 with a warning.
    min_value : float, optional
        Drop concepts scored below this.
    select_concepts : bool
        Ask for exactly the label list (Clarifai's ``select_concepts``) instead
        of the top ``max_concepts``.
    batch_size : int
        Images per request (1-128).
    """

    name = "clarifai"
    key_env = ("CLARIFAI_PAT", "CLARIFAI_API_KEY")
    default_base_url = "https://api.clarifai.com"

    def __init__(
        self,
        model_id: str,
        *,
        user_id: str | None = None,
        app_id: str | None = None,
        version_id: str | None = None,
        max_concepts: int | None = None,
        min_value: float | None = None,
        select_concepts: bool = False,
        batch_size: int = MAX_BATCH,
    ) -> None:
        if not isinstance(model_id, str) or not model_id:
            raise InvalidInputError(f"model_id={model_id!r}; expected the Clarifai model id, a non-empty string")
        if (user_id is None) != (app_id is None):
            raise InvalidInputError("user_id and app_id go together; give both or neither")
        self.model_id = model_id
        self.user_id = user_id
        self.app_id = app_id
        self.version_id = version_id
        self.max_concepts = check_int(max_concepts, "max_concepts", low=1, high=MAX_CONCEPTS, allow_none=True)
        self.min_value = check_float(min_value, "min_value", low=0.0, high=1.0, allow_none=True)
        self.select_concepts = check_bool(select_concepts, "select_concepts")
        self.max_batch = check_int(batch_size, "batch_size", low=1, high=MAX_BATCH)

    def check_labels(self, labels: Sequence[str]) -> None:
        if self.max_concepts is None and not self.select_concepts and len(labels) > MAX_CONCEPTS:
            warnings.warn(
                f"{len(labels)} labels but Clarifai returns at most {MAX_CONCEPTS} concepts per image; "
                "labels outside the top 200 score 0 (or pass select_concepts=True)",
                UserWarning,
                stacklevel=4,
            )

    def build_request(self, base_url: str, images: Sequence[bytes], labels: Sequence[str]) -> HttpRequest:
        path = f"/models/{path_part(self.model_id)}"
        if self.user_id is not None and self.app_id is not None:  # both or neither
            path = f"/users/{path_part(self.user_id)}/apps/{path_part(self.app_id)}{path}"
        if self.version_id is not None:
            path += f"/versions/{path_part(self.version_id)}"
        config: dict[str, Any] = {}
        if self.select_concepts:
            config["select_concepts"] = [{"name": label} for label in labels]
        else:
            config["max_concepts"] = self.max_concepts or min(len(labels), MAX_CONCEPTS)
        if self.min_value is not None:
            config["min_value"] = self.min_value
        body = {
            "inputs": [{"data": {"image": {"base64": b64(img)}}} for img in images],
            "model": {"output_info": {"output_config": config}},
        }
        return HttpRequest(
            "POST", f"{base_url}/v2{path}/outputs", {"Content-Type": "application/json"}, json_body(body)
        )

    def authorize(self, request: HttpRequest, credentials: Secret | None) -> HttpRequest:
        return request.with_headers(Authorization=f"Key {revealed(credentials, self.name)}")

    def check(self, response: HttpResponse) -> None:
        try:
            status = response.json().get("status") or {}
        except (ResponseFormatError, AttributeError):
            status = {}
        if not isinstance(status, dict):
            status = {}
        code = status_code(status.get("code"))
        if response.ok and code in (SUCCESS, MIXED_STATUS, None):
            return  # parse() reports a body that lacks what it needs
        detail = f"status {status.get('code')!r} {status.get('description', '')!r} {status.get('details', '')!r}"
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if code == 11005:
            raise throttle(f"clarifai throttled the request (HTTP {response.status_code}, {detail})", retry_after)
        if code in _LIMITS:
            raise throttle(
                f"clarifai account limit reached (HTTP {response.status_code}, {detail}); "
                "retrying within seconds will not help",
                retry_after,
                retryable=False,
            )
        if code in _AUTH:
            raise AuthenticationError(
                f"clarifai refused the credentials (HTTP {response.status_code}, {detail}); check api_key; not retried"
            )
        if code in _BUSY:
            raise transient(f"clarifai is busy (HTTP {response.status_code}, {detail})", retry_after)
        if response.ok:
            raise RemoteError(f"clarifai answered HTTP {response.status_code} with {detail}; not retried")
        raise classify_status(response, "clarifai", detail if code is not None else None)

    def parse(self, response: HttpResponse, n_images: int) -> list[Answer | RemoteError]:
        outputs = per_image(dig(response.json(), "outputs", "clarifai response"), n_images, "clarifai response outputs")
        answers: list[Answer | RemoteError] = []
        for i, out in enumerate(outputs):
            where = f"clarifai response outputs.{i}"
            code = status_code(dig(out, "status.code", where)) if isinstance(out, dict) and "status" in out else SUCCESS
            if code != SUCCESS:
                answers.append(RemoteError(f"clarifai refused image {i}: {out['status']!r}"))
                continue
            data = dig(out, "data", where)
            concepts = data.get("concepts", []) if isinstance(data, dict) else dig(data, "concepts", where)
            answers.append(
                read_entries(concepts, f"{where}.data.concepts", label_keys=("name", "id"), score_key="value")
            )
        return answers
