"""Reprogram a CIFAR-subset CNN for BreastMNIST and PneumoniaMNIST, against the usual baselines.

Tasks: BreastMNIST (all 546 training images), PneumoniaMNIST (all 4,708) and
PneumoniaMNIST 10% (471, stratified). Methods: BAR with the paper's settings,
this SDK's default, white-box reprogramming, a linear probe and fine-tuning
of the source CNN, and a CNN trained from scratch. Test-split metrics:
accuracy, balanced accuracy, AUC; fit queries and wall time.

Also measures the SDK's overhead per query: in one default fit, the time
spent inside the bare model's ``predict_proba`` against the whole fit.

    python benchmarks/reprogram_medmnist.py            # about 70 minutes at one thread
    python benchmarks/reprogram_medmnist.py --quick    # smoke test
    python benchmarks/reprogram_medmnist.py --report   # rewrite the markdown from the results JSON

Writes benchmarks/results/reprogram_medmnist.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import common  # first: pins torch to one thread
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bar_sdk.adapters.nets import SmallCNN, train_classifier
from bar_sdk.ledger import MeteredModel, QueryLedger
from bar_sdk.mapping import LogisticReadout
from bar_sdk.program import resize_images
from bar_sdk.reprogram import BARClassifier
from bar_sdk.zo.optimizers import SGD

#: BAR as published (Tsai et al., 2020): one parameter per frame pixel, one-sided random
#: differences with q = 5 and beta = 0.01, plain SGD (lr 0.05, exponential decay), focal loss,
#: frequency label mapping, predictions read from the mapping
PAPER = {
    "parameterization": "full",
    "estimator": "one_sided",
    "n_directions": 5,
    "smoothing": 0.01,
    "learning_rate": 0.05,
    "lr_decay": 0.1,
    "loss": "focal",
    "mapping": "frequency",
    "readout": "mapping",
}

#: white-box at 20k (where it has about converged) and at the default's largest budget, so the gap is
#: also judged against white-box reprogramming given as many queries as the black box
BUDGETS = {
    "paper": [25_000, 50_000, 100_000, 200_000],
    "default": [25_000, 50_000, 100_000, 200_000],
    "white_box": [20_000, 100_000],
}
QUICK_BUDGETS = {"paper": [2_000, 4_000], "default": [2_000, 4_000], "white_box": [2_000, 4_000]}


class TimedModel:
    """The black box with a stopwatch: accumulates the seconds spent inside ``predict_proba``."""

    def __init__(self, model):
        self.model = model
        self.n_classes, self.input_shape, self.labels = model.n_classes, model.input_shape, model.labels
        self.seconds = 0.0
        self.calls = 0

    def predict_proba(self, x):
        started = time.perf_counter()
        try:
            return self.model.predict_proba(x)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1


class Snapshots:
    """Optimizer mixin that keeps ``theta`` when the run first reaches each query budget (an anytime curve).

    ``progress`` is the share of ``max_queries`` spent before the step, so the
    ``theta`` handed in is the program after exactly that many queries.
    """

    def __init__(self, lr, lr_decay, max_queries, budgets):
        super().__init__(lr, lr_decay)
        self.max_queries = max_queries
        self.pending = sorted(b for b in budgets if b < max_queries)
        self.snapshots = []  # (budget, queries actually spent, theta)

    def step(self, theta, grad, progress):
        spent = round(progress * self.max_queries)
        while self.pending and spent >= self.pending[0]:
            self.snapshots.append((self.pending.pop(0), spent, theta.copy()))
        return super().step(theta, grad, progress)


class SnapshotSGD(Snapshots, SGD):
    """SGD with anytime snapshots (the paper's settings)."""


# ---------------------------------------------------------------------- tasks
def tasks(data_dir, quick):
    out = common.medmnist_tasks(data_dir, "test")
    if quick:  # a slice of each, to exercise every code path in seconds
        rng = np.random.default_rng(0)

        def part(split, n):
            idx = np.sort(rng.choice(len(split[1]), size=min(n, len(split[1])), replace=False))
            return split[0][idx], split[1][idx]

        out = {k: (part(tr, 120), part(te, 80)) for k, (tr, te) in out.items()}
    return out


# ---------------------------------------------------------------------- BAR methods
def bar_row(task, method, clf, Xte, yte, seconds, extra=None):
    metrics = common.binary_metrics(yte, clf.predict_proba(Xte))
    return {
        "task": task,
        "method": method,
        "fit_queries": clf.queries_,
        "fit_seconds": seconds,
        "steps": clf.n_steps_,
        "n_params": int(clf.theta_.size),
        **metrics,
        **(extra or {}),
    }


def run_paper(model, task, train, test, budgets, seed):
    """One paper-settings fit at the largest budget; earlier budgets read from its snapshots."""
    final = max(budgets)
    opt = SnapshotSGD(PAPER["learning_rate"], PAPER["lr_decay"], final, budgets)
    params = {k: v for k, v in PAPER.items() if k not in ("learning_rate", "lr_decay")}
    started = time.perf_counter()
    clf = BARClassifier(model, max_queries=final, random_state=seed, optimizer=opt, **params).fit(*train)
    seconds = time.perf_counter() - started
    rows = []
    final_theta = clf.theta_
    for budget, spent, theta in clf.optimizer_.snapshots:  # fit's own copy of opt, in its final state
        clf.theta_ = theta
        row = bar_row(task, "BAR, paper settings", clf, *test, None, {"budget": budget, "anytime": True})
        row["fit_queries"] = spent
        rows.append(row)
    clf.theta_ = final_theta
    rows.append(bar_row(task, "BAR, paper settings", clf, *test, seconds, {"budget": final, "anytime": False}))
    return rows


def run_default(model, task, train, test, budgets, seed, overrides, method="BAR, SDK default"):
    rows = []
    for budget in budgets:
        started = time.perf_counter()
        clf = BARClassifier(model, max_queries=budget, random_state=seed, **overrides).fit(*train)
        rows.append(
            bar_row(task, method, clf, *test, time.perf_counter() - started, {"budget": budget, "anytime": False})
        )
    return rows


def run_white_box(model, task, train, test, budgets, seed, overrides, parameterization="grid", name=None):
    """Exact gradients: the default's settings (program, mapping) with the model's own gradients."""
    params = {**overrides, "estimator": "exact", "parameterization": parameterization}
    name = name or "white-box reprogramming" + (" (full frame)" if parameterization == "full" else " (default program)")
    return run_default(model, task, train, test, budgets, seed, params, name)


#: the rows of readout="logistic" (the option), black-box and white-box
READOUT_METHODS = ("BAR, SDK default + logistic readout", "white-box reprogramming + logistic readout")


def grey_frame_readout(model, Xtr, ytr, overrides):
    """The logistic readout fitted on a grey frame, no program: ``(proba of target images, queries of its pass)``."""
    layout, program = BARClassifier(model, **overrides).build_program(Xtr, model.input_shape)
    grey = np.zeros((1, program.n_params))

    def frames(X):
        return program.apply(grey, program.embed(layout.transform(X)))

    metered = MeteredModel(model, QueryLedger())  # counts the readout pass
    readout = LogisticReadout.fit(metered.predict_proba(frames(Xtr), purpose="readout"), ytr, int(ytr.max()) + 1)
    return (lambda X: readout.proba(model.predict_proba(frames(X)))), metered.ledger.queries


def run_readout_only(model, task, train, test, overrides):
    """The logistic readout on a grey frame, no program trained: what a trained program adds beyond it."""
    (Xtr, ytr), (Xte, yte) = train, test
    started = time.perf_counter()
    proba, fit_queries = grey_frame_readout(model, Xtr, ytr, overrides)
    return [
        {
            "task": task,
            "method": "logistic readout on a grey frame (no program)",
            "fit_queries": fit_queries,
            "fit_seconds": time.perf_counter() - started,
            "steps": 0,
            "n_params": 0,
            **common.binary_metrics(yte, proba(Xte)),
            "budget": len(ytr),
            "anytime": False,
        }
    ]


def measure_overhead(model, train, budget, seed, overrides):
    """One default fit through a stopwatch: (fit time - time in the model) / time in the model."""
    timed = TimedModel(model)
    started = time.perf_counter()
    clf = BARClassifier(timed, max_queries=budget, random_state=seed, **overrides).fit(*train)
    total = time.perf_counter() - started
    outside = total - timed.seconds
    return {
        "budget": budget,
        "fit_queries": clf.queries_,
        "model_calls": timed.calls,
        "fit_seconds": total,
        "seconds_in_model": timed.seconds,
        "seconds_outside_model": outside,
        "overhead_ratio": outside / timed.seconds,
        "queries_per_second": clf.queries_ / total,
    }


# ---------------------------------------------------------------------- baselines that need the weights
def source_frame(x_uint8):
    """Target images as the source model sees them: 32x32, grey repeated to RGB."""
    x = resize_images(common.as_float(x_uint8)[:, None], (32, 32))
    return np.ascontiguousarray(np.repeat(x, 3, axis=1))


def penultimate(net, x):
    with torch.inference_mode():
        std, cnn = net[0], net[1]
        return torch.flatten(cnn.features(std(torch.from_numpy(x))), 1).numpy()


def fit_linear_probe(net, train, val):
    """The probe on the source model's features, its C chosen on ``val`` by AUC (0.01 without val).

    Returns ``(proba of target images, C)``.
    """
    ftr = penultimate(net, source_frame(train[0]))
    best = None
    if val is not None:
        fva = penultimate(net, source_frame(val[0]))
        for c in (0.001, 0.01, 0.1, 1.0):
            auc = common.binary_metrics(val[1], _probe(c).fit(ftr, train[1]).predict_proba(fva))["auc"]
            best = (auc, c) if best is None or auc > best[0] else best
    c = best[1] if best else 0.01
    probe = _probe(c).fit(ftr, train[1])
    return (lambda X: probe.predict_proba(penultimate(net, source_frame(X)))), c


def run_linear_probe(model, task, train, test, val):
    started = time.perf_counter()
    proba, c = fit_linear_probe(model.module, train, val)
    metrics = common.binary_metrics(test[1], proba(test[0]))
    return [
        {
            "task": task,
            "method": "linear probe (source features)",
            "fit_queries": None,
            "fit_seconds": time.perf_counter() - started,
            "C": c,
            **metrics,
        }
    ]


def _probe(c):
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000))


def _torch_proba(net, x):
    with torch.inference_mode():
        return torch.softmax(net(torch.from_numpy(x)), 1).double().numpy()


def run_fine_tune(model, task, train, test, epochs, seed):
    started = time.perf_counter()
    net = copy.deepcopy(model.module)
    cnn = net[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cnn.head = torch.nn.Linear(cnn.head.in_features, 2)
    (Xtr, ytr), (Xte, yte) = train, test
    train_classifier(net, source_frame(Xtr), ytr, epochs=epochs, batch_size=32, lr=5e-4, random_state=seed)
    metrics = common.binary_metrics(yte, _torch_proba(net, source_frame(Xte)))
    return [
        {
            "task": task,
            "method": "fine-tuning (all layers, new head)",
            "fit_queries": None,
            "fit_seconds": time.perf_counter() - started,
            "epochs": epochs,
            **metrics,
        }
    ]


def run_scratch(task, train, test, epochs, seed):
    started = time.perf_counter()
    (Xtr, ytr), (Xte, yte) = train, test
    net = SmallCNN(1, int(ytr.max()) + 1, Xtr.shape[1:3], width=16, random_state=seed)  # 28 px, 2 classes on MedMNIST
    train_classifier(net, common.as_float(Xtr)[:, None], ytr, epochs=epochs, batch_size=32, lr=1e-3, random_state=seed)
    metrics = common.binary_metrics(yte, _torch_proba(net, common.as_float(Xte)[:, None]))
    return [
        {
            "task": task,
            "method": "SmallCNN from scratch",
            "fit_queries": None,
            "fit_seconds": time.perf_counter() - started,
            "epochs": epochs,
            **metrics,
        }
    ]


# ---------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_common_args(parser)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="every method runs once per seed; tables give the mean (and standard deviation); "
        "default 0 1 2, or with --only the seeds the results already have",
    )
    parser.add_argument(
        "--default-overrides",
        type=json.loads,
        default={},
        help="JSON dict of BARClassifier parameters standing in for defaults not yet set "
        "in the library (recorded in the results)",
    )
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument(
        "--default-budgets",
        type=int,
        nargs="+",
        default=None,
        help="max_queries of the SDK-default fits (default: 25k, 50k, 100k, 200k); with --only "
        "default, rows of other budgets are kept",
    )
    parser.add_argument(
        "--only",
        nargs="*",
        choices=list(GROUPS),
        default=None,
        help="rerun only these parts and merge them into the existing results JSON",
    )
    parser.add_argument(
        "--add-seeds",
        action="store_true",
        help="with --only: run these seeds and keep the other seeds' rows, to add seeds to a table "
        "(deterministic parts are not rerun); without it a rerun part replaces every seed",
    )
    parser.add_argument("--report", action="store_true", help="only rewrite the markdown from the results JSON")
    args = parser.parse_args()
    if args.add_seeds and (
        args.only is None or "overhead" in args.only or args.seeds is None or not set(args.only) - set(DETERMINISTIC)
    ):
        parser.error(
            "--add-seeds needs --seeds and --only with the seeded parts to add them to (not overhead, "
            f"which runs once, nor only {', '.join(DETERMINISTIC)}, which have no randomness)"
        )
    if args.report:
        payload = json.loads((common.RESULTS_DIR / "reprogram_medmnist.json").read_text())
        order = {t: i for i, t in enumerate(dict.fromkeys(r["task"] for r in payload["rows"]))}
        payload["rows"].sort(key=lambda r: (order[r["task"]], *_place(r["method"])))
        payload["targets"] = targets(payload)
        common.write_results("reprogram_medmnist", payload, report(payload))
        return
    budgets = dict(QUICK_BUDGETS if args.quick else BUDGETS)
    if args.default_budgets:
        budgets["default"] = sorted(args.default_budgets)
    old = json.loads((common.RESULTS_DIR / "reprogram_medmnist.json").read_text()) if args.only is not None else None
    if old is not None and not args.add_seeds and args.seeds not in (None, old["seeds"]):
        # replacing a part's rows with fewer (or other) seeds would mix means over different seeds
        parser.error(
            f"--seeds {' '.join(map(str, args.seeds))}: the results have seeds "
            f"{' '.join(map(str, old['seeds']))}; rerun parts with those (the default), or add seeds "
            "with --add-seeds"
        )
    seeds = args.seeds or (old["seeds"] if old is not None and not args.add_seeds else [0, 1, 2])
    overrides = args.default_overrides
    seed = seeds[0]  # the overhead measurement's

    model, source = common.source_model(args.data_dir, common.TRAINED_SOURCE_CONFIG)
    all_tasks = tasks(args.data_dir, args.quick)
    vals = {"breastmnist": "breastmnist", "pneumoniamnist": "pneumoniamnist", "pneumoniamnist_10pct": "pneumoniamnist"}
    payload = {
        "machine": common.machine(),
        "source_model": source,
        "seeds": seeds,
        "budgets": budgets,
        "paper_settings": PAPER,
        "default_overrides": overrides,
        "rows": [],
        "overhead": None,
    }
    only = set(args.only) if args.only is not None else set(GROUPS)
    if args.only is not None:  # keep what is not rerun
        rerun = set(args.tasks or all_tasks)

        def rerun_here(r):  # a row is replaced when its task, part and budget are all being rerun
            group = _group(r["method"])
            return (
                r["task"] in rerun
                and group in only
                and (r.get("budget") is None or r["budget"] in np.ravel(budgets.get(group, r["budget"])))
                and (not args.add_seeds or (group not in DETERMINISTIC and r["seed"] in seeds))
            )

        payload["rows"] = [r for r in old["rows"] if not rerun_here(r)]
        payload["overhead"] = None if "overhead" in only else old["overhead"]
        payload["merged_from_runs"] = old.get("merged_from_runs", 1) + 1
        payload["rerun_parts"] = sorted(only - set(DETERMINISTIC) if args.add_seeds else only)
        payload["rerun_budgets"] = sorted(args.default_budgets) if args.default_budgets else None
        if args.add_seeds:
            payload["seeds"] = sorted(set(old["seeds"]) | set(seeds))
            payload["added_seeds"] = sorted(set(seeds) - set(old["seeds"]))

    def save():
        order = {t: i for i, t in enumerate(all_tasks)}
        payload["rows"].sort(key=lambda r: (order[r["task"]], *_place(r["method"])))
        payload["targets"] = targets(payload)
        common.write_results("reprogram_medmnist", payload, report(payload))

    if "overhead" in only:  # one default fit on BreastMNIST through a stopwatch
        train0 = all_tasks["breastmnist"][0]
        payload["overhead"] = measure_overhead(model, train0, 20_000 if not args.quick else 2_000, seed, overrides)
        print("overhead:", payload["overhead"], flush=True)
        save()

    for task in args.tasks or list(all_tasks):
        train, test = all_tasks[task]
        n = len(train[1])
        epochs = max(5, min(30, 15_000 // n))
        val_split = common.load_medmnist(vals[task], args.data_dir)["val"]
        steps = {
            "scratch": lambda: run_scratch(task, train, test, epochs, seed),
            "probe": lambda: run_linear_probe(model, task, train, test, val_split),
            "fine_tune": lambda: run_fine_tune(model, task, train, test, epochs, seed),
            "white_box": lambda: (
                run_white_box(model, task, train, test, budgets["white_box"], seed, overrides)
                + (
                    run_white_box(model, task, train, test, budgets["white_box"][:1], seed, overrides, "full")
                    if task == "breastmnist"
                    else []
                )
            ),
            "readout_only": lambda: run_readout_only(model, task, train, test, overrides),
            # readout="logistic", the option: its black-box rows at the default's budgets, and white-box
            "readout": lambda: (
                run_default(
                    model,
                    task,
                    train,
                    test,
                    budgets["default"],
                    seed,
                    {**overrides, "readout": "logistic"},
                    READOUT_METHODS[0],
                )
                + run_white_box(
                    model,
                    task,
                    train,
                    test,
                    budgets["white_box"],
                    seed,
                    {**overrides, "readout": "logistic"},
                    name=READOUT_METHODS[1],
                )
            ),
            "default": lambda: run_default(model, task, train, test, budgets["default"], seed, overrides),
            "paper": lambda: run_paper(model, task, train, test, budgets["paper"], seed),
        }
        for group in (g for g in GROUPS if g in only and g in steps):
            if args.add_seeds and group in DETERMINISTIC:
                continue  # its one run stands for every seed
            for seed in seeds if group not in DETERMINISTIC else seeds[:1]:
                for row in steps[group]():
                    row["n_train"], row["seed"] = n, seed
                    payload["rows"].append(row)
                    print(
                        f"{task:<22} {row['method']:<42} seed {seed} q={row.get('fit_queries')} "
                        f"acc {row['accuracy']:.3f} bal {row['balanced_accuracy']:.3f} AUC {row['auc']:.3f} "
                        f"({row['fit_seconds'] or 0:.1f} s)",
                        flush=True,
                    )
                save()


#: the parts of a run, in table order, and the method names each writes
GROUPS = {
    "overhead": (),
    "scratch": ("SmallCNN from scratch",),
    "probe": ("linear probe (source features)",),
    "fine_tune": ("fine-tuning (all layers, new head)",),
    "white_box": ("white-box reprogramming (default program)", "white-box reprogramming (full frame)"),
    "default": ("BAR, SDK default",),
    "paper": ("BAR, paper settings",),
    "readout_only": ("logistic readout on a grey frame (no program)",),
    "readout": READOUT_METHODS,
}


DETERMINISTIC = ("probe", "readout_only")  #: parts with no randomness: run once, with the first seed


def _group(method: str) -> str:
    return next(g for g, names in GROUPS.items() if method in names)


def _place(method: str) -> tuple[int, int]:
    """Where a method's rows go in the tables: its part's place, then its own within the part."""
    group = _group(method)
    return list(GROUPS).index(group), GROUPS[group].index(method)


METRICS = ("accuracy", "balanced_accuracy", "auc")


def aggregate(rows: list[dict]) -> list[dict]:
    """One row per (task, method, budget, anytime): metrics as mean and standard deviation over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["method"], r.get("budget"), r.get("anytime", False)), []).append(r)
    out = []
    for (task, method, budget, anytime), rs in groups.items():
        row = {
            "task": task,
            "method": method,
            "budget": budget,
            "anytime": anytime,
            "n_seeds": len(rs),
            "n_train": rs[0]["n_train"],
        }
        for key in ("fit_queries", "fit_seconds"):
            vals = [r[key] for r in rs if r.get(key) is not None]
            row[key] = (
                round(float(np.mean(vals)))
                if vals and key == "fit_queries"
                else (float(np.mean(vals)) if vals else None)
            )
        for key in METRICS:
            vals = np.array([r[key] for r in rs])
            row[key], row[key + "_std"] = float(vals.mean()), float(vals.std())
        out.append(row)
    return out


def targets(payload) -> dict:
    """The issue's three targets, judged on the means over seeds (None while a piece is missing)."""
    out = {}
    rows_all = aggregate(payload["rows"])
    for task in dict.fromkeys(r["task"] for r in rows_all):
        rows = [r for r in rows_all if r["task"] == task]
        paper = [r for r in rows if r["method"] == "BAR, paper settings" and not r["anytime"]]
        default = sorted((r for r in rows if r["method"] == "BAR, SDK default"), key=lambda r: r["budget"])
        white = [r for r in rows if r["method"] == "white-box reprogramming (default program)"]
        t = {}
        if paper and default:
            goal, final_q = paper[0]["accuracy"], paper[0]["budget"]
            reached = [r for r in default if r["accuracy"] >= goal]
            t["paper_final_accuracy"] = goal
            t["paper_final_queries"] = final_q
            t["default_first_budget_reaching_it"] = reached[0]["budget"] if reached else None
            t["default_half_budget_met"] = bool(reached) and reached[0]["budget"] <= final_q / 2
        if white and default:
            # each black-box budget is judged against the best white-box run given no more queries than
            # it (the smallest white-box run when none is that small); the smallest budget within 3
            # points counts, else the largest run
            def reference(r):
                fits = [w for w in white if w["budget"] <= r["budget"]] or [min(white, key=lambda w: w["budget"])]
                return max(fits, key=lambda w: w["accuracy"])

            close = [r for r in default if 100 * (reference(r)["accuracy"] - r["accuracy"]) <= 3.0]
            best = close[0] if close else default[-1]
            ref = reference(best)
            t["white_box_accuracy"] = ref["accuracy"]
            t["white_box_budget"] = ref["budget"]
            t["black_box_accuracy"] = best["accuracy"]
            t["black_box_budget"] = best["budget"]
            t["gap_points"] = 100 * (ref["accuracy"] - best["accuracy"])
            t["within_3_points"] = t["gap_points"] <= 3.0
        out[task] = t
    ov = payload.get("overhead")
    if ov:
        out["overhead"] = {"ratio": ov["overhead_ratio"], "met": ov["overhead_ratio"] <= 0.15}
    return out


def report(payload) -> str:
    m, src = payload["machine"], payload["source_model"]
    lines = [
        "# Reprogramming a CIFAR-subset CNN for MedMNIST\n",
        f"Source black box: `bar_sdk.adapters.nets.SmallCNN` (width {src['config']['width']}) trained on the CIFAR-10 "
        f"subset ({src['n_train']} images), test accuracy {src['test_accuracy']:.3f} on its {src['n_test']} "
        "test images. Targets: 28x28 grey images, resized to 20x20 inside the 32x32 RGB frame for BAR; "
        "resized to 32x32 RGB for the probe and fine-tuning; native 28x28 for the CNN from scratch.\n",
        f"Machine: {m['cpu_cores']} cores ({m['processor']}), {m['torch_threads']} torch thread, torch "
        f"{m['torch']}, numpy {m['numpy']}; the cores were shared with other users' jobs, so seconds are "
        f"indicative. Every method runs once per seed ({', '.join(map(str, sorted({r['seed'] for r in payload['rows']})))}"
        ": the program's initial values, minibatch order and random directions; the split is fixed) and the "
        "tables give the mean over seeds with the standard deviation in brackets; the linear probe and the "
        "grey-frame readout have no randomness and run once (*runs* says how many runs a row averages). "
        "Targets are judged on the means. "
        "BreastMNIST's test split has 156 images, so one image is 0.6 accuracy points.\n",
        "Queries are images sent to the black box during fit (label-mapping and readout passes included), never the "
        "evaluation's. Rows marked *anytime* are the paper-settings run's program read when it had spent "
        "that many queries (its learning rate not yet decayed); every other BAR row is its own fit with "
        "that `max_queries`. Linear probe, fine-tuning and the scratch CNN need the weights, so they have "
        "no query count.\n",
        f"Paper settings: `{', '.join(f'{k}={v}' for k, v in payload['paper_settings'].items())}`, optimizer=sgd, "
        "batch_size=10 (labels_per_class=5, init_scale=0.01 as the SDK's).\n",
    ]
    if payload.get("merged_from_runs"):
        lines.append(
            f"Merged from {payload['merged_from_runs']} runs of this script (`--only`); the latest "
            + (
                f"added seed{'s' * (len(payload['added_seeds']) > 1)} {', '.join(map(str, payload['added_seeds']))} to "
                if payload.get("added_seeds")
                else "reran "
            )
            + ", ".join(payload.get("rerun_parts", []))
            + (
                f" at {', '.join(f'{b:,}' for b in payload['rerun_budgets'])} queries"
                if payload.get("rerun_budgets")
                else ""
            )
            + ". Every row comes from a run with the same source model, and with the "
            "library's current defaults (a part is rerun whenever a default it uses changes).\n"
        )
    if payload["default_overrides"]:
        lines.append(
            f"SDK default here means `BARClassifier(model, max_queries=B, random_state=0, "
            f"**{payload['default_overrides']})`: the defaults recommended by the sweep "
            "(results/sweep_defaults.md), pending in the library.\n"
        )
    cols = [
        ("method", "method"),
        ("budget", "max_queries"),
        ("fit_queries", "fit queries"),
        ("n_seeds", "runs"),
        ("accuracy", "accuracy"),
        ("balanced_accuracy", "bal. accuracy"),
        ("auc", "AUC"),
        ("fit_seconds", "wall s"),
    ]
    for task in dict.fromkeys(r["task"] for r in payload["rows"]):
        rows = [
            dict(
                r,
                method=r["method"] + (" (anytime)" if r.get("anytime") else ""),
                **{k: f"{r[k]:.3f} ({r[k + '_std']:.3f})" for k in METRICS},
            )
            for r in aggregate(payload["rows"])
            if r["task"] == task
        ]
        n = rows[0]["n_train"]
        lines += [f"\n## {task} ({n} training images)\n", common.md_table(rows, cols)]
    ov = payload.get("overhead")
    if ov:
        lines += [
            "\n## SDK overhead per query\n",
            f"One default fit on BreastMNIST ({ov['fit_queries']:,} queries, {ov['model_calls']} model "
            f"calls): {ov['fit_seconds']:.2f} s in fit, {ov['seconds_in_model']:.2f} s inside the bare "
            f"model's `predict_proba` on the same batches, {ov['seconds_outside_model']:.2f} s elsewhere "
            f"(program, mapping, loss, estimator, ledger, checks). **Overhead ratio "
            f"{ov['overhead_ratio']:.3f}** (target <= 0.15); {ov['queries_per_second']:.0f} queries/s.\n",
        ]
    lines += ["\n## Targets\n", _targets_md(payload.get("targets", {})), NOTES]
    return "\n".join(lines)


NOTES = """
## Reading the table

- BreastMNIST's majority class is 73.1% of its test split. Every reprogramming row trains on a
  class-balanced loss (cross-entropy for the SDK default and white-box rows, BAR's focal loss for the
  paper settings), which trades accuracy for balanced accuracy, so accuracies sit near the majority
  rate while balanced accuracy and AUC say whether anything was learned.
- White-box rows use the same program and mapping as the SDK default with exact gradients
  (`estimator="exact"`); on BreastMNIST the full-resolution frame is also shown. With the 16x16 grid
  the program's capacity is no longer what limits accuracy (the full frame does no better white-box):
  the gap that remains is the zeroth-order estimate's.
- The source model matters: with the first, undertrained source CNN (test accuracy 0.569; this
  file's history in git) the paper's settings trailed the SDK default by a wide margin. With the
  trained one (0.654) the cross-entropy default (chosen on val, `results/sweep_val.md`) is far ahead
  on BreastMNIST, but on the PneumoniaMNIST test splits it is level with (0.828 at 50k vs 0.830) or
  behind (0.835 vs 0.841) the paper's settings at 200k, not ahead.
- **Val and test disagree on PneumoniaMNIST**, and the defaults are chosen on val. On the val splits
  (`results/sweep_val.md`, seeds 0-2 for the paper's settings, 0-3 for the default) the default at
  100k beats the paper's settings at 200k on all three tasks: accuracy 0.766 vs 0.701 (BreastMNIST),
  0.892 vs 0.828 (PneumoniaMNIST), 0.886 vs 0.836 (10%), so all three half-budget checks are met on
  val by 5 to 6.5 points. On test the two PneumoniaMNIST checks are missed. `results/val_test_drift_*.md`
  follows single fits on both splits: the default's val accuracy is above its test accuracy at every
  reading, by 1.3 to 7.4 points (6 at 200k; on the full task test peaks at 50k while val gains two
  more points), whereas the paper's settings' is not (-3.9 to +0.9 points). Their program's
  parameters stay about eight times smaller (mean |W| 0.11 on the full frame against 0.86 on the
  default's 16x16 grid). PneumoniaMNIST's test split also has another class balance (62.5%
  pneumonia; train and val 74.2%). Nothing was tuned on test to close this.
  The gap is the split's, not BAR's: scored the same way (`val_test_drift.py --references`), the
  linear probe loses 9.5 / 7.8 points from val to test and white-box reprogramming 8.1 / 6.6 (full /
  10%); only weak fits (the grey-frame readout, the paper's settings) do not. Weight decay on the
  program (`weight_decay`) lowered the val score at every value tried, so it is not the default
  (`results/sweep_val.md`).
- Seeds: the table first had seeds 0-2. The 10% check was then missed by 0.6 points (0.832 at 50k vs
  0.839) and BreastMNIST's white-box gap was exactly 3.0, both within seed noise, so seeds 3 and 4
  were added to every seeded part with nothing else changed, decided before those runs
  (`--add-seeds`). With them the full PneumoniaMNIST check went from met (by 0.5 points) to missed
  (by 0.2), the 10% check stayed missed (by 0.7), and BreastMNIST's gap shrank to 2.3 points because
  the white-box rows fell (0.769 to 0.762 at 100k), not because the black box rose.
- The *logistic readout* rows are the option `readout="logistic"`: the default's training, then
  predictions from a class-weighted logistic regression on all ten source log-scores, fitted on one
  more counted pass over the training data (white-box likewise). It is not the default: on val its
  gain was within the seeds' noise (`results/sweep_val.md`), and these rows show no gain on test.
- *Logistic readout on a grey frame (no program)* is that readout with no program trained, for
  `len(y)` queries (deterministic, so one run). It is a strong baseline here, near the paper's
  settings at 200k queries: compare BAR rows against it, not only against chance or the majority
  class. What a trained program adds is the distance between it and the BAR rows.
- Targets are judged on the mean accuracy over seeds, as the issue states them; AUC is reported
  beside it. With 156 BreastMNIST test images one seed's accuracy moved by up to 6 points.
"""


def _targets_md(t) -> str:
    out = []
    for task, v in t.items():
        if task == "overhead":
            out.append(f"- SDK overhead <= 15%: ratio {v['ratio']:.3f}: **{'met' if v['met'] else 'missed'}**")
            continue
        if "paper_final_accuracy" in v:
            first = v["default_first_budget_reaching_it"]
            out.append(
                f"- {task}: default reaches the paper-settings final accuracy "
                f"({v['paper_final_accuracy']:.3f} at {v['paper_final_queries']:,} queries) with at most "
                f"half its queries: "
                + (f"first at {first:,} queries" if first else "not within the budgets run")
                + f": **{'met' if v['default_half_budget_met'] else 'missed'}**"
            )
        if "gap_points" in v:
            out.append(
                f"- {task}: black-box default ({v['black_box_accuracy']:.3f} at {v['black_box_budget']:,} "
                f"queries) within 3 accuracy points of white-box reprogramming ({v['white_box_accuracy']:.3f} at "
                f"{v.get('white_box_budget', 20_000):,} queries, the best white-box run with no more "
                "queries): "
                f"gap {v['gap_points']:.1f} points: **{'met' if v['within_3_points'] else 'missed'}**"
            )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
