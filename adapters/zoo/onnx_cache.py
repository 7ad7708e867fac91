"""Export a zoo network to ONNX once, into a user cache folder, and check it by hash on every load.

Layout: ``<cache>/onnx/<name>-<size>px-<key>.onnx`` beside ``....onnx.sha256``
holding the graph's SHA-256. ``key`` abbreviates a hash of what the graph is
made from (model name, input size, the weight file's SHA-256, opset, this
module's export version), so new weights or a new size get a new file. A
graph whose bytes no longer match its ``.sha256`` (a truncated copy, a
crash mid-write, an edit) is exported again. Files are written under a
temporary name and moved into place (atomic on one file system), under a
lock file so that two processes never export at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from bar_sdk.adapters.zoo.efficientnet_lite import LiteSpec, build_module, file_sha256
from bar_sdk.errors import InvalidInputError, MissingDependencyError, ModelOutputError

__all__ = ["cache_root", "onnx_graph", "EXPORT_VERSION", "OPSET"]

logger = logging.getLogger(__name__)

EXPORT_VERSION = 1
OPSET = 17
INPUT_NAME, OUTPUT_NAME = "image", "logits"


def cache_root(cache_dir: Any = None) -> Path:
    """``cache_dir``, else ``$BAR_SDK_CACHE``, else ``$XDG_CACHE_HOME/bar-sdk``, else ``~/.cache/bar-sdk``."""
    if cache_dir is not None:
        if not isinstance(cache_dir, (str, os.PathLike)) or not str(cache_dir):
            raise InvalidInputError(f"cache_dir={cache_dir!r}; expected a folder path or None")
        return Path(cache_dir).expanduser()
    if os.environ.get("BAR_SDK_CACHE"):
        return Path(os.environ["BAR_SDK_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "bar-sdk"


def onnx_graph(lite: LiteSpec, image_size: int, weights: Path, cache_dir: Any = None) -> Path:
    """Path of a verified ONNX export of ``lite`` at ``image_size``, exporting it first when needed.

    ``weights`` has already been checked against ``lite.sha256``. Loading a
    cached graph needs neither torch nor the model code; exporting needs
    both, plus the ``onnx`` package.
    """
    folder = cache_root(cache_dir) / "onnx"
    key = hashlib.sha256(json.dumps([lite.name, image_size, lite.sha256, OPSET, EXPORT_VERSION]).encode()).hexdigest()[
        :12
    ]
    graph = folder / f"{lite.name}-{image_size}px-{key}.onnx"
    if _verified(graph):
        return graph
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(
            f"cache_dir={str(folder.parent)!r} cannot be written ({exc}); expected a writable "
            "folder (set BAR_SDK_CACHE or pass cache_dir)"
        ) from None
    with _locked(folder / f".{graph.name}.lock"):
        if _verified(graph):  # another process exported it while we waited
            return graph
        logger.info("exporting %s at %d px to %s (once)", lite.name, image_size, graph)
        _export(lite, image_size, graph)
    return graph


def _verified(graph: Path) -> bool:
    sidecar = graph.with_name(graph.name + ".sha256")
    try:
        expected = sidecar.read_text().strip()
    except OSError:
        return False
    if graph.is_file() and file_sha256(graph) == expected:
        return True
    logger.warning("%s does not match its recorded SHA-256; exporting it again", graph)
    return False


def _export(lite: LiteSpec, image_size: int, graph: Path) -> None:
    try:
        import onnx  # noqa: F401  (torch's exporter needs it and fails late without it)
        import torch
    except ImportError as exc:
        raise MissingDependencyError(
            f"exporting {lite.name} to ONNX needs torch and onnx ({exc.name} is "
            "missing): pip install 'bar-sdk[imagenet]'"
        ) from None
    module = build_module(lite.name, image_size)
    tmp = graph.with_name(f".{graph.name}.{os.getpid()}.tmp")
    tmp_sum = graph.with_name(f".{graph.name}.sha256.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer warnings
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (torch.zeros(1, 3, image_size, image_size),),
                str(tmp),
                dynamo=False,
                opset_version=OPSET,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "n"}, OUTPUT_NAME: {0: "n"}},
            )
        _check_export(module, tmp, image_size)
        tmp_sum.write_text(file_sha256(tmp) + "\n")
        os.replace(tmp, graph)  # graph first: a crash between the two leaves an old or no sum -> re-export
        os.replace(tmp_sum, graph.with_name(graph.name + ".sha256"))
    finally:
        for leftover in (tmp, tmp_sum):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _check_export(module: Any, path: Path, image_size: int) -> None:
    """The exported graph must give the torch module's logits on two random images."""
    import torch

    from bar_sdk.adapters.onnx import import_onnxruntime

    ort = import_onnxruntime()
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, image_size, image_size)).astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: x})
    with torch.inference_mode():
        want = module(torch.from_numpy(x)).numpy()
    # Same float32 network, two kernel libraries: differences of order 1e-5 in logits of order 10.
    gap = float(np.abs(got - want).max())
    if not gap <= 1e-3 * max(1.0, float(np.abs(want).max())):
        raise ModelOutputError(
            f"the ONNX export of the network differs from it by {gap:.3g} in a logit; "
            "expected float32 agreement (a torch exporter problem: try another torch version)"
        )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (POSIX); elsewhere none (the atomic moves still keep files whole)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
