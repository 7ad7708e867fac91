"""Serve an ONNX classifier as a black box through ONNX Runtime.

Vendors and platform teams ship ONNX files; ONNX Runtime is also the fast
CPU path for a network exported from PyTorch (about seven times eager
PyTorch for EfficientNet-Lite0 on two cores). onnxruntime is an optional
extra (``pip install 'bar-sdk[onnx]'``), imported only when a model is built.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bar_sdk.adapters._checks import (
    check_batch,
    check_input_shape,
    check_label_names,
    check_per_channel,
    check_probed_classes,
)
from bar_sdk.contract import check_choice, check_int
from bar_sdk.errors import InvalidInputError, MissingDependencyError, ModelOutputError

__all__ = ["OnnxModel", "default_threads", "import_onnxruntime"]

logger = logging.getLogger(__name__)

# ONNX element types the adapter can feed (inputs are cast from float32 to these).
_INPUT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}


def import_onnxruntime() -> Any:
    """Return the ``onnxruntime`` module, or raise naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError(
            "onnxruntime is not installed; OnnxModel needs it: pip install 'bar-sdk[onnx]'"
        ) from None
    return onnxruntime


def default_threads() -> int:
    """ONNX Runtime threads when none are given: the cores this process may use, at most 4.

    ONNX Runtime's own default takes every core and spins on them between
    calls, which starves everything else on a small shared machine.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


class OnnxModel:
    """An ONNX classifier behind the black-box contract.

    The graph gets one input batch and returns ``(n, n_classes)`` logits (or
    probabilities, see ``outputs``). Inputs reach the adapter as float32
    ``(n, C, H, W)`` in [0, 1]; ``mean``/``std`` (or ``preprocess``) turn them
    into what the graph was trained on, and ``layout="NHWC"`` transposes them
    for graphs exported from TensorFlow.

    Parameters
    ----------
    model : str, os.PathLike or bytes
        Path to a ``.onnx`` file, or its serialised bytes.
    input_shape : tuple of int, optional
        ``(C, H, W)`` the graph expects, C in (1, 3). Read from the graph when
        its input has fixed sizes; required when it has not. When given it is
        checked against fixed sizes in the graph.
    n_classes : int, optional
        Number of outputs; inferred from one run on a zero image when omitted,
        and checked against that run when given.
    labels : sequence of str, optional
        Class names, one per output.
    mean, std : float or sequence of float, optional
        Per-channel normalisation ``(x - mean) / std`` on inputs in [0, 1].
        ``std`` values must be > 0. Not together with ``preprocess``.
    preprocess : callable, optional
        ``f(x) -> array`` mapping the float32 batch ``(n, C, H, W)`` in [0, 1]
        to the graph's input, channels first, same ``n``; for anything
        ``mean``/``std`` cannot express.
    outputs : {"logits", "probabilities"}, default "logits"
        What the graph returns. Logits go through a softmax (in float64);
        probabilities are checked (finite, >= 0) and passed through.
    layout : {"NCHW", "NHWC"}, default "NCHW"
        Axis order of the graph's input.
    batch_size : int, default 64
        Largest batch sent through the graph at once. A graph with a fixed
        batch size gets batches of exactly that size (the last one padded by
        repeating its last image; the padding's answers are dropped).
    threads : int, optional
        ONNX Runtime intra-op threads. Default :func:`default_threads` (the
        cores this process may use, at most 4). Inter-op parallelism and
        busy-waiting between runs are off.
    input_name, output_name : str, optional
        Which graph input and output to use; default the first of each.

    Attributes
    ----------
    n_classes : int
    input_shape : tuple of int
    labels : tuple of str or None
    threads : int

    Examples
    --------
    >>> from bar_sdk.adapters import OnnxModel                                   # doctest: +SKIP
    >>> model = OnnxModel("resnet50.onnx", mean=(0.485, 0.456, 0.406),
    ...                   std=(0.229, 0.224, 0.225), threads=2)          # doctest: +SKIP
    >>> model.predict_proba(images).shape                                # doctest: +SKIP
    (8, 1000)
    """

    def __init__(
        self,
        model: Any,
        input_shape: Any = None,
        *,
        n_classes: int | None = None,
        labels: Any = None,
        mean: Any = None,
        std: Any = None,
        preprocess: Callable[[np.ndarray], Any] | None = None,
        outputs: str = "logits",
        layout: str = "NCHW",
        batch_size: int = 64,
        threads: int | None = None,
        input_name: str | None = None,
        output_name: str | None = None,
    ) -> None:
        self.outputs = check_choice(outputs, "outputs", ("logits", "probabilities"))
        self.layout = check_choice(layout, "layout", ("NCHW", "NHWC"))
        self.batch_size = check_int(batch_size, "batch_size", low=1)
        self.threads = default_threads() if threads is None else check_int(threads, "threads", low=1)
        if preprocess is not None and not callable(preprocess):
            raise InvalidInputError(f"preprocess={preprocess!r}; expected a callable f(x) -> array, or None")
        if preprocess is not None and (mean is not None or std is not None):
            raise InvalidInputError("preprocess was given together with mean/std; expected one or the other")
        self.preprocess = preprocess
        self.source = _describe(model)

        self._graph = _model_arg(model)  # a path or the bytes: what a copy in another process reloads
        self._session = self._open_session()

        graph_input = _pick(self._session.get_inputs(), input_name, "input_name")
        graph_output = _pick(self._session.get_outputs(), output_name, "output_name")
        self.input_name, self.output_name = graph_input.name, graph_output.name
        if graph_input.type not in _INPUT_DTYPES:
            raise InvalidInputError(
                f"model={self.source}: input {graph_input.name!r} has type {graph_input.type}; "
                f"expected one of {', '.join(_INPUT_DTYPES)}"
            )
        self._input_dtype = _INPUT_DTYPES[graph_input.type]
        self.input_shape, self._fixed_batch = self._resolve_shape(graph_input.shape, input_shape)
        channels = self.input_shape[0]
        self.mean = check_per_channel(mean, "mean", channels, 0.0, positive=False)
        self.std = check_per_channel(std, "std", channels, 1.0, positive=True)
        self._mean = np.asarray(self.mean, np.float32).reshape(1, -1, 1, 1)
        self._std = np.asarray(self.std, np.float32).reshape(1, -1, 1, 1)

        # One run on a zero image: infers n_classes and catches a wrong shape now, not mid-run.
        try:
            probe = self._run(np.zeros((1, *self.input_shape), np.float32))
        except ModelOutputError:
            raise
        except Exception as exc:
            raise InvalidInputError(
                f"input_shape={self.input_shape}: the graph failed on a zero batch ({exc}); expected the shape "
                "the graph accepts"
            ) from None
        self.n_classes = check_probed_classes(n_classes, int(probe.shape[1]), "graph")
        self.labels = check_label_names(labels, self.n_classes)

    # -- black box -------------------------------------------------------------------------

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, float64 ``(n, n_classes)``, for ``x`` float32 ``(n, C, H, W)`` in [0, 1] (or uint8)."""
        x = check_batch(x, self.input_shape)
        step = self._fixed_batch or self.batch_size
        parts = [self._run(x[start : start + step]) for start in range(0, len(x), step)]
        out = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if self.outputs == "logits":
            out = out - out.max(axis=1, keepdims=True)
            np.exp(out, out=out)
            out /= out.sum(axis=1, keepdims=True)
        return out

    # -- internals ---------------------------------------------------------------------------

    def _open_session(self) -> Any:
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: its warnings would go to stderr, not to logging
        # No busy-waiting between runs: batches run as fast without it, and the spinning threads would take
        # the cores from the caller (encoding the next request, the optimiser) on a small machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(self._graph, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types, not ImportError/OSError
            raise InvalidInputError(
                f"model={self.source}: ONNX Runtime could not load it ({exc}); "
                "expected a path to a valid .onnx file or its bytes"
            ) from None

    def __getstate__(self) -> dict[str, Any]:
        # An ONNX Runtime session cannot be pickled: a copy (another process, joblib) opens its own.
        return {k: v for k, v in self.__dict__.items() if k != "_session"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._session = self._open_session()

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        """The graph's raw output for one chunk, as float64 ``(len(chunk), k)``, checked."""
        n = len(chunk)
        if self.preprocess is not None:
            feed = np.asarray(self.preprocess(chunk))
            if feed.ndim != 4 or feed.shape[0] != n or feed.shape[1] != self.input_shape[0]:
                raise InvalidInputError(
                    f"preprocess returned shape {feed.shape} for a batch of shape {chunk.shape}; "
                    f"expected ({n}, {self.input_shape[0]}, H, W)"
                )
            if not np.all(np.isfinite(feed)):
                raise InvalidInputError("preprocess returned NaN or infinite values; expected finite inputs")
        else:
            feed = (chunk - self._mean) / self._std
        if self.layout == "NHWC":
            feed = np.moveaxis(feed, 1, 3)
        if self._fixed_batch and n < self._fixed_batch:  # pad to the graph's batch with copies of the last image
            feed = np.concatenate([feed, np.repeat(feed[-1:], self._fixed_batch - n, axis=0)])
        feed = np.ascontiguousarray(feed, dtype=self._input_dtype)
        out: np.ndarray
        (out,) = self._session.run([self.output_name], {self.input_name: feed})
        out = np.asarray(out, dtype=np.float64)[:n]
        if out.ndim > 2 and all(d == 1 for d in out.shape[2:]):  # (n, k, 1, 1) from a convolutional head
            out = out.reshape(out.shape[:2])
        if out.ndim != 2 or out.shape[1] < 2:
            raise ModelOutputError(
                f"model={self.source} returned shape {out.shape} for {n} images; expected "
                f"({n}, n_classes) with n_classes >= 2"
            )
        if not np.all(np.isfinite(out)):
            raise ModelOutputError(
                f"model={self.source} returned NaN or infinite {self.outputs}; expected finite values"
            )
        if self.outputs == "probabilities" and out.min() < 0:
            raise ModelOutputError(
                f"model={self.source} returned a negative probability ({out.min():.4g}); "
                "expected scores >= 0 (pass outputs='logits' if the graph returns logits)"
            )
        return out

    def _resolve_shape(self, graph_shape: list[Any], given: Any) -> tuple[tuple[int, int, int], int | None]:
        """``(C, H, W)`` from the graph and/or the caller, and the graph's fixed batch size (or None)."""
        if len(graph_shape) != 4:
            raise InvalidInputError(
                f"model={self.source}: input {self.input_name!r} has shape {graph_shape}; expected a 4-d image batch"
            )
        dims = [d if isinstance(d, int) and d > 0 else None for d in graph_shape]
        fixed_batch = dims[0]
        chw = dims[1:] if self.layout == "NCHW" else [dims[3], dims[1], dims[2]]
        if given is None:
            if None in chw:
                raise InvalidInputError(
                    f"input_shape=None, but the graph's input {self.input_name!r} has free sizes "
                    f"{graph_shape}; expected input_shape=(C, H, W)"
                )
            return check_input_shape(tuple(chw)), fixed_batch
        shape = check_input_shape(given)
        if any(fixed is not None and fixed != want for fixed, want in zip(chw, shape, strict=False)):
            raise InvalidInputError(
                f"input_shape={given!r}; expected one matching the graph's input {graph_shape} ({self.layout})"
            )
        return shape, fixed_batch

    def __repr__(self) -> str:
        return (
            f"OnnxModel({self.source}, input_shape={self.input_shape}, n_classes={self.n_classes}, "
            f"outputs='{self.outputs}', threads={self.threads})"
        )


def _model_arg(model: Any) -> Any:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise InvalidInputError(f"model={str(model)!r} is not a file; expected a path to a .onnx file")
        return str(path)
    raise InvalidInputError(f"model={type(model).__name__}; expected a path to a .onnx file or its bytes")


def _describe(model: Any) -> str:
    if isinstance(model, (bytes, bytearray)):
        return f"<{len(model)} bytes>"
    if isinstance(model, (str, os.PathLike)):
        return repr(Path(model).name)
    return type(model).__name__


def _pick(nodes: list[Any], name: str | None, param: str) -> Any:
    if name is None:
        return nodes[0]
    for node in nodes:
        if node.name == name:
            return node
    raise InvalidInputError(f"{param}={name!r}; expected one of {', '.join(repr(n.name) for n in nodes)}")
