"""The Clarifai v2 ``outputs`` shape, as served by the local server."""

from __future__ import annotations

import json
import uuid
from typing import Any, Mapping

from bar_sdk.adapters.server.shape import BadRequest, Ranked, Wanted

__all__ = ["ClarifaiShape"]


class ClarifaiShape:
    """``POST /v2/models/{model_id}/outputs`` (also ``/versions/{v}`` and
    ``/v2/users/{u}/apps/{a}/models/...``), ``Authorization: Key <key>``."""

    name = "clarifai"
    max_batch = 128
    default_k = 20
    max_k = 200
    paths = (
        "/v2/models/{model_id}/outputs",
        "/v2/models/{model_id}/versions/{version_id}/outputs",
        "/v2/users/{user_id}/apps/{app_id}/models/{model_id}/outputs",
        "/v2/users/{user_id}/apps/{app_id}/models/{model_id}/versions/{version_id}/outputs",
    )

    def credential(self, headers: Mapping[str, str]) -> str | None:
        value = headers.get("authorization", "")
        return value[4:].strip() if value.startswith("Key ") else None

    def read(self, body: bytes, headers: Mapping[str, str]) -> tuple[list[str | bytes], Wanted]:
        try:
            doc = json.loads(body)
            inputs = doc["inputs"]
            images = [item["data"]["image"]["base64"] for item in inputs]
        except (ValueError, KeyError, TypeError):
            raise BadRequest("body must be JSON {'inputs': [{'data': {'image': {'base64': ...}}}]}") from None
        if not 1 <= len(images) <= self.max_batch:
            raise BadRequest(f"{len(images)} inputs; expected 1 to {self.max_batch}")
        config = ((doc.get("model") or {}).get("output_info") or {}).get("output_config") or {}
        k = config.get("max_concepts", self.default_k)
        if not isinstance(k, int) or not 1 <= k <= self.max_k:
            raise BadRequest(f"max_concepts={k!r}; expected 1 to {self.max_k}")
        select = [c.get("name") or c.get("id") for c in config.get("select_concepts") or []]
        return images, Wanted(k=k, select=select or None, min_value=config.get("min_value"))

    def ok(self, ranked: list[Ranked], path_params: Mapping[str, str]) -> dict[str, Any]:
        outputs = []
        for answer in ranked:
            concepts = [
                {"id": name, "name": name, "app_id": "main"} | ({} if value is None else {"value": value})
                for name, value in answer
            ]
            outputs.append(
                {
                    "id": uuid.uuid4().hex,
                    "status": {"code": 10000, "description": "Ok"},
                    "model": {"id": path_params.get("model_id", "")},
                    "data": {"concepts": concepts},
                }
            )
        return {"status": {"code": 10000, "description": "Ok", "req_id": uuid.uuid4().hex}, "outputs": outputs}

    def error(self, kind: str, message: str) -> tuple[int, dict[str, Any]]:
        status, code, description = {
            "unauthorized": (401, 11008, "Invalid API key"),
            "throttled": (429, "CONN_THROTTLED", "Making too many requests"),  # the string form, as documented
            "failure": (500, 10020, "Failure"),
            "bad_request": (400, 30002, "Input failed"),
        }[kind]
        return status, {
            "status": {"code": code, "description": description, "details": message, "req_id": uuid.uuid4().hex}
        }

    def malformed(self, ranked: list[Ranked], path_params: Mapping[str, str], cut: bool) -> bytes:
        if cut:
            whole = json.dumps(self.ok(ranked, path_params)).encode()
            return whole[: len(whole) // 2]
        return json.dumps({"status": {"code": 10000, "description": "Ok"}}).encode()  # no outputs
