"""Hugging Face Inference, image-classification: ``POST {base_url}/models/{model}``.

One image per request, JSON ``{"inputs": <base64>, "parameters": {"top_k": K}}``;
answer ``[{"label": ..., "score": ...}]`` (softmax by default). A model that is
still loading answers 503 ``{"error": ..., "estimated_time": s}``; the retry
waits at least ``estimated_time``. ``x-use-cache: false`` is sent by default
so repeated queries are really evaluated (the local cache already avoids
paying twice).
"""

from __future__ import annotations

from typing import Any, Sequence

from bar_sdk.adapters.remote.http import HttpRequest, HttpResponse
from bar_sdk.adapters.remote.presets.base import (
    Answer,
    Preset,
    b64,
    classify_status,
    json_body,
    path_part,
    read_entries,
    transient,
)
from bar_sdk.contract import check_bool, check_choice, check_int
from bar_sdk.errors import InvalidInputError, RemoteError, ResponseFormatError

__all__ = ["HuggingFacePreset"]


class HuggingFacePreset(Preset):
    """Hugging Face Inference API (image-classification task).

    Parameters
    ----------
    model : str
        Model repository, e.g. ``"google/vit-base-patch16-224"``.
    top_k : int, optional
        Labels per image; default the length of the label list (a model
        whose classes are the label list then returns the full vector).
    function_to_apply : {"softmax", "sigmoid", "none"}, optional
    use_cache : bool
        Let Hugging Face answer repeated inputs from its own cache.
    wait_for_model : bool
        Ask the API to hold the request while the model loads instead of 503.
    """

    name = "huggingface"
    key_env = ("HF_TOKEN", "HUGGINGFACE_API_KEY")
    default_base_url = "https://router.huggingface.co/hf-inference"

    def __init__(
        self,
        model: str,
        *,
        top_k: int | None = None,
        function_to_apply: str | None = None,
        use_cache: bool = False,
        wait_for_model: bool = False,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise InvalidInputError(
                f"model={model!r}; expected a model repository such as 'google/vit-base-patch16-224'"
            )
        self.model = model
        self.top_k = check_int(top_k, "top_k", low=1, allow_none=True)
        self.function_to_apply = (
            None
            if function_to_apply is None
            else check_choice(function_to_apply, "function_to_apply", ("softmax", "sigmoid", "none"))
        )
        self.use_cache = check_bool(use_cache, "use_cache")
        self.wait_for_model = check_bool(wait_for_model, "wait_for_model")

    def build_request(self, base_url: str, images: Sequence[bytes], labels: Sequence[str]) -> HttpRequest:
        parameters: dict[str, Any] = {"top_k": self.top_k or len(labels)}
        if self.function_to_apply:
            parameters["function_to_apply"] = self.function_to_apply
        headers = {
            "Content-Type": "application/json",
            "x-use-cache": str(self.use_cache).lower(),
            "x-wait-for-model": str(self.wait_for_model).lower(),
        }
        model = "/".join(path_part(part) for part in self.model.split("/"))
        return HttpRequest(
            "POST",
            f"{base_url}/models/{model}",
            headers,
            json_body({"inputs": b64(images[0]), "parameters": parameters}),
        )

    def check(self, response: HttpResponse) -> None:
        if response.ok:
            return
        try:
            body = response.json()
        except ResponseFormatError:
            body = None
        if response.status_code == 503 and isinstance(body, dict) and "estimated_time" in body:
            try:
                wait = float(body["estimated_time"])
            except (TypeError, ValueError):
                wait = None
            raise transient(f"huggingface model is loading (HTTP 503): {body.get('error')!r}", wait)
        raise classify_status(response, "huggingface")

    def parse(self, response: HttpResponse, n_images: int) -> list[Answer | RemoteError]:
        body = response.json()
        if isinstance(body, list) and len(body) == 1 and isinstance(body[0], list):
            body = body[0]  # some deployments wrap a single input's list in another list
        if isinstance(body, dict) and "error" in body:
            raise ResponseFormatError(
                f"huggingface answered HTTP {response.status_code} with an error body: {body['error']!r}"
            )
        return [read_entries(body, "huggingface response", label_keys=("label",), score_key="score")]
