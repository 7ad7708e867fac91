"""``bar plan``: the queries, dollars and hours of a BARClassifier run, before any query is spent.

Example: ``bar plan --samples 500 --image-shape 1,28,28 --source-shape 3,224,224 --classes 1000
--max-queries 40000 --eval 200 --price 0.0015 --rate 10 --max-batch 128``.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["add_parser"]


class _ShapeOnly:
    """A stand-in for the API with its shape and class count: the plan never queries it."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int):
        self.input_shape, self.n_classes = input_shape, n_classes

    def predict_proba(self, x: Any) -> np.ndarray:  # pragma: no cover - never called by plan_bar
        raise RuntimeError("bar plan sends no query")


def _shape(text: str, name: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise SystemExit(f"error: {name}={text!r}; expected integers separated by commas, e.g. 3,224,224") from None


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "plan",
        help="queries, dollars and hours of a reprogramming run, before spending any",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--samples", type=int, default=500, help="training samples (default 500)")
    p.add_argument("--features", type=int, default=30, help="features per sample of tabular data (default 30)")
    p.add_argument("--image-shape", help="C,H,W of image data instead of tabular features")
    p.add_argument("--source-shape", default="3,224,224", help="C,H,W the API takes (default 3,224,224)")
    p.add_argument("--classes", type=int, default=1000, help="classes the API returns (default 1000)")
    p.add_argument("--eval", type=int, default=0, help="samples predicted after fitting (default 0)")
    p.add_argument("--price", type=float, help="dollars per image")
    p.add_argument("--rate", type=float, help="the API's rate limit in requests/s")
    p.add_argument("--max-batch", type=int, default=1, help="images per request (default 1)")
    p.add_argument("--max-queries", type=int, help="BARClassifier(max_queries=...)")
    p.add_argument("--max-epochs", type=int, help="BARClassifier(max_epochs=...)")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--n-directions", type=int, default=5)
    p.add_argument("--estimator", default="one_sided")
    p.add_argument("--mapping", default="frequency")
    p.add_argument("--readout", default="logistic", help="mapping or logistic (default logistic, as BARClassifier's)")
    p.add_argument("--views", type=int, default=1, help="views of each image in the readout pass and predictions")
    p.add_argument(
        "--audit",
        action="store_true",
        help="plan bar_sdk.audit on --samples images instead (upper bounds; --max-queries per image)",
    )
    p.add_argument("--attacks", default="auto", help="audit: comma-separated attack names (default auto)")
    p.add_argument("--eps", default="0.01,0.02,0.05", help="audit: comma-separated budgets")
    p.add_argument("--norm", default="linf", help="audit: linf or l2")
    p.set_defaults(func=_run)


def _run(args: Any) -> int:
    from bar_sdk import BARClassifier
    from bar_sdk.errors import BarError
    from bar_sdk.plan import plan_bar

    data_shape = _shape(args.image_shape, "--image-shape") if args.image_shape else (args.features,)
    try:
        model = _ShapeOnly(_shape(args.source_shape, "--source-shape"), args.classes)
        if args.audit:
            from bar_sdk.plan import plan_audit

            attacks = "auto" if args.attacks == "auto" else args.attacks.split(",")
            plan = plan_audit(
                model,
                args.samples,
                attacks=attacks,
                eps=[float(e) for e in args.eps.split(",")],
                norm=args.norm,
                max_queries=args.max_queries or 1000,
                price_per_query=args.price,
                rate_limit=args.rate,
                max_batch=args.max_batch,
            )
            print(plan)
            return 0
        clf = BARClassifier(
            model,
            max_queries=args.max_queries,
            max_epochs=args.max_epochs,
            batch_size=args.batch_size,
            n_directions=args.n_directions,
            estimator=args.estimator,
            mapping=args.mapping,
            readout=args.readout,
            views=args.views,
        )
        X = np.zeros((args.samples, *data_shape), dtype=np.float32)
        plan = plan_bar(
            clf, X, n_eval=args.eval, price_per_query=args.price, rate_limit=args.rate, max_batch=args.max_batch
        )
    except (BarError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(plan)
    return 0
