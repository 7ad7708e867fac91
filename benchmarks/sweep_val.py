"""Choose BARClassifier's defaults on three val splits at the headline budget.

Each setting is a set of overrides on an explicit baseline (the defaults the
library had when this sweep was written: grid 16, one-sided differences,
focal loss), fitted on the train split of BreastMNIST (546 images),
PneumoniaMNIST 10% (470) and PneumoniaMNIST (4708) at 100k queries, and scored
on the val splits (78 and 524 images); the test splits are never touched.
Every Adam fit also scores two averaged programs at no query cost (an EMA of
the iterates, and the mean over the last half / quarter of the run), to see
whether iterate averaging would help. Settings are ranked at 100k queries;
runs at other budgets (``--budget``) are listed beside them, for example the
paper's settings against the default on one task:

    python benchmarks/sweep_val.py                      # every setting, seeds 0 1 (about 50 min at one thread)
    python benchmarks/sweep_val.py --settings '{"loss": "cross_entropy"}' --seeds 2
    python benchmarks/sweep_val.py --budget 200000 --tasks pneumoniamnist_10pct --seeds 0 1 2 \
        --settings '{"parameterization": "full", "smoothing": 0.01, "optimizer": "sgd"}'
    python benchmarks/sweep_val.py --report             # tables from the runs recorded so far

Runs are appended to results/sweep_val_runs.jsonl (one line per fit; a fit already recorded is skipped),
and the tables written to results/sweep_val.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time

import common  # first: pins torch to one thread
import numpy as np

from bar_sdk.reprogram import BARClassifier
from bar_sdk.zo.estimators import HistoryEstimator, RandomGradientEstimator
from bar_sdk.zo.optimizers import Adam

#: the library's defaults when the sweep was written (explicit, so a setting means the same thing later)
BASELINE = {
    "parameterization": "grid",
    "grid_size": 16,
    "estimator": "one_sided",
    "n_directions": 5,
    "smoothing": 0.05,
    "optimizer": "adam",
    "learning_rate": 0.05,
    "lr_decay": 0.1,
    "batch_size": 10,
    "labels_per_class": None,
    "mapping": "frequency",
    "readout": "mapping",
    "loss": "focal",
    "gamma": 2.0,
    "init_scale": 0.01,
}

SETTINGS = [
    {},
    {"loss": "cross_entropy"},
    {"batch_size": 5},
    {"batch_size": 2},
    {"smoothing": 0.02},
    {"n_directions": 10},
    {"batch_size": 5, "learning_rate": 0.03},
    {"batch_size": 5, "baseline": "mean"},
    {"loss": "cross_entropy", "batch_size": 5},
    {"loss": "cross_entropy", "batch_size": 2},
]
TASKS = ("breastmnist", "pneumoniamnist_10pct", "pneumoniamnist")
HEADLINE_BUDGET = 100_000  # what settings are ranked at
RUNS = common.RESULTS_DIR / "sweep_val_runs.jsonl"


class AveragingAdam(Adam):
    """Adam that also keeps an EMA of its iterates and their mean over the last half and quarter of the run."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tail, self.ema = {}, None

    def step(self, theta, grad, progress):
        new = super().step(theta, grad, progress)
        self.ema = new.copy() if self.ema is None else 0.99 * self.ema + 0.01 * new
        for start in (0.5, 0.75):
            if progress >= start:
                total, count = self.tail.get(start, (0.0, 0))
                self.tail[start] = (total + new, count + 1)
        return new


def fit_one(model, setting: dict, train, val, seed: int, budget: int) -> dict:
    params = {**BASELINE, **setting}
    if params["optimizer"] == "adam":  # Adam that also averages its iterates (free extra scores)
        params["optimizer"] = AveragingAdam(
            lr=params.pop("learning_rate"),
            lr_decay=params.pop("lr_decay"),
            weight_decay=params.pop("weight_decay", 0.0),
        )
    if "history" in params:  # HistoryEstimator's own settings, e.g. {"memory": 0.9, "explore": 0.1}
        params["estimator"] = HistoryEstimator(params["n_directions"], params["smoothing"], **params.pop("history"))
    if "baseline" in params:  # the one-sided estimator against the mean of the perturbed losses
        params["estimator"] = RandomGradientEstimator(
            params["n_directions"], params["smoothing"], params.pop("baseline")
        )
    started = time.perf_counter()
    clf = BARClassifier(model, max_queries=budget, random_state=seed, **params).fit(*train)
    out = {"sec": time.perf_counter() - started, "steps": clf.n_steps_, "fit_queries": clf.queries_}
    optimizer = clf.optimizer_  # fit's own copy, in its final state
    programs = {"raw": clf.theta_.copy()}
    if isinstance(optimizer, AveragingAdam) and clf.readout_ is None:  # a learned readout fits the raw program only
        programs.update(
            ema=optimizer.ema, **{f"tail{k}": total / count for k, (total, count) in optimizer.tail.items()}
        )
    for name, theta in programs.items():
        clf.theta_ = theta
        out[name] = {k: round(v, 4) for k, v in common.binary_metrics(val[1], clf.predict_proba(val[0])).items()}
    return out


def load_runs() -> list[dict]:
    return [json.loads(line) for line in RUNS.read_text().splitlines()] if RUNS.exists() else []


def aggregate(runs: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["setting"], r["task"], r["budget"]), []).append(r)
    rows = []
    for (setting, task, budget), rs in groups.items():
        row = {"setting": setting, "task": task, "budget": budget, "seeds": sorted(r["seed"] for r in rs)}
        for key in ("accuracy", "balanced_accuracy", "auc"):
            row[key] = float(np.mean([r["raw"][key] for r in rs]))
            ema = [r["ema"][key] for r in rs if "ema" in r]
            row["ema_" + key] = float(np.mean(ema)) if len(ema) == len(rs) else None
        row["sec"] = float(np.mean([r["sec"] for r in rs]))
        rows.append(row)
    return rows


def report(runs: list[dict], budget: int = HEADLINE_BUDGET) -> str:
    """Tables of every run; the ranking only over settings run on all three tasks at ``budget``."""
    rows = aggregate(runs)
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    lines = [
        "# Defaults on three val splits (BreastMNIST, PneumoniaMNIST 10%, PneumoniaMNIST)\n",
        "`python benchmarks/sweep_val.py`. Source black box: the trained CIFAR-subset SmallCNN of "
        "`reprogram_medmnist.py`. Each setting overrides the baseline "
        f"`{json.dumps(BASELINE)}`; fit on the train split at {budget:,} queries unless the budget column "
        "says otherwise, scored on the val split (BreastMNIST 78 images, PneumoniaMNIST 524). Means over "
        "the seeds listed. "
        "*score* is the sum over the three tasks of val AUC plus val balanced accuracy (what the "
        "sweeps rank by). *EMA AUC* scores the exponential moving average of the iterates (decay "
        "0.99) at no query cost.\n",
    ]
    totals, seeds = {}, {}
    for s in settings:
        per = [r for r in rows if r["setting"] == s and r["budget"] == budget]
        if len(per) == len(TASKS):
            totals[s] = sum(r["auc"] + r["balanced_accuracy"] for r in per)
            seeds[s] = sorted(set().union(*(r["seeds"] for r in per)))
    cols = [
        ("task", "task"),
        ("setting", "setting"),
        ("budget", "budget"),
        ("seeds", "seeds"),
        ("accuracy", "val acc"),
        ("balanced_accuracy", "val bal. acc"),
        ("auc", "val AUC"),
        ("ema_auc", "EMA AUC"),
        ("sec", "fit s"),
    ]
    for task in TASKS:
        part = [
            dict(
                r,
                seeds=" ".join(map(str, r["seeds"])),
                **{
                    k: "" if r[k] is None else f"{r[k]:.3f}"
                    for k in ("accuracy", "balanced_accuracy", "auc", "ema_auc")
                },
                sec=f"{r['sec']:.0f}",
            )
            for r in rows
            if r["task"] == task
        ]
        lines += [f"\n## {task}\n", common.md_table(part, cols)]
    lines.append(f"\n## Ranking (all three tasks, {budget:,} queries)\n")
    lines.append(
        'The top of the ranking is not the library\'s default. `{"readout": "logistic"}` ranks '
        "first, but its gain over the default, paired by seed, is +0.018 (t 1.3 over four seeds), "
        "within the noise. It costs len(y) extra queries, and it did not help on test "
        "(`reprogram_medmnist.md`), so it stays an option. The defaults it was compared with "
        "were adopted on this ranking alone, and their own paired gains were not beyond the noise "
        "either: cross-entropy over focal +0.071 (t 0.7, three seeds), smoothing 0.1 over 0.05 "
        "+0.047 (t 1.6, four seeds). Weight decay on the program (`weight_decay` 0.01 to 0.3, "
        "chosen by the one-standard-error rule, pre-registered) lowered the score at every value "
        "tried, more the larger it was (paired: -0.039 at 0.01, t -1.6; -0.072 at 0.03, t -3.5), "
        "so the default stays 0.\n"
    )
    for s, total in sorted(totals.items(), key=lambda kv: -kv[1]):
        lines.append(f"- `{s}`: score {total:.3f} (seeds {' '.join(map(str, seeds[s]))})")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_common_args(parser)
    parser.add_argument("--settings", type=json.loads, nargs="*", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--budget", type=int, default=HEADLINE_BUDGET)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--report", action="store_true", help="only rewrite the tables from the recorded runs")
    args = parser.parse_args()
    if not args.report:
        model, _ = common.source_model(args.data_dir, common.TRAINED_SOURCE_CONFIG)
        data = common.medmnist_tasks(args.data_dir, "val")
        done = {(r["setting"], r["task"], r["seed"], r["budget"]) for r in load_runs()}
        for setting in args.settings if args.settings is not None else SETTINGS:
            key = json.dumps(setting)
            for task in args.tasks:
                for seed in args.seeds:
                    if (key, task, seed, args.budget) in done:
                        continue
                    run = {
                        "task": task,
                        "seed": seed,
                        "budget": args.budget,
                        "setting": key,
                        **fit_one(model, setting, *data[task], seed, args.budget),
                    }
                    RUNS.parent.mkdir(parents=True, exist_ok=True)
                    with RUNS.open("a") as f:
                        f.write(json.dumps(run) + "\n")
                    print(task, seed, key, run["raw"], f"{run['sec']:.0f}s", flush=True)
    runs = load_runs()
    payload = {
        "baseline": BASELINE,
        "source_model": common.TRAINED_SOURCE_CONFIG,
        "machine": common.machine(),
        "rows": aggregate(runs),
    }
    common.write_results("sweep_val", payload, report(runs))


if __name__ == "__main__":
    main()
