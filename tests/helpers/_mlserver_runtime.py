"""A custom MLServer runtime serving one of our local models, counting every image it answers.

Loaded by MLServer itself (``"implementation": "_mlserver_runtime.DigitsRuntime"``
in ``model-settings.json``), in its own process: the tests compare its count
with the client's ledger. The model is :func:`digits_model`, a logistic
regression on scikit-learn's 8x8 digits behind :class:`bar_sdk.adapters.SklearnModel`,
the same object the tests run in-process.

Parameters (``parameters.extra`` in ``model-settings.json``): ``count_file``
(each answered request appends its image count), ``layout`` (``"NCHW"`` or
``"NHWC"``) and ``scale`` (255 for UINT8 inputs, 1 for unit floats).
"""

from __future__ import annotations

import os

import numpy as np

SHAPE = (1, 8, 8)
LABELS = [f"digit_{i}" for i in range(10)]


def digits_model():
    """The served model: deterministic (lbfgs from zeros), fitted in well under a second."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from bar_sdk.adapters import SklearnModel

    X, y = load_digits(return_X_y=True)
    clf = LogisticRegression(max_iter=300).fit(X / 16.0, y)
    return SklearnModel(clf, SHAPE, labels=LABELS)


try:
    from mlserver import MLModel
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceRequest, InferenceResponse
except ImportError:  # imported by the tests without mlserver installed: only digits_model is used
    MLModel = object


class DigitsRuntime(MLModel):
    async def load(self) -> bool:
        extra = (self.settings.parameters.extra if self.settings.parameters else None) or {}
        self._count_file = extra["count_file"]
        self._layout = extra.get("layout", "NCHW")
        self._scale = float(extra.get("scale", 1.0))
        self._model = digits_model()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        if self._layout == "NHWC":
            x = x.transpose(0, 3, 1, 2)
        x = x / np.float32(self._scale)
        p = self._model.predict_proba(x).astype(np.float32)
        with open(self._count_file, "a") as f:  # one server process, one writer
            f.write(f"{len(x)}\n")
            f.flush()
            os.fsync(f.fileno())
        return InferenceResponse(
            model_name=self.name, model_version=self.version, outputs=[NumpyCodec.encode_output("probs", p)]
        )
