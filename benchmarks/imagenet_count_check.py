"""A count outside the SDK for the ImageNet table: rows reaching Lite0, against the ledger and the committed row.

    python benchmarks/imagenet_count_check.py
    python benchmarks/imagenet_count_check.py --task pneumoniamnist --budget 20000
    python benchmarks/imagenet_count_check.py --task brain_tumor_mri_10pct --views 4 --top-k 10
    python benchmarks/imagenet_count_check.py --task brain_tumor_mri_10pct --views 4 --augment

One default fit (by default 5k on PneumoniaMNIST 10%; seed 0, Lite0 at 128 px through ONNX Runtime, one thread) through a
wrapper that counts every row handed to the model; prints that count for the fit and for the test predictions
beside the SDK's ledger (``clf.queries_``), the row committed in ``results/reprogram_imagenet_128.json``, and
the metrics of both. About a minute on one core (the full PneumoniaMNIST at 20k: about two). ``--views 4``
and ``--top-k 10`` check the ``views``, ``topk`` and ``topk_views`` rows instead (top-k answers are cut from
what the counted model answered, so the count is of the rows reaching Lite0); with ``--augment``, the
``views_augment`` and ``topk_views_augment`` rows.
"""

from __future__ import annotations

import argparse
import json

import reprogram_imagenet as ri  # first: pins torch to one thread

from bar_sdk.reprogram import BARClassifier


class RowCounter:
    """The black box, with a count of the rows it was sent (the SDK's ledger is not consulted)."""

    def __init__(self, model):
        self.model, self.rows = model, 0
        self.n_classes, self.input_shape = model.n_classes, model.input_shape
        self.labels = getattr(model, "labels", None)

    def predict_proba(self, x):
        self.rows += len(x)
        return self.model.predict_proba(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="pneumoniamnist_10pct", help="a task of the table")
    ap.add_argument("--budget", type=int, default=5000, help="a budget of the table's default rows")
    ap.add_argument("--views", type=int, default=1, help="BARClassifier(views=...): the views rows")
    ap.add_argument("--top-k", type=int, help="answers cut to the top k (the table's top-k rows use 10)")
    ap.add_argument("--augment", action="store_true", help="BARClassifier(augment=True): the *_augment rows")
    args = ap.parse_args()
    parts = {(False, False): "default", (True, False): "topk", (False, True): "views", (True, True): "topk_views"}
    part = parts[(args.top_k is not None, args.views > 1)] + ("_augment" if args.augment else "")
    ri.THREADS = 1
    task = args.task
    train, test = ri.tasks([task])[task]
    counter = RowCounter(ri.lite0(128, threads=1))
    model = ri.TopK(counter, args.top_k) if args.top_k else counter
    clf = BARClassifier(model, max_queries=args.budget, views=args.views, augment=args.augment, random_state=0)
    clf.fit(*train)
    fit_rows = counter.rows
    got = ri.metrics(test[1], clf.predict_proba(test[0]))
    rows = json.loads((ri.common.RESULTS_DIR / "reprogram_imagenet_128.json").read_text())["rows"]
    (row,) = [r for r in rows if (r["task"], r["part"], r["budget"], r["seed"]) == (task, part, args.budget, 0)]
    print(
        json.dumps(
            {
                "part": part,
                "rows_counted_fit": fit_rows,
                "ledger_fit": clf.queries_,
                "committed_fit_queries": row["fit_queries"],
                "rows_counted_predict": counter.rows - fit_rows,
                "test_images": len(test[1]),
                "balanced_accuracy": got["balanced_accuracy"],
                "committed_balanced_accuracy": row["balanced_accuracy"],
                "auc": got["auc"],
                "committed_auc": row["auc"],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
