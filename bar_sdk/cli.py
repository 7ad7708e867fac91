"""The ``bar`` command line: ``bar demo`` (the main job), ``bar audit``, ``bar plan``, ``bar serve``."""

from __future__ import annotations

import argparse
import logging
import sys

__all__ = ["main"]


def _demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="reprogram a queried classifier for a medical task, end to end (offline)",
                       description="The main job: BAR through a local cloud-like API, with a report.")
    p.add_argument("--data", help="a MedMNIST-style .npz (train_images, train_labels, test_images, test_labels), "
                                  "or the name of one in ~/.medmnist (e.g. breastmnist); default: scikit-learn's "
                                  "breast-cancer data laid out as a patch")
    p.add_argument("--source", choices=("efficientnet-lite0", "digits"), default="efficientnet-lite0",
                   help="the vendor model: EfficientNet-Lite0 with ImageNet weights (default), or a small CNN "
                        "trained now on scikit-learn digits (a fast run)")
    p.add_argument("--image-size", type=int, default=128,
                   help="input side of EfficientNet-Lite0 (default 128: about 3x faster than its native 224)")
    p.add_argument("--top-k", type=int, default=20,
                   help="concepts the API returns per image for EfficientNet-Lite0 (default 20)")
    p.add_argument("--out", default="runs/demo", help="report folder (default: runs/demo)")
    p.add_argument("--max-queries", type=int,
                   help="BAR's training budget (default: 10000 for EfficientNet-Lite0, 60000 for digits)")
    p.add_argument("--whitebox-images", type=int,
                   help="gradient images of the white-box baseline beyond its passes over the training data "
                        "(default: 300 for EfficientNet-Lite0, whose exact gradients are slow on a CPU; "
                        "for digits the same budget as BAR)")
    p.add_argument("--api-budget", type=int, default=200_000, help="hard cap on billed API queries")
    p.add_argument("--price", type=float, default=0.0015, help="dollars per image (default: 0.0015)")
    p.add_argument("--rate", type=float, default=400.0, help="the API's rate limit in requests/s")
    p.add_argument("--fault-429", type=float, default=0.05, help="share of requests answered 429")
    p.add_argument("--fault-500", type=float, default=0.02, help="share of requests answered 500")
    p.add_argument("--fault-malformed", type=float, default=0.01, help="share of malformed answers")
    p.add_argument("--source-size", type=int, default=16, help="input side of the digits CNN (default 16)")
    p.add_argument("--local", action="store_true", help="query the model in-process instead of over HTTP")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from --out's checkpoint and answer cache (same settings); "
                        "without it the run starts afresh")
    p.add_argument("--random-state", type=int, default=0)
    p.add_argument("--quiet", dest="verbose", action="store_false", help="no progress bar or summary")
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    from bar_sdk.demo import run_demo

    run_demo(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bar", description="bar-sdk: black-box adversarial reprogramming")
    parser.add_argument("-v", "--log-level", default="WARNING", help="logging level (default WARNING)")
    sub = parser.add_subparsers(dest="command", required=True)
    _demo_parser(sub)
    for name in ("bar_sdk.cli_audit", "bar_sdk.cli_plan", "bar_sdk.adapters.server.cli"):
        try:
            module = __import__(name, fromlist=["add_parser"])
        except ImportError:
            continue
        module.add_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
