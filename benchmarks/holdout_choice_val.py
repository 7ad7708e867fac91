"""Two levers against the program losing to the grey frame on Lite0, measured on val splits only.

``--part frames``: the logistic readout (C by cross-validation) of the frame a fit *starts* from. The
grey frame is the all-zero program; ``BARClassifier`` starts from random parameters of scale
``init_scale`` (0.01 by default, four draws here) or 0.001 (two draws). One pass over train and
val per frame, no training.

``--part choice``: hold out a stratified 20% of the training images, train the default program on
the other 80% (the budget less the two passes the held-out images would cost: at the start and at
the end), and keep a program chosen by the held-out readout loss:

- ``start or end``: the starting frame or the trained one (no queries beyond those two passes);
- ``any epoch``: the best of the starting frame, each epoch's program and the final one (each
  would cost one held-out pass in a real fit; here they are scored outside the budget);
- ``start, end or grey``: as ``start or end``, with the grey frame (the all-zero program) a third
  candidate (one more held-out pass in a real fit).

``--top-k K``: Lite0 answers only its K largest scores (``bar_sdk.adapters.TopK``), as a top-k vendor
API does; the readouts read such answers as the SDK does (``mapping.log_features``).

The chosen program's readout is then refitted on all training images and scored on val. ``plain``
is the default fitted on all training images with the whole budget.

    python benchmarks/holdout_choice_val.py --part frames
    python benchmarks/holdout_choice_val.py --part choice --budget 5000 --seeds 0 1
    python benchmarks/holdout_choice_val.py --part choice --budget 5000 --seeds 0 1 --top-k 10
    python benchmarks/holdout_choice_val.py --report

Lite0 at 128 px, ONNX Runtime with one thread (as ``reprogram_imagenet_128``). Runs are appended to
results/holdout_choice_val_runs.jsonl (a run already recorded is skipped); tables go to
results/holdout_choice_val.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time

import common  # first: pins torch to one thread
import numpy as np
from lite0 import lite0
from reprogram_imagenet import metrics
from sweep_imagenet_val import val_task

from bar_sdk.adapters import TopK
from bar_sdk.mapping import LogisticReadout, _weighted_nll
from bar_sdk.reprogram import BARClassifier

RUNS = common.RESULTS_DIR / "holdout_choice_val_runs.jsonl"
TASKS = ("breastmnist", "pneumoniamnist_10pct", "brain_tumor_mri_10pct")
SIZE = 128
HOLD_OUT = 0.2
METRICS = ("accuracy", "balanced_accuracy", "auc")


def frames(task, model):
    (Xtr, ytr), (Xva, yva) = val_task(task)
    k = int(ytr.max()) + 1
    layout, program = BARClassifier(model)._layout_and_program(Xtr, model.input_shape)
    etr, eva = program.embed(layout.transform(Xtr)), program.embed(layout.transform(Xva))
    draws = [("zeros", None, 0.0)] + [("init_scale=0.01", s, 0.01) for s in range(4)]
    draws += [("init_scale=0.001", s, 0.001) for s in range(2)]
    out = []
    for name, draw, scale in draws:
        theta = (
            np.zeros(program.n_params)
            if draw is None
            else np.random.default_rng(draw).normal(0, scale, program.n_params)
        )
        s_tr = model.predict_proba(program.apply(theta[None], etr))
        readout = LogisticReadout.fit(s_tr, ytr, k, C="auto")
        proba = readout.proba(model.predict_proba(program.apply(theta[None], eva)))
        out.append({"part": "frames", "task": task, "frame": name, "draw": draw, "C": readout.C, **metrics(yva, proba)})
    return out


def choice(task, model, budget, seed, top_k=None):
    (Xtr, ytr), (Xva, yva) = val_task(task)
    k = int(ytr.max()) + 1
    started = time.perf_counter()
    plain = BARClassifier(model, max_queries=budget, random_state=seed).fit(Xtr, ytr)
    row = {
        "part": "choice",
        "task": task,
        "budget": budget,
        "seed": seed,
        "top_k": top_k,
        "plain": metrics(yva, plain.predict_proba(Xva)),
    }
    row["plain_seconds"] = time.perf_counter() - started

    hold = common.stratified_subset(ytr, HOLD_OUT, seed=1000 + seed)
    rest = np.setdiff1d(np.arange(len(ytr)), hold)
    snaps = []

    class Snapshots:
        def on_train_begin(self, loop):
            snaps.append(loop.state.theta.copy())

        def on_step_end(self, loop, result):
            if result.info["epoch_end"]:
                snaps.append(loop.state.theta.copy())

    clf = BARClassifier(model, max_queries=budget - 2 * len(hold), random_state=seed)
    clf.fit(Xtr[rest], ytr[rest], callbacks=[Snapshots()])
    snaps.append(clf.theta_.copy())
    snaps.append(np.zeros_like(clf.theta_))  # the grey frame: a candidate of "start, end or grey" only

    def scores(theta, X):
        return model.predict_proba(
            clf.program_obj_.apply(theta[None], clf.program_obj_.embed(clf.layout_.transform(X)))
        )

    found = []
    for i, theta in enumerate(snaps):
        s_rest, s_hold = scores(theta, Xtr[rest]), scores(theta, Xtr[hold])
        held = LogisticReadout.fit(s_rest, ytr[rest], k, C="auto").proba(s_hold)
        s_all = np.empty((len(ytr), s_rest.shape[1]))
        s_all[rest], s_all[hold] = s_rest, s_hold
        val = LogisticReadout.fit(s_all, ytr, k, C="auto").proba(scores(theta, Xva))
        found.append(
            {"snapshot": i, "hold_nll": _weighted_nll(held, ytr[hold], k) / len(hold), "val": metrics(yva, val)}
        )
    row["snapshots"] = found
    grey, found = found[-1], found[:-1]
    pools = (
        ("start or end", [found[0], found[-1]]),
        ("any epoch", found),
        ("start, end or grey", [found[0], found[-1], grey]),
    )
    for name, pool in pools:
        best = min(pool, key=lambda f: f["hold_nll"])
        row[name] = {**best["val"], "snapshot": best["snapshot"], "of": len(found)}
    return row


def load_runs():
    return [json.loads(line) for line in RUNS.read_text().splitlines() if line.strip()] if RUNS.exists() else []


def _cell(values):
    v = np.asarray(values, float)
    return f"{v.mean():.3f} ({v.std(ddof=1):.3f})" if len(v) > 1 else f"{v.mean():.3f}"


def report():
    runs = load_runs()
    frame_rows, choice_rows = [], []
    for task in TASKS:
        for name in ("zeros", "init_scale=0.01", "init_scale=0.001"):
            rs = [r for r in runs if r["part"] == "frames" and r["task"] == task and r["frame"] == name]
            if rs:
                frame_rows.append(
                    {"task": task, "frame": name, "draws": len(rs), **{m: _cell([r[m] for r in rs]) for m in METRICS}}
                )
        cells = {(r["budget"], r.get("top_k") or 0) for r in runs if r["part"] == "choice" and r["task"] == task}
        for budget, top_k in sorted(cells):
            rs = [
                r
                for r in runs
                if r["part"] == "choice"
                and r["task"] == task
                and r["budget"] == budget
                and (r.get("top_k") or 0) == top_k
            ]
            for how in ("plain", "start or end", "any epoch", "start, end or grey"):
                if any(how not in r for r in rs):
                    continue
                answers = f"top-{top_k}" if top_k else "full"
                row = {"task": task, "answers": answers, "budget": budget, "program": how, "seeds": len(rs)}
                row.update({m: _cell([r[how][m] for r in rs]) for m in METRICS})
                if how != "plain":
                    row["picked"] = ", ".join(f"{r[how]['snapshot']}/{r[how]['of'] - 1}" for r in rs)
                choice_rows.append(row)
    metric_cols = [("accuracy", "acc"), ("balanced_accuracy", "bal. acc"), ("auc", "AUC")]
    md = [
        "# The starting frame, and a held-out choice of program (Lite0 at 128 px, val splits)\n",
        "Generated by `benchmarks/holdout_choice_val.py` from `holdout_choice_val_runs.jsonl`; mean (SD) over "
        "draws or seeds. Readouts: logistic, C by cross-validation.\n",
        "## The frame a fit starts from (no training)\n",
        common.md_table(frame_rows, [("task", "task"), ("frame", "frame"), ("draws", "draws"), *metric_cols]),
        "\n## Choosing the program on a held-out 20% of train\n",
        "`picked`: the snapshot chosen per seed (0 the starting frame, the last the final program).\n",
        common.md_table(
            choice_rows,
            [("task", "task"), ("answers", "answers"), ("budget", "budget"), ("program", "program"), ("seeds", "seeds")]
            + metric_cols
            + [("picked", "picked")],
        ),
    ]
    common.write_results(
        "holdout_choice_val", {"frames": frame_rows, "choice": choice_rows, "runs": runs}, "\n".join(md)
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("frames", "choice"))
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--budget", type=int, default=5000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--top-k", type=int, default=None, help="Lite0 answers only its K largest scores")
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    if args.top_k and args.part == "frames":
        ap.error("--top-k is for --part choice (the frames part reads full scores)")
    if not args.report and args.part is not None:
        model = lite0(SIZE, threads=1)
        if args.top_k:
            model = TopK(model, args.top_k)
        done = {(r["part"], r["task"], r.get("budget"), r.get("seed"), r.get("top_k")) for r in load_runs()}
        for task in args.tasks:
            if args.part == "frames":
                jobs = [] if ("frames", task, None, None, None) in done else [lambda: frames(task, model)]
            else:
                jobs = [
                    (lambda s=s: [choice(task, model, args.budget, s, args.top_k)])
                    for s in args.seeds
                    if ("choice", task, args.budget, s, args.top_k) not in done
                ]
            for job in jobs:
                for r in job():
                    with RUNS.open("a") as f:
                        f.write(json.dumps(r) + "\n")
                print(task, "done", flush=True)
    report()


if __name__ == "__main__":
    main()
