"""The Hugging Face Inference image-classification shape, as served by the local server."""

from __future__ import annotations

import binascii
import json
from typing import Any, Mapping

import pybase64

from bar_sdk.adapters.server.shape import BadRequest, Ranked, Wanted

__all__ = ["HuggingFaceShape"]


class HuggingFaceShape:
    """``POST /models/{model}`` (JSON ``{"inputs": b64, "parameters": {"top_k": k}}`` or raw
    image bytes), ``Authorization: Bearer <token>``; answers ``[{"label", "score"}]``."""

    name = "huggingface"
    max_batch = 1
    default_k = 5
    max_k = 10_000
    paths = ("/models/{model:path}",)

    def credential(self, headers: Mapping[str, str]) -> str | None:
        value = headers.get("authorization", "")
        return value[7:].strip() if value.startswith("Bearer ") else None

    def read(self, body: bytes, headers: Mapping[str, str]) -> tuple[list[str | bytes], Wanted]:
        if not headers.get("content-type", "").startswith("application/json"):
            return [body], Wanted(k=self.default_k)
        try:
            doc = json.loads(body)
            image = pybase64.b64decode(doc["inputs"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise BadRequest(
                "body must be JSON {'inputs': <base64 image>, 'parameters': {...}} or image bytes"
            ) from None
        k = (doc.get("parameters") or {}).get("top_k", self.default_k)
        if not isinstance(k, int) or k < 1:
            raise BadRequest(f"top_k={k!r}; expected a positive integer")
        return [image], Wanted(k=k)

    def ok(self, ranked: list[Ranked], path_params: Mapping[str, str]) -> list[dict[str, Any]]:
        return [{"label": name} | ({} if value is None else {"score": value}) for name, value in ranked[0]]

    def error(self, kind: str, message: str) -> tuple[int, dict[str, Any]]:
        status = {"unauthorized": 401, "throttled": 429, "failure": 500, "bad_request": 400}[kind]
        return status, {"error": message}

    def malformed(self, ranked: list[Ranked], path_params: Mapping[str, str], cut: bool) -> bytes:
        if cut:
            whole = json.dumps(self.ok(ranked, path_params)).encode()
            return whole[: len(whole) // 2]
        return json.dumps([{"label": name} for name, _ in ranked[0]][:1] + [{"score": 0.5}]).encode()
