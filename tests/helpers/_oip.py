"""A scripted Open Inference Protocol (V2) server for httpx.MockTransport, and a RemoteModel on it."""

import httpx
import numpy as np

from bar_sdk.adapters.remote import RemoteModel, RetryPolicy
from bar_sdk.adapters.remote.presets.open_inference import HEADER_LENGTH, decode_tensors, encode_tensors

__all__ = ["SHAPE", "LABELS", "scores_of", "OipServer", "model_for"]

SHAPE = (3, 4, 5)
LABELS = ["cat", "dog", "fish"]


def scores_of(x_nchw):
    """The scripted model: three probabilities from the mean of each image (float64)."""
    m = np.asarray(x_nchw, dtype=np.float64).reshape(len(x_nchw), -1).mean(axis=1)
    return np.stack([m, 1 - m, np.zeros_like(m)], axis=1) * np.array([1.0, 1.0, 0.0]) / 1.0


class OipServer:
    """A scripted V2 server: readiness, metadata, infer (JSON or binary), with replies to inject."""

    def __init__(
        self,
        *,
        datatype="FP32",
        dims=(-1, 3, 4, 5),
        layout="NCHW",
        binary=False,
        infer_replies=(),
        ready_replies=(),
        classification_labels=False,
    ):
        self.datatype, self.dims, self.layout, self.binary = datatype, list(dims), layout, binary
        self.infer_replies = list(infer_replies)  # (status, json body) answered before real answers
        self.ready_replies = list(ready_replies)  # statuses of /ready before 200
        self.classification_labels = classification_labels
        self.requests, self.inputs = [], []

    def __call__(self, request):
        self.requests.append(request)
        path = request.url.path
        if path.endswith("/ready"):
            status = self.ready_replies.pop(0) if self.ready_replies else 200
            return httpx.Response(status)
        if path == "/v2":
            return httpx.Response(
                200,
                json={
                    "name": "scripted",
                    "version": "1",
                    "extensions": ["classification"] + ["binary_tensor_data"] * self.binary,
                },
            )
        if request.method == "GET":
            return httpx.Response(
                200,
                json={
                    "name": "m",
                    "versions": ["1"],
                    "platform": "test",
                    "inputs": [{"name": "pixels", "datatype": self.datatype, "shape": self.dims}],
                    "outputs": [{"name": "probs", "datatype": "FP32", "shape": [-1, 3]}],
                },
            )
        if self.infer_replies:
            status, body = self.infer_replies.pop(0)
            return httpx.Response(status, json=body)
        doc, tensors = decode_tensors(request.content, request.headers.get(HEADER_LENGTH), "inputs", "request")
        meta, values = tensors[0]
        self.inputs.append((meta, values))
        x = np.asarray(values, dtype=np.float64)
        if meta["datatype"] == "UINT8":
            x = x / 255
        if self.layout == "NHWC":
            x = x.transpose(0, 3, 1, 2)
        p = scores_of(x.reshape(len(x), *SHAPE))
        wanted = (doc.get("outputs") or [{}])[0]
        params = wanted.get("parameters") or {}
        binary = bool(params.get("binary_data") or (doc.get("parameters") or {}).get("binary_data_output"))
        if "classification" in params:
            k = params["classification"]
            strings = []
            for row in p:
                for i in np.argsort(-row, kind="stable")[:k]:
                    strings.append(f"{row[i]:.6f}:{i}" + (f":{LABELS[i]}" if self.classification_labels else ""))
            out = ({"name": "probs", "datatype": "BYTES", "shape": [len(p), k]}, [s.encode() for s in strings])
        else:
            out = ({"name": "probs", "datatype": "FP32", "shape": [len(p), 3]}, p.astype(np.float32))
        body, n_header = encode_tensors({"model_name": "m", "id": doc.get("id", "")}, "outputs", [out], binary)
        headers = {"Content-Type": "application/octet-stream" if binary else "application/json"}
        if n_header is not None:
            headers[HEADER_LENGTH] = str(n_header)
        return httpx.Response(200, content=body, headers=headers)

    def paths(self, method=None):
        return [r.url.path for r in self.requests if method is None or r.method == method]


def model_for(server, sleeps=None, **kw):
    retry = kw.pop("retry", RetryPolicy(jitter=0, initial=0.01))
    return RemoteModel.from_preset(
        "open_inference",
        base_url="http://127.0.0.1:9",
        model_name="m",
        labels=LABELS,
        input_shape=SHAPE,
        client=httpx.Client(transport=httpx.MockTransport(server)),
        sleep=sleeps.append if sleeps is not None else (lambda s: None),
        retry=retry,
        **kw,
    )
