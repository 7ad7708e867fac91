"""``bar audit``: attack a local or remote model and write a robustness report.

Examples
--------
A small CNN trained on the fly on scikit-learn's digits (offline, ~10 s)::

    bar audit --model digits-cnn --eps 0.05,0.1,0.2 --out runs/audit

EfficientNet-Lite0 with ImageNet weights (offline; the ``imagenet`` extra) on the
20 ImageNet sample images of ``foolbox_samples.npz``, or on your own ``.npz``::

    bar audit --model efficientnet-lite0 --attacks square --eps 0.01,0.03 --max-queries 200
    bar audit --model efficientnet-lite0 --data my_imagenet_images.npz

A saved torch module on your own images, and a remote API::

    bar audit --model net.pt --data images.npz --eps 0.01,0.03
    bar audit --remote-preset clarifai --base-url https://api.clarifai.com --api-key-env CLARIFAI_PAT \\
        --preset-option model_id=general-image-recognition --labels labels.txt --data images.npz \\
        --max-queries 500 --price-per-query 0.0012
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from bar_sdk.errors import InvalidInputError

__all__ = ["add_parser", "run"]

logger = logging.getLogger(__name__)

#: where a source checkout finds the shared data (``../shared/data`` beside the repository)
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``audit`` on the ``bar`` command's subparsers."""
    p = subparsers.add_parser(
        "audit",
        help="attack a model (local or remote) and write a robustness report",
        description="Run query-counted attacks against a model at several budgets; write report.json, "
        "report.md and plots.",
    )
    src = p.add_argument_group("model (one of)")
    src.add_argument(
        "--model",
        help="'digits-cnn' (a small CNN trained now on scikit-learn digits), "
        "an ImageNet model (efficientnet-lite0, -lite1, -lite2; default data: the "
        "ImageNet images of foolbox_samples.npz), "
        "or a saved torch module (torch.save(module, path); a file you trust)",
    )
    src.add_argument(
        "--backend",
        choices=("onnx", "torch"),
        default="onnx",
        help="how an ImageNet model runs (default onnx; torch also allows fgsm, pgd, cw)",
    )
    src.add_argument("--image-size", type=int, help="input side of an ImageNet model (default: its native size)")
    src.add_argument("--remote-preset", help="a RemoteModel preset name (e.g. clarifai, huggingface)")
    src.add_argument("--base-url", help="the API's base URL (remote)")
    src.add_argument("--api-key-env", help="name of the environment variable holding the API key (remote)")
    src.add_argument(
        "--preset-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra preset or RemoteModel option, repeatable (e.g. model_id=..., rate_limit=5)",
    )
    src.add_argument("--labels", help="class names: a comma-separated list or a text file, one per line")
    src.add_argument(
        "--label-only", action="store_true", help="use only the top class of each answer (as a label-only API would)"
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--data",
        help="an .npz with images/labels (or test_images/test_labels, or "
        "imagenet_images/imagenet_labels); default: scikit-learn digits held out "
        "from training, or for an ImageNet model foolbox_samples.npz from "
        "$BAR_DATA_DIR or ../shared/data",
    )
    data.add_argument("--n", type=int, default=100, help="images to attack (default 100)")
    att = p.add_argument_group("attacks")
    att.add_argument(
        "--attacks",
        default="auto",
        help="comma-separated: square, simba, nes, zoo, hopskipjump, rays, fgsm, pgd, cw "
        "(default: auto, chosen from what the model answers)",
    )
    att.add_argument("--eps", default="0.02,0.05,0.1", help="comma-separated budgets (default 0.02,0.05,0.1)")
    att.add_argument("--norm", default="linf", choices=("linf", "l2"))
    att.add_argument("--max-queries", type=int, default=1000, help="per image and attack run (default 1000)")
    p.add_argument("--price-per-query", type=float, help="money per query, for the cost line of the report")
    p.add_argument("--out", default="runs/audit", help="report folder (default runs/audit)")
    p.add_argument("--random-state", type=int, default=0)
    p.add_argument(
        "--ray-address",
        help="run the attacks over a Ray cluster ('auto': the one `ray start` made; "
        "needs pip install 'bar-sdk[ray]'); per-image results equal a local run's",
    )
    p.add_argument("--chunk-size", type=int, help="images per Ray task (default: two chunks per CPU)")
    p.add_argument("--quiet", dest="verbose", action="store_false", help="no progress bars or summary")
    p.set_defaults(func=run)
    return p


def _floats(text: str, name: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidInputError(f"{name}={text!r}; expected comma-separated numbers") from None


def _labels(text: str | None) -> list[str] | None:
    if text is None:
        return None
    path = Path(text)
    if path.is_file():
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return [v.strip() for v in text.split(",")]


def _load_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    from bar_sdk.contract import check_images

    with np.load(path) as data:
        for xk, yk in (
            ("images", "labels"),
            ("test_images", "test_labels"),
            ("x", "y"),
            ("imagenet_images", "imagenet_labels"),
        ):
            if xk in data and yk in data:
                return check_images(data[xk], "--data images"), np.asarray(data[yk]).reshape(-1)
    raise InvalidInputError(
        f"--data={path!r} has keys {sorted(data.files)}; expected images/labels, "
        "test_images/test_labels, x/y or imagenet_images/imagenet_labels"
    )


def imagenet_samples_path() -> Path:
    """``foolbox_samples.npz`` (20 ImageNet images among others) from ``$BAR_DATA_DIR`` or ``../shared/data``."""
    folders = [Path(os.environ["BAR_DATA_DIR"])] if os.environ.get("BAR_DATA_DIR") else []
    folders.append(DEFAULT_DATA_DIR)
    for folder in folders:
        if (folder / "foolbox_samples.npz").is_file():
            return folder / "foolbox_samples.npz"
    raise InvalidInputError(
        f"--data is required with an ImageNet model here: no foolbox_samples.npz in {', '.join(map(str, folders))}; "
        "expected an .npz of RGB images with their ImageNet class indices (images/labels)"
    )


def _imagenet(args) -> tuple[Any, np.ndarray, np.ndarray]:
    """An ImageNet zoo model and images resized (grey repeated to RGB) to its input."""
    from bar_sdk.adapters.zoo import imagenet_model
    from bar_sdk.program import resize_images

    x, y = _load_npz(args.data or str(imagenet_samples_path()))
    model = imagenet_model(args.model, args.backend, image_size=args.image_size)
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    if x.shape[2:] != model.input_shape[1:]:
        logger.info("resizing %s images to %s", x.shape[2:], model.input_shape[1:])
        x = resize_images(x, model.input_shape[1:])
    return model, x, y


def _digits_cnn(random_state: int):
    import torch

    from bar_sdk.adapters import TorchModel
    from bar_sdk.adapters.nets import SmallCNN, digits_images, train_classifier

    torch.set_num_threads(1)
    x, y = digits_images(16)
    net = train_classifier(
        SmallCNN(1, 10, 16, random_state=random_state), x[:1200], y[:1200], epochs=10, random_state=random_state
    )
    return TorchModel(net, (1, 16, 16), labels=[str(k) for k in range(10)]), (x[1200:], y[1200:])


def _torch_file(path: str, input_shape, labels):
    import torch

    from bar_sdk.adapters import TorchModel

    # a whole pickled module: unpickling runs code, so load only files you trust
    module = torch.load(path, weights_only=False, map_location="cpu")
    return TorchModel(module, input_shape, labels=labels)


def _remote(args, input_shape, labels):
    try:
        from bar_sdk.adapters.remote import RemoteModel
    except ModuleNotFoundError as exc:  # a missing extra is named; any other broken import is raised as it is
        from bar_sdk.cli import missing_extra

        extra = missing_extra(exc)
        if extra is None:
            raise
        raise InvalidInputError(
            f"--remote-preset needs the '{extra}' extra (pip install 'bar-sdk[{extra}]'): {exc}"
        ) from None
    if labels is None:
        raise InvalidInputError("--labels is required with --remote-preset (the API's class names, in order)")
    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise InvalidInputError(f"--api-key-env={args.api_key_env!r} names an unset or empty variable")
    options: dict[str, Any] = {}
    for item in args.preset_option:
        name, sep, value = item.partition("=")
        if not sep:
            raise InvalidInputError(f"--preset-option={item!r}; expected KEY=VALUE")
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        options[name.strip()] = value
    return RemoteModel.from_preset(
        args.remote_preset, labels=labels, input_shape=input_shape, base_url=args.base_url, api_key=key, **options
    )


def build(args) -> tuple[Any, np.ndarray, np.ndarray]:
    """The model and the images the command line describes."""
    if bool(args.model) == bool(args.remote_preset):
        raise InvalidInputError("give exactly one of --model and --remote-preset")
    labels = _labels(args.labels)
    from bar_sdk.adapters.zoo import IMAGENET_MODELS

    if args.model in IMAGENET_MODELS:
        model, x, y = _imagenet(args)
    elif args.model == "digits-cnn":
        model, (x, y) = _digits_cnn(args.random_state)
        if args.data:
            x, y = _load_npz(args.data)
    else:
        if not args.data:
            raise InvalidInputError("--data is required with a saved module or a remote model")
        x, y = _load_npz(args.data)
        if args.model:
            model = _torch_file(args.model, x.shape[1:], labels)
        else:
            model = _remote(args, x.shape[1:], labels)
    if args.label_only:
        from bar_sdk.adapters import LabelOnly

        model = LabelOnly(model)
    if args.n < 1:
        raise InvalidInputError(f"--n={args.n}; expected at least 1")
    return model, x[: args.n], y[: args.n]


def run(args) -> int:
    """Run ``bar audit`` from parsed arguments; return the exit status."""
    from bar_sdk.audit import audit

    model, x, y = build(args)
    attacks = args.attacks if args.attacks == "auto" else [a.strip() for a in args.attacks.split(",") if a.strip()]
    report = audit(
        model,
        x,
        y,
        attacks=attacks,
        eps=_floats(args.eps, "--eps"),
        norm=args.norm,
        max_queries=args.max_queries,
        out_dir=args.out,
        price_per_query=args.price_per_query,
        random_state=args.random_state,
        verbose=args.verbose,
        executor="ray" if args.ray_address else "local",
        chunk_size=args.chunk_size,
        ray_address=args.ray_address,
    )
    if args.verbose:
        worst = ", ".join(
            f"eps {e:g}: {a:.0%}" for e, a in zip(report.eps, report.robust_accuracy["any attack"], strict=False)
        )
        print(
            f"clean accuracy {report.clean_accuracy:.0%}; accuracy under attack {worst}; "
            f"{report.total_queries:,} queries; report: {report.files['markdown']}"
        )
    return 0
