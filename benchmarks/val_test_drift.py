"""Val and test scores along one fit: does what val rewards carry over to test?

The defaults are chosen on val splits and the targets judged on test. On
PneumoniaMNIST the two disagree (``results/reprogram_medmnist.md``), so this
script follows single fits, the SDK default and BAR with the paper's settings,
each at 200k queries, reading the program every 10k queries (the reading
at 10k is the program once 10k queries had been spent) and scoring it on
the task's val and test splits. The readings cost no training queries (the
snapshots are taken inside the optimizer); the scoring queries are the
evaluation's, not the fit's. Nothing here is used to choose anything.

    python benchmarks/val_test_drift.py --tasks pneumoniamnist --seeds 0 1 2   # about 10 min at one thread
    python benchmarks/val_test_drift.py --references --tasks pneumoniamnist    # about 1 min

``--references`` adds methods that are not BAR black-box fits, scored the
same way (is the val-test gap BAR's, or the split's?): the linear probe, the
logistic readout on a grey frame, and white-box reprogramming with the
default program at 20k queries, as in ``reprogram_medmnist.py``.

Writes ``results/val_test_drift_<task>.{json,md}``, one pair per task, so
tasks can run in parallel processes.
"""

from __future__ import annotations

import argparse
import json
import time

import common  # first: pins torch to one thread
import numpy as np
import reprogram_medmnist as rm
from reprogram_medmnist import PAPER, Snapshots, SnapshotSGD

from bar_sdk.reprogram import BARClassifier
from bar_sdk.zo.optimizers import Adam

BUDGET = 200_000
EVERY = 10_000
READINGS = range(EVERY, BUDGET, EVERY)  # the final program is read as well


class SnapshotAdam(Snapshots, Adam):
    """Adam with anytime snapshots (the SDK default)."""


def follow(model, method: str, train, val, test, seed: int) -> list[dict]:
    if method == "SDK default":
        clf = BARClassifier(
            model, max_queries=BUDGET, random_state=seed, optimizer=SnapshotAdam(0.05, 0.1, BUDGET, READINGS)
        )
        assert (clf.learning_rate, clf.lr_decay, BARClassifier(model).optimizer) == (0.05, 0.1, "adam"), (
            "the default's optimizer changed: update this script"
        )
    else:
        params = {k: v for k, v in PAPER.items() if k not in ("learning_rate", "lr_decay")}
        clf = BARClassifier(
            model,
            max_queries=BUDGET,
            random_state=seed,
            optimizer=SnapshotSGD(PAPER["learning_rate"], PAPER["lr_decay"], BUDGET, READINGS),
            **params,
        )
    clf.fit(*train)
    rows = []
    for at, spent, theta in clf.optimizer_.snapshots + [(BUDGET, clf.queries_, clf.theta_)]:
        clf.theta_ = theta
        row = {"method": method, "seed": seed, "at": at, "queries": spent, "mean_abs_w": float(np.abs(theta).mean())}
        for split, (X, y) in (("val", val), ("test", test)):
            row.update({f"{split}_{k}": v for k, v in common.binary_metrics(y, clf.predict_proba(X)).items()})
        rows.append(row)
    return rows


def references(model, train, val, test, seeds) -> list[dict]:
    """Val and test scores of the table's non-BAR references (``reprogram_medmnist.py``'s own code)."""

    def scores(method, seed, proba):
        return {
            "method": method,
            "seed": seed,
            **{
                f"{split}_{k}": v
                for split, (X, y) in (("val", val), ("test", test))
                for k, v in common.binary_metrics(y, proba(X)).items()
            },
        }

    probe, c = rm.fit_linear_probe(model.module, train, val)
    grey, _ = rm.grey_frame_readout(model, *train, {})
    rows = [
        scores(f"linear probe (C={c} chosen on val)", None, probe),
        scores("logistic readout on a grey frame", None, grey),
    ]
    for seed in seeds:
        wb = BARClassifier(model, max_queries=20_000, random_state=seed, estimator="exact").fit(*train)
        rows.append(scores("white-box reprogramming (default program), 20k", seed, wb.predict_proba))
    return rows


def report(task: str, payload: dict) -> str:
    rows = payload["rows"]
    lines = [
        f"# Val and test along single fits: {task}\n",
        "`python benchmarks/val_test_drift.py`. Source black box: the trained CIFAR-subset SmallCNN of "
        f"`reprogram_medmnist.py`. Each fit runs to {BUDGET:,} queries; its program is read every "
        f"{EVERY:,} queries and scored on the val and the test split. Means over seeds "
        f"{', '.join(map(str, payload['seeds']))}. *mean abs W* is the mean absolute program parameter "
        "(the program is tanh of it).\n",
    ]
    cols = [
        ("queries", "queries"),
        ("val_accuracy", "val acc"),
        ("val_auc", "val AUC"),
        ("test_accuracy", "test acc"),
        ("test_auc", "test AUC"),
        ("mean_abs_w", "mean abs W"),
    ]
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        table = []
        for at in sorted({r["at"] for r in mine}):
            here = [r for r in mine if r["at"] == at]
            table.append(
                {
                    "queries": f"{at:,}" + ("" if len(here) == len(payload["seeds"]) else f" ({len(here)} seeds)"),
                    **{k: f"{np.mean([r[k] for r in here]):.3f}" for k, _ in cols[1:]},
                }
            )
        final = [r for r in mine if r["at"] == BUDGET]
        gap = np.mean([r["val_accuracy"] - r["test_accuracy"] for r in final])
        peak_at = max(
            sorted({r["at"] for r in mine}),  # the first reading with the best unrounded mean
            key=lambda at: np.mean([r["test_accuracy"] for r in mine if r["at"] == at]),
        )
        peak = next(r for r in table if r["queries"].startswith(f"{peak_at:,}"))
        lines += [
            f"\n## {method}\n",
            common.md_table(table, cols),
            f"\nAt {BUDGET:,} queries, val accuracy minus test accuracy: {100 * gap:+.1f} points. The best "
            f"mean test accuracy along the fit, {peak['test_accuracy']}, was read at {peak['queries']} queries.",
        ]
    if payload.get("references"):
        refs, table = payload["references"], []
        for method in dict.fromkeys(r["method"] for r in refs):
            mine = [r for r in refs if r["method"] == method]
            table.append(
                {
                    "method": method,
                    "runs": len(mine),
                    **{
                        k: f"{np.mean([r[k] for r in mine]):.3f}"
                        for k in (
                            "val_accuracy",
                            "test_accuracy",
                            "val_balanced_accuracy",
                            "test_balanced_accuracy",
                            "val_auc",
                            "test_auc",
                        )
                    },
                    "gap": f"{100 * np.mean([r['val_accuracy'] - r['test_accuracy'] for r in mine]):+.1f}",
                }
            )
        lines += [
            "\n## Reference methods (`--references`)\n",
            "Not BAR black-box fits: the same val and test splits scored for the table's other methods, to "
            "tell a gap of BAR's from a gap of the split's. The probe's C is chosen on val, which flatters "
            "its val score slightly.\n",
            common.md_table(
                table,
                [
                    ("method", "method"),
                    ("runs", "runs"),
                    ("val_accuracy", "val acc"),
                    ("test_accuracy", "test acc"),
                    ("gap", "val - test (points)"),
                    ("val_balanced_accuracy", "val bal. acc"),
                    ("test_balanced_accuracy", "test bal. acc"),
                    ("val_auc", "val AUC"),
                    ("test_auc", "test AUC"),
                ],
            ),
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_common_args(parser)
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=["pneumoniamnist"],
        choices=["breastmnist", "pneumoniamnist", "pneumoniamnist_10pct"],
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--report", action="store_true", help="only rewrite the markdown from the results JSON")
    parser.add_argument(
        "--references",
        action="store_true",
        help="only add the reference methods to the task's existing results (about 1 min)",
    )
    args = parser.parse_args()
    if args.quick:
        parser.error("--quick: not supported here (the point is the whole 200k-query run)")
    if args.report:
        for task in args.tasks:
            payload = json.loads((common.RESULTS_DIR / f"val_test_drift_{task}.json").read_text())
            common.write_results(f"val_test_drift_{task}", payload, report(task, payload))
        return
    model, source = common.source_model(args.data_dir, common.TRAINED_SOURCE_CONFIG)
    vals, tests = common.medmnist_tasks(args.data_dir, "val"), common.medmnist_tasks(args.data_dir, "test")
    if args.references:
        table = json.loads((common.RESULTS_DIR / "reprogram_medmnist.json").read_text())
        if table["default_overrides"]:
            parser.error("the table was run with --default-overrides; references() would not match it")
        for task in args.tasks:
            payload = json.loads((common.RESULTS_DIR / f"val_test_drift_{task}.json").read_text())
            payload["references"] = references(model, vals[task][0], vals[task][1], tests[task][1], args.seeds)
            for r in payload["references"]:
                print(task, r["method"], r["seed"], round(r["val_accuracy"], 3), round(r["test_accuracy"], 3))
            common.write_results(f"val_test_drift_{task}", payload, report(task, payload))
        return
    for task in args.tasks:
        started = time.perf_counter()
        rows = []
        for seed in args.seeds:
            for method in ("SDK default", "paper settings"):
                rows += follow(model, method, vals[task][0], vals[task][1], tests[task][1], seed)
                print(
                    task,
                    method,
                    seed,
                    {
                        k: round(v, 3)
                        for k, v in rows[-1].items()
                        if k.endswith(("acc", "auc")) or k.endswith("accuracy")
                    },
                    flush=True,
                )
        payload = {
            "task": task,
            "seeds": args.seeds,
            "budget": BUDGET,
            "every": EVERY,
            "paper_settings": PAPER,
            "machine": common.machine(),
            "source_model": source,
            "seconds": time.perf_counter() - started,
            "rows": rows,
        }
        common.write_results(f"val_test_drift_{task}", payload, report(task, payload))


if __name__ == "__main__":
    main()
