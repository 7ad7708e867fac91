"""Choose BARClassifier's defaults with an ImageNet model (EfficientNet-Lite0) as the black box, on val splits.

Each setting is a set of overrides on today's defaults, fitted on a task's train split at a small
budget and scored on its val split (never the test split). A fit with ``readout="logistic"`` is
scored twice from one val pass: through the label mapping (``mapping_``) and through the
refitted logistic readout, so both readouts of the same program are compared. The grey frame
(no program, one pass) is scored the same way, as the free baseline.

    python benchmarks/sweep_imagenet_val.py --budget 4000 --seeds 0 --settings '{}' '{"mapping": "logistic"}'
    python benchmarks/sweep_imagenet_val.py --grey              # the untrained frame's readouts
    python benchmarks/sweep_imagenet_val.py --grey --views 2 4  # ... each image read from 2 and 4 views
    python benchmarks/sweep_imagenet_val.py --report            # tables from the runs recorded so far

Lite0 runs through ONNX Runtime at 224 px with two threads (``--size`` to change the input side). Runs are
appended to results/sweep_imagenet_val_runs.jsonl (a run already recorded is skipped); the tables go
to results/sweep_imagenet_val.{json,md}. ``--source cnn`` runs a setting on the CIFAR-subset CNN instead,
to check that a default chosen here still works there; ``--top-k 10`` makes the source answer its ten
largest scores only, as a vision API does.
"""

from __future__ import annotations

import argparse
import json
import time

import common  # first: pins torch to one thread
import numpy as np
from lite0 import lite0
from reprogram_imagenet import metrics

from bar_sdk import losses as L
from bar_sdk.adapters import TopK
from bar_sdk.mapping import LogisticReadout
from bar_sdk.reprogram import BARClassifier

RUNS = common.RESULTS_DIR / "sweep_imagenet_val_runs.jsonl"
THREADS = 2


def source(name, size):
    """``cnn``, ``lite0``, or either as a top-k API (``lite0 top-10``: only the 10 largest scores answered)."""
    base, _, top = name.partition(" top-")
    if base == "cnn":
        model = common.source_model(common.DEFAULT_DATA_DIR, common.TRAINED_SOURCE_CONFIG)[0]
    else:
        model = lite0(size, threads=THREADS)
    return TopK(model, int(top)) if top else model


def val_task(task):
    """``(train, val)``; the brain MRI subset's val split is 400 other training images, never test images."""
    if task != "brain_tumor_mri_10pct":
        return common.medmnist_tasks(common.DEFAULT_DATA_DIR, "val")[task]
    with np.load(common.DEFAULT_DATA_DIR / "brain_tumor_mri_64.npz") as f:
        X, y = f["train_images"], f["train_labels"].ravel().astype(np.int64)
    sub = common.stratified_subset(y, 0.1, seed=0)  # the same subset reprogram_imagenet.py trains on
    seen = {x.tobytes() for x in X[sub]}
    rest = [i for i in np.setdiff1d(np.arange(len(y)), sub) if X[i].tobytes() not in seen]
    val = np.sort(np.random.default_rng(0).choice(rest, 400, replace=False))
    return (X[sub], y[sub]), (X[val], y[val])


def readouts(clf, Xva, yva):
    """Val metrics through the label mapping and, when fitted, through the logistic readout (one val pass)."""
    scores = clf.source_scores(Xva)  # each image read from the fit's views
    out = {"mapping": metrics(yva, L.normalise(clf.mapping_.target_scores(scores)))}
    if clf.readout_ is not None:
        out["logistic"] = metrics(yva, clf.readout_.proba(scores))
    return out


def run(task, settings, budget, seed, src, size):
    model = source(src, size)
    (Xtr, ytr), (Xva, yva) = val_task(task)
    started = time.perf_counter()
    clf = BARClassifier(model, max_queries=budget, random_state=seed, **settings).fit(Xtr, ytr)
    seconds = time.perf_counter() - started
    hist = clf.history_
    return {
        "task": task,
        "source": src,
        "size": size,
        "settings": settings,
        "budget": budget,
        "seed": seed,
        "queries": clf.queries_,
        "steps": clf.n_steps_,
        "fit_seconds": seconds,
        "theta_rms": float(np.sqrt(np.mean(clf.theta_**2))),
        "train_acc_last": float(np.mean(hist["accuracy"][-20:])) if hist["accuracy"] else None,
        "val": readouts(clf, Xva, yva),
    }


VIEWS = (
    ("as is", lambda x: x),
    ("flipped", lambda x: x[..., ::-1]),
    ("right 4", lambda x: np.roll(x, 4, axis=-1)),
    ("down 4", lambda x: np.roll(x, 4, axis=-2)),
    ("left 4", lambda x: np.roll(x, -4, axis=-1)),
    ("up 4", lambda x: np.roll(x, -4, axis=-2)),
)
"""Views of a target image for ``--views``: itself, mirrored, and shifted 4 px (wrapping) of its own side."""


def grey(task, src, size, settings=None, views=1):
    """The untrained grey frame: frequency mappings with 1 and 10 labels per class, and the logistic readout.

    ``settings`` (overrides such as ``{"program": "full"}``) choose the layout and program form whose zero
    parameters are read; the default's when empty. With ``views`` > 1 each image is read from that many
    of :data:`VIEWS` (one query each), its log-scores (a top-k answer's left-out scores read as the
    readouts read them) averaged over the views."""
    model = source(src, size)
    (Xtr, ytr), (Xva, yva) = val_task(task)
    k = int(ytr.max()) + 1
    from bar_sdk.mapping import frequency_mapping, log_features, source_frequencies

    clf = BARClassifier(model, **(settings or {}))
    layout, program = clf._layout_and_program(Xtr, model.input_shape)
    theta = np.zeros((1, program.n_params))

    def scores(X):
        read = [
            model.predict_proba(program.apply(theta, program.embed(layout.transform(v(X))))) for _, v in VIEWS[:views]
        ]
        return np.exp(np.mean([log_features(s) for s in read], axis=0)) if views > 1 else read[0]

    s_tr, s_va = scores(Xtr), scores(Xva)
    out = {}
    for m in (1, 10):
        mp = frequency_mapping(source_frequencies(s_tr, ytr, k), m)
        out[f"frequency m={m}"] = metrics(yva, L.normalise(mp.target_scores(s_va)))
    out["logistic"] = metrics(yva, LogisticReadout.fit(s_tr, ytr, k).proba(s_va))
    out["logistic C=auto"] = metrics(yva, LogisticReadout.fit(s_tr, ytr, k, C="auto").proba(s_va))
    return {
        "task": task,
        "source": src,
        "size": size,
        "settings": "grey frame"
        + (f" {json.dumps(settings, sort_keys=True)}" if settings else "")
        + (f", {views} views" if views > 1 else ""),
        "budget": len(ytr) * views,
        "seed": None,
        "queries": len(ytr) * views,
        "val": out,
        "top_prob_mean": float(s_tr.max(1).mean()),
    }


def load_runs():
    if not RUNS.exists():
        return []
    return [json.loads(line) for line in RUNS.read_text().splitlines() if line.strip()]


def key(r):
    return (r["task"], r["source"], r["size"], json.dumps(r["settings"], sort_keys=True), r["budget"], r["seed"])


def report():
    runs = load_runs()
    groups = {}
    for r in runs:
        groups.setdefault(key(r)[:5], []).append(r)
    rows = []
    for (task, src, size, settings, budget), rs in groups.items():
        for readout in ("mapping", "logistic", "logistic C=auto", "frequency m=1", "frequency m=10"):
            vals = [r["val"][readout] for r in rs if readout in r["val"]]
            if not vals:
                continue
            row = {
                "task": task,
                "source": src,
                "size": size,
                "settings": settings,
                "budget": budget,
                "readout": readout,
                "seeds": len(vals),
            }
            for metric in ("accuracy", "balanced_accuracy", "auc"):
                v = np.array([x[metric] for x in vals])
                row[metric] = f"{v.mean():.3f} ({v.std(ddof=1):.3f})" if len(v) > 1 else f"{v.mean():.3f}"
            row["fit_s"] = float(np.mean([r.get("fit_seconds", 0.0) for r in rs]))
            rows.append(row)
    md = [
        "# Defaults on an ImageNet black box (EfficientNet-Lite0), val splits\n",
        "Generated by `benchmarks/sweep_imagenet_val.py` from `sweep_imagenet_val_runs.jsonl`. "
        "Val splits only; mean (SD over seeds) where more than one seed.\n",
        common.md_table(
            rows,
            [
                ("task", "task"),
                ("source", "source"),
                ("size", "px"),
                ("settings", "settings"),
                ("budget", "budget"),
                ("readout", "readout"),
                ("seeds", "seeds"),
                ("accuracy", "acc"),
                ("balanced_accuracy", "bal. acc"),
                ("auc", "AUC"),
                ("fit_s", "fit s"),
            ],
        ),
    ]
    common.write_results("sweep_imagenet_val", {"rows": rows, "runs": runs}, "\n".join(md))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["breastmnist"])
    ap.add_argument("--settings", nargs="+", default=["{}"], help="JSON overrides, one per setting")
    ap.add_argument("--budget", type=int, default=4000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--source", choices=("lite0", "cnn"), default="lite0")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--top-k", type=int, help="the source answers its K largest scores only (as an API)")
    ap.add_argument("--grey", action="store_true")
    ap.add_argument("--views", type=int, nargs="+", default=[1], help="--grey: read each image from N views")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    global THREADS
    THREADS = args.threads
    if args.top_k:
        args.source = f"{args.source} top-{args.top_k}"
    if not args.report:
        done = {key(r) for r in load_runs()}
        for task in args.tasks:
            if args.grey:
                jobs = [
                    (lambda s=s, v=v: grey(task, args.source, args.size, s, v))
                    for s in map(json.loads, args.settings)
                    for v in args.views
                ]
            else:
                jobs = [
                    (lambda s=s, seed=seed: run(task, s, args.budget, seed, args.source, args.size))
                    for s in map(json.loads, args.settings)
                    for seed in args.seeds
                    if (task, args.source, args.size, json.dumps(s, sort_keys=True), args.budget, seed) not in done
                ]
            for job in jobs:
                r = job()
                print(json.dumps(r), flush=True)
                with RUNS.open("a") as f:
                    f.write(json.dumps(r) + "\n")
    report()


if __name__ == "__main__":
    main()
