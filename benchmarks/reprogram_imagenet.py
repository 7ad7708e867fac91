"""Reprogram an ImageNet classifier (EfficientNet-Lite0, 1,000 classes) for medical tasks, against baselines.

The black box is Lite0 through ONNX Runtime (two threads) at 224 px (``--size``). Tasks: BreastMNIST
(546 training images), PneumoniaMNIST 10% (471, stratified) and the brain tumour MRI set (4 classes,
test images that also occur in train dropped). Rows, each a part (``--parts``):

- ``grey``: a logistic readout of the grey frame's 1,000 log-scores, no program (one pass);
- ``default``: BARClassifier's defaults at ``--budgets``;
- ``mapping_readout``: the defaults but ``readout="mapping"`` (the default before), at the smallest budget;
- ``topk``: the defaults with top-10 answers only (``bar_sdk.adapters.TopK``), at the smallest budget;
- ``paper``: BAR's published settings at ``--paper-budget``;
- ``white_box``: the defaults' program trained with Lite0's own gradients (torch backend), same budget;
- ``probe``: a linear probe on Lite0's pooled penultimate features (target resized to the input);
- ``scratch``: the SmallCNN trained from scratch on the 28 px targets.

Test-split metrics (accuracy, balanced accuracy, AUC), fit queries, wall seconds; every seeded part runs
once per seed. Rows are kept in results/reprogram_imagenet.json: a rerun replaces only the rows of its own
(task, part, budget, seed), so parts can run at different times and their results merge.

    python benchmarks/reprogram_imagenet.py --tasks breastmnist --parts grey default --budgets 5000 --seeds 0 1 2
    python benchmarks/reprogram_imagenet.py --report
"""

from __future__ import annotations

import argparse
import json
import time

import common  # first: pins torch to one thread
import numpy as np
import torch

from bar_sdk.adapters import TopK
from bar_sdk.reprogram import BARClassifier
from lite0 import lite0
from reprogram_medmnist import PAPER, grey_frame_readout, run_scratch

RESULTS = common.RESULTS_DIR / "reprogram_imagenet.json"
PARTS = ("grey", "default", "mapping_readout", "topk", "paper", "white_box", "probe", "scratch")
METHODS = {"grey": "grey frame + logistic readout (no program)", "default": "BAR, SDK default",
           "mapping_readout": "BAR, SDK default read through the label mapping (the default before)",
           "topk": "BAR, SDK default, top-10 answers", "paper": "BAR, paper settings",
           "white_box": "white-box reprogramming (default program)", "probe": "linear probe (Lite0 features)",
           "scratch": "SmallCNN from scratch"}
SEEDED = {"default", "mapping_readout", "topk", "paper", "white_box", "scratch"}


def tasks(names):
    out = {k: v for k, v in common.medmnist_tasks(common.DEFAULT_DATA_DIR, "test").items() if k in names}
    if "brain_tumor_mri" in names:
        with np.load(common.DEFAULT_DATA_DIR / "brain_tumor_mri_64.npz") as f:
            Xtr, ytr, Xte, yte = (f["train_images"], f["train_labels"].ravel(), f["test_images"],
                                  f["test_labels"].ravel())
        seen = {x.tobytes() for x in Xtr}
        keep = np.array([x.tobytes() not in seen for x in Xte])  # test images that also occur in train dropped
        out["brain_tumor_mri"] = ((Xtr, ytr.astype(np.int64)), (Xte[keep], yte[keep].astype(np.int64)))
    return out


def metrics(y, proba):
    if proba.shape[1] == 2:
        return common.binary_metrics(y, proba)
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score
    pred = proba.argmax(1)
    return {"accuracy": float(accuracy_score(y, pred)), "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
            "auc": float(roc_auc_score(y, proba, multi_class="ovr"))}


def torch_lite0(size):
    """Lite0 with gradients (white-box rows): the zoo's torch backend."""
    from bar_sdk.adapters.zoo import imagenet_model
    return imagenet_model("efficientnet-lite0", backend="torch", image_size=size)


def bar(task, part, model, train, test, budget, seed, **params):
    started = time.perf_counter()
    clf = BARClassifier(model, max_queries=budget, random_state=seed, **params).fit(*train)
    seconds = time.perf_counter() - started
    return {"task": task, "part": part, "method": METHODS[part], "budget": budget, "seed": seed,
            "fit_queries": clf.queries_, "fit_seconds": seconds, "steps": clf.n_steps_,
            **metrics(test[1], clf.predict_proba(test[0]))}


def run_part(part, task, train, test, budgets, paper_budget, seed, size):
    if part == "grey":
        started = time.perf_counter()
        proba, queries = grey_frame_readout(lite0(size), *train, {})
        return [{"task": task, "part": part, "method": METHODS[part], "budget": queries, "seed": None,
                 "fit_queries": queries, "fit_seconds": time.perf_counter() - started, **metrics(test[1],
                                                                                               proba(test[0]))}]
    if part == "default":
        return [bar(task, part, lite0(size), train, test, b, seed) for b in budgets]
    if part == "mapping_readout":
        return [bar(task, part, lite0(size), train, test, min(budgets), seed, readout="mapping")]
    if part == "topk":
        return [bar(task, part, TopK(lite0(size), 10), train, test, min(budgets), seed)]
    if part == "paper":
        return [bar(task, part, lite0(size), train, test, paper_budget, seed, **PAPER)]
    if part == "white_box":
        return [bar(task, part, torch_lite0(size), train, test, min(budgets), seed, estimator="exact")]
    if part == "probe":
        return [probe(task, train, test, size)]
    if part == "scratch":
        row = run_scratch(task, train, test, 20, seed)[0]
        return [{**row, "part": part, "method": METHODS[part], "seed": seed, "budget": None}]
    raise ValueError(part)


def probe(task, train, test, size):
    """Class-weighted logistic regression on Lite0's pooled penultimate features, target at the full input."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from bar_sdk.program import resize_images

    from bar_sdk.adapters.zoo import imagenet_module
    net = imagenet_module("efficientnet-lite0", size)

    def feats(X):
        x = resize_images(common.as_float(X)[:, None], (size, size)).repeat(3, axis=1)
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), 32):
                f = net.extract_features(torch.from_numpy((x[i:i + 32] * 255 - 127) / 128))
                out.append(f.mean((2, 3)).numpy())
        return np.concatenate(out)
    started = time.perf_counter()
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, class_weight="balanced", max_iter=3000))
    clf.fit(feats(train[0]), train[1])
    return {"task": task, "part": "probe", "method": METHODS["probe"], "budget": None, "seed": None,
            "fit_queries": None, "fit_seconds": time.perf_counter() - started, "C": 0.01,
            **metrics(test[1], clf.predict_proba(feats(test[0])))}


def report(payload):
    groups = {}
    for r in payload["rows"]:
        groups.setdefault((r["task"], r["method"], r["budget"]), []).append(r)
    rows = []
    for (task, method, budget), rs in groups.items():
        seeded = any(r.get("seed") is not None for r in rs)
        row = {"task": task, "method": method, "budget": budget, "seeds": len(rs) if seeded else "none (deterministic)"}
        for m in ("accuracy", "balanced_accuracy", "auc", "fit_queries", "fit_seconds"):
            v = np.array([r[m] for r in rs if r.get(m) is not None], float)
            if len(v) == 0:
                row[m] = None
            elif m in ("fit_queries", "fit_seconds"):
                row[m] = f"{v.mean():.0f}"
            else:
                row[m] = f"{v.mean():.3f} ({v.std(ddof=1):.3f})" if len(v) > 1 else f"{v.mean():.3f}"
        rows.append(row)
    missing = [f"{p} ({METHODS[p]})" for p in PARTS if not any(r["part"] == p for r in payload["rows"])]
    md = ["# An ImageNet model (EfficientNet-Lite0) reprogrammed for medical tasks\n",
          f"Generated by `benchmarks/reprogram_imagenet.py`. Black box: Lite0 through ONNX Runtime, "
          f"{payload.get('size', 224)} px, two threads. Test splits; mean (SD over seeds). Machine shared with "
          "other jobs, so wall seconds are upper bounds.\n",
          common.md_table(rows, [("task", "task"), ("method", "method"), ("budget", "budget"), ("seeds", "seeds"),
                                 ("accuracy", "acc"), ("balanced_accuracy", "bal. acc"), ("auc", "AUC"),
                                 ("fit_queries", "queries"), ("fit_seconds", "wall s")]),
          "Parts not run yet: " + ("; ".join(missing) if missing else "none") + ". Not implemented yet: "
          "fine-tuning Lite0's last block and head; Lite1 and Lite2 as black boxes.\n"]
    return "\n".join(md)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["breastmnist", "pneumoniamnist_10pct", "brain_tumor_mri"])
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    ap.add_argument("--budgets", type=int, nargs="+", default=[5000, 20000, 50000])
    ap.add_argument("--paper-budget", type=int, default=200_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    payload = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"rows": []}
    payload.update(machine=common.machine(), size=args.size, paper_settings=PAPER)
    if not args.report:
        for task, (train, test) in tasks(args.tasks).items():
            for part in args.parts:
                for seed in (args.seeds if part in SEEDED else [None]):
                    new = run_part(part, task, train, test, args.budgets, args.paper_budget, seed, args.size)
                    for r in new:
                        print(json.dumps(r), flush=True)
                    payload = merge(payload, new)
    common.write_results("reprogram_imagenet", payload, report(payload))


def merge(payload, new):
    """Re-read the results (another part may have written since), replace the rows ``new`` redoes, write."""
    if RESULTS.exists():
        payload["rows"] = json.loads(RESULTS.read_text())["rows"]
    done = {(r["task"], r["part"], r["budget"], r["seed"]) for r in new}
    payload["rows"] = [r for r in payload["rows"] if (r["task"], r["part"], r["budget"], r["seed"]) not in done] + new
    common.write_results("reprogram_imagenet", payload, report(payload))
    return payload


if __name__ == "__main__":
    main()
