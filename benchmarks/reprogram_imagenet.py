"""Reprogram an ImageNet classifier (EfficientNet-Lite0, 1,000 classes) for medical tasks, against baselines.

The black box is Lite0 through ONNX Runtime (two threads) at 224 px (``--size``). Tasks: BreastMNIST
(546 training images), PneumoniaMNIST 10% (471, stratified) and the brain tumour MRI set (4 classes,
test images that also occur in train dropped). Rows, each a part (``--parts``):

- ``grey``: a logistic readout of the grey frame's 1,000 log-scores, no program (one pass);
- ``grey_auto``, ``grey_topk_auto``: the same with C by cross-validation, full scores and top-10 answers;
- ``grey_views``, ``grey_topk_views``: those read from four views of each image (as ``views=4`` reads them);
- ``default``: BARClassifier's defaults at ``--budgets``;
- ``mapping_readout``: the defaults but ``readout="mapping"`` (the default before), at the smallest budget;
- ``topk``: the defaults with top-10 answers only (``bar_sdk.adapters.TopK``), at the smallest budget;
- ``views`` and ``topk_views``: the defaults with ``views=4`` (readout pass and predictions read each image
  from four views), full scores and top-10 answers, at the smallest budget;
- ``views_augment`` and ``topk_views_augment``: those with ``augment=True`` too (training reads each image from
  one of the views, drawn at random at each step);
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
from lite0 import lite0
from reprogram_medmnist import PAPER, grey_frame_readout, run_scratch

from bar_sdk.adapters import TopK
from bar_sdk.reprogram import BARClassifier

NAME = "reprogram_imagenet"
RESULTS = common.RESULTS_DIR / f"{NAME}.json"
PARTS = (
    "grey",
    "grey_auto",
    "grey_topk",
    "grey_topk_auto",
    "grey_views",
    "grey_topk_views",
    "default",
    "logistic",
    "mapping_readout",
    "topk",
    "topk_logistic",
    "views",
    "topk_views",
    "views_augment",
    "topk_views_augment",
    "paper",
    "white_box",
    "white_box_logistic",
    "probe",
    "finetune",
    "scratch",
    "lite1",
    "lite2",
)
METHODS = {
    "grey": "grey frame + logistic readout (no program)",
    "grey_auto": "grey frame + logistic readout, C by cross-validation (no program)",
    "grey_topk": "grey frame + logistic readout, top-10 answers (no program)",
    "grey_topk_auto": "grey frame + logistic readout, C by cross-validation, top-10 answers (no program)",
    "grey_views": "grey frame + logistic readout, C by cross-validation, 4 views (no program)",
    "grey_topk_views": "grey frame + logistic readout, C by cross-validation, 4 views, top-10 answers (no program)",
    "default": "BAR, SDK default",
    "logistic": 'BAR, trained through cross-fitted readouts (mapping="logistic")',
    "topk_logistic": 'BAR, mapping="logistic", top-10 answers',
    "white_box_logistic": 'white-box reprogramming, mapping="logistic"',
    "finetune": "fine-tuning Lite0's last block and head (white box)",
    "lite1": "BAR, SDK default, EfficientNet-Lite1 as the black box",
    "lite2": "BAR, SDK default, EfficientNet-Lite2 as the black box",
    "mapping_readout": "BAR, SDK default read through the label mapping (the default before)",
    "topk": "BAR, SDK default, top-10 answers",
    "views": "BAR, SDK default with views=4",
    "topk_views": "BAR, SDK default with views=4, top-10 answers",
    "views_augment": "BAR, SDK default with views=4 and augment=True",
    "topk_views_augment": "BAR, SDK default with views=4 and augment=True, top-10 answers",
    "paper": "BAR, paper settings",
    "white_box": "white-box reprogramming (default program)",
    "probe": "linear probe (Lite0 features)",
    "scratch": "SmallCNN from scratch",
}
SEEDED = {
    "default",
    "logistic",
    "mapping_readout",
    "topk",
    "topk_logistic",
    "views",
    "topk_views",
    "views_augment",
    "topk_views_augment",
    "paper",
    "white_box",
    "white_box_logistic",
    "finetune",
    "scratch",
    "lite1",
    "lite2",
}
THREADS = 2


def tasks(names):
    out = {k: v for k, v in common.medmnist_tasks(common.DEFAULT_DATA_DIR, "test").items() if k in names}
    if "brain_tumor_mri" in names:
        with np.load(common.DEFAULT_DATA_DIR / "brain_tumor_mri_64.npz") as f:
            Xtr, ytr, Xte, yte = (
                f["train_images"],
                f["train_labels"].ravel(),
                f["test_images"],
                f["test_labels"].ravel(),
            )
        seen = {x.tobytes() for x in Xtr}
        keep = np.array([x.tobytes() not in seen for x in Xte])  # test images that also occur in train dropped
        out["brain_tumor_mri"] = ((Xtr, ytr.astype(np.int64)), (Xte[keep], yte[keep].astype(np.int64)))
    if "brain_tumor_mri_10pct" in names:  # a few hundred labelled scans, as PneumoniaMNIST's 10% subset
        (Xtr, ytr), test = tasks(["brain_tumor_mri"])["brain_tumor_mri"]
        sub = common.stratified_subset(ytr, 0.1, seed=0)
        out["brain_tumor_mri_10pct"] = ((Xtr[sub], ytr[sub]), test)
    return out


def metrics(y, proba):
    return common.binary_metrics(y, proba)  # accuracy, balanced accuracy, AUC (one-vs-rest beyond two classes)


def torch_lite0(size):
    """Lite0 with gradients (white-box rows): the zoo's torch backend."""
    from bar_sdk.adapters.zoo import imagenet_model

    return imagenet_model("efficientnet-lite0", backend="torch", image_size=size)


def bar(task, part, model, train, test, budget, seed, **params):
    started = time.perf_counter()
    clf = BARClassifier(model, max_queries=budget, random_state=seed, **params).fit(*train)
    seconds = time.perf_counter() - started
    return {
        "task": task,
        "part": part,
        "method": METHODS[part],
        "budget": budget,
        "seed": seed,
        "fit_queries": clf.queries_,
        "fit_seconds": seconds,
        "steps": clf.n_steps_,
        **metrics(test[1], clf.predict_proba(test[0])),
    }


def black_box(size, name="efficientnet-lite0"):
    if name == "efficientnet-lite0":
        return lite0(size, threads=THREADS)
    from bar_sdk.adapters.zoo import imagenet_model

    return imagenet_model(name, backend="onnx", image_size=size, threads=THREADS, batch_size=64)


def grey_auto(model, Xtr, ytr, views=1):
    """The grey frame's readout with C chosen by cross-validation, as ``mapping="logistic"`` chooses it;
    each image read from ``views`` views as ``BARClassifier(views=...)`` reads them."""
    from bar_sdk.ledger import MeteredModel, QueryLedger
    from bar_sdk.mapping import LogisticReadout
    from bar_sdk.views import combine_views, view_images

    layout, program = build(model, Xtr)
    grey = np.zeros((1, program.n_params))

    def scores(X, read):
        frames = program.apply(grey, view_images(program, program.embed(layout.transform(X)), views))
        return combine_views(read(frames), views)

    metered = MeteredModel(model, QueryLedger())
    readout = LogisticReadout.fit(
        scores(Xtr, lambda x: metered.predict_proba(x, purpose="readout")), ytr, int(ytr.max()) + 1, C="auto"
    )
    return (lambda X: readout.proba(scores(X, model.predict_proba))), metered.ledger.queries


def build(model, X):
    return BARClassifier(model)._layout_and_program(X, model.input_shape)


def run_part(part, task, train, test, budgets, paper_budget, seed, size):
    if part in ("grey", "grey_auto", "grey_topk", "grey_topk_auto", "grey_views", "grey_topk_views"):
        started = time.perf_counter()
        model = lite0(size, threads=THREADS)
        model = TopK(model, 10) if part in ("grey_topk", "grey_topk_auto", "grey_topk_views") else model
        if part in ("grey_topk_auto", "grey_views", "grey_topk_views"):
            proba, queries = grey_auto(model, *train, views=1 if part == "grey_topk_auto" else 4)
        else:
            proba, queries = (grey_auto if part == "grey_auto" else lambda m, X, y: grey_frame_readout(m, X, y, {}))(
                model, *train
            )
        return [
            {
                "task": task,
                "part": part,
                "method": METHODS[part],
                "budget": queries,
                "seed": None,
                "fit_queries": queries,
                "fit_seconds": time.perf_counter() - started,
                **metrics(test[1], proba(test[0])),
            }
        ]
    lite = lite0(size, threads=THREADS)
    if part == "default":
        return [bar(task, part, lite, train, test, b, seed) for b in budgets]
    if part == "logistic":
        return [bar(task, part, lite, train, test, b, seed, mapping="logistic") for b in budgets]
    if part == "mapping_readout":
        return [bar(task, part, lite, train, test, min(budgets), seed, readout="mapping")]
    if part == "topk":
        return [bar(task, part, TopK(lite, 10), train, test, min(budgets), seed)]
    if part == "topk_logistic":
        return [bar(task, part, TopK(lite, 10), train, test, min(budgets), seed, mapping="logistic")]
    if part == "views":
        return [bar(task, part, lite, train, test, min(budgets), seed, views=4)]
    if part == "topk_views":
        return [bar(task, part, TopK(lite, 10), train, test, min(budgets), seed, views=4)]
    if part in ("views_augment", "topk_views_augment"):
        black = TopK(lite, 10) if part == "topk_views_augment" else lite
        return [bar(task, part, black, train, test, min(budgets), seed, views=4, augment=True)]
    if part == "paper":
        return [bar(task, part, lite, train, test, paper_budget, seed, **PAPER)]
    if part == "white_box":
        return [bar(task, part, torch_lite0(size), train, test, min(budgets), seed, estimator="exact")]
    if part == "white_box_logistic":
        return [
            bar(task, part, torch_lite0(size), train, test, min(budgets), seed, estimator="exact", mapping="logistic")
        ]
    if part in ("lite1", "lite2"):
        return [bar(task, part, black_box(size, f"efficientnet-{part}"), train, test, min(budgets), seed)]
    if part == "finetune":
        return [finetune(task, train, test, size, seed)]
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

    from bar_sdk.adapters.zoo import imagenet_module
    from bar_sdk.program import resize_images

    net = imagenet_module("efficientnet-lite0", size)

    def feats(X):
        x = resize_images(common.as_float(X)[:, None], (size, size)).repeat(3, axis=1)
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), 32):
                f = net.extract_features(torch.from_numpy((x[i : i + 32] * 255 - 127) / 128))
                out.append(f.mean((2, 3)).numpy())
        return np.concatenate(out)

    started = time.perf_counter()
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, class_weight="balanced", max_iter=3000))
    clf.fit(feats(train[0]), train[1])
    return {
        "task": task,
        "part": "probe",
        "method": METHODS["probe"],
        "budget": None,
        "seed": None,
        "fit_queries": None,
        "fit_seconds": time.perf_counter() - started,
        "C": 0.01,
        **metrics(test[1], clf.predict_proba(feats(test[0]))),
    }


def finetune(task, train, test, size, seed, epochs=30, lr=1e-3):
    """Lite0's last block, head convolution and a new linear head trained on the target (the rest frozen).

    The frozen part's outputs are computed once (eval mode, no augmentation), then the trainable part
    is trained with Adam on class-weighted cross-entropy, batch 32, ``epochs`` epochs. White box: it
    needs the weights, and no queries are counted.
    """
    from bar_sdk.adapters.zoo import imagenet_module
    from bar_sdk.program import resize_images

    torch.manual_seed(seed)
    net = imagenet_module("efficientnet-lite0", size).eval()
    k = int(train[1].max()) + 1

    def frozen(X):
        x = resize_images(common.as_float(X)[:, None], (size, size)).repeat(3, axis=1)
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), 32):
                h = torch.from_numpy((x[i : i + 32] * 255 - 127) / 128)
                h = net._swish(net._bn0(net._conv_stem(h)))
                for block in net._blocks[:-1]:
                    h = block(h)
                out.append(h.clone())
        return torch.cat(out)

    started = time.perf_counter()
    htr, hte = frozen(train[0]), frozen(test[0])
    last, conv_head, bn1 = net._blocks[-1], net._conv_head, net._bn1
    act = net._swish
    head = torch.nn.Linear(net._fc.in_features, k)
    parts = torch.nn.ModuleList([last, conv_head, bn1, head]).train()
    opt = torch.optim.Adam(parts.parameters(), lr=lr)
    ytr = torch.from_numpy(train[1].astype(np.int64))
    weight = torch.tensor(len(ytr) / (k * np.bincount(train[1], minlength=k)), dtype=torch.float32)

    def forward(h):
        return head(act(bn1(conv_head(last(h)))).mean((2, 3)))

    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(ytr), generator=gen).split(32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(forward(htr[idx]), ytr[idx], weight=weight).backward()
            opt.step()
    parts.eval()
    with torch.inference_mode():
        proba = torch.softmax(torch.cat([forward(hte[i : i + 64]) for i in range(0, len(hte), 64)]), 1).numpy()
    return {
        "task": task,
        "part": "finetune",
        "method": METHODS["finetune"],
        "budget": None,
        "seed": seed,
        "fit_queries": None,
        "fit_seconds": time.perf_counter() - started,
        **metrics(test[1], proba),
    }


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
    md = [
        "# An ImageNet model (EfficientNet-Lite0) reprogrammed for medical tasks\n",
        f"Generated by `benchmarks/reprogram_imagenet.py`. Black box: Lite0 through ONNX Runtime, "
        f"{payload.get('size', 224)} px, {payload.get('threads', 2)} thread(s). Test splits; mean (SD over seeds). Machine shared with "
        "other jobs, so wall seconds are upper bounds.\n",
        common.md_table(
            rows,
            [
                ("task", "task"),
                ("method", "method"),
                ("budget", "budget"),
                ("seeds", "seeds"),
                ("accuracy", "acc"),
                ("balanced_accuracy", "bal. acc"),
                ("auc", "AUC"),
                ("fit_queries", "queries"),
                ("fit_seconds", "wall s"),
            ],
        ),
        "Parts not run yet: " + ("; ".join(missing) if missing else "none") + ".\n",
    ]
    return "\n".join(md)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["breastmnist", "pneumoniamnist_10pct", "brain_tumor_mri"])
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    ap.add_argument("--budgets", type=int, nargs="+", default=[5000, 20000, 50000])
    ap.add_argument("--paper-budget", type=int, default=200_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    global THREADS, RESULTS, NAME
    THREADS = args.threads
    NAME = "reprogram_imagenet" if args.size == 224 else f"reprogram_imagenet_{args.size}"
    RESULTS = common.RESULTS_DIR / f"{NAME}.json"
    payload = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"rows": []}
    payload.update(machine=common.machine(), size=args.size, threads=args.threads, paper_settings=PAPER)
    if not args.report:
        for task, (train, test) in tasks(args.tasks).items():
            for part in args.parts:
                for seed in args.seeds if part in SEEDED else [None]:
                    new = run_part(part, task, train, test, args.budgets, args.paper_budget, seed, args.size)
                    for r in new:
                        print(json.dumps(r), flush=True)
                    payload = merge(payload, new)
    merge(payload, [])  # re-read first: a part running beside this one may have written since


def merge(payload, new):
    """Re-read the results (another part may have written since), replace the rows ``new`` redoes, write."""
    if RESULTS.exists():
        payload["rows"] = json.loads(RESULTS.read_text())["rows"]
    done = {(r["task"], r["part"], r["budget"], r["seed"]) for r in new}
    payload["rows"] = [r for r in payload["rows"] if (r["task"], r["part"], r["budget"], r["seed"]) not in done] + new
    common.write_results(NAME, payload, report(payload))
    return payload


if __name__ == "__main__":
    main()
