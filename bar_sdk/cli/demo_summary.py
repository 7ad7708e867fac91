"""``bar demo``'s summary: which baseline without a program did best, and the table printed at the end."""

from __future__ import annotations

from pathlib import Path

__all__ = ["NO_PROGRAM", "best_without_program", "print_summary"]

#: rows of the baseline table that train no program (the white-box row does)
NO_PROGRAM = (
    "majority class",
    "logistic regression on raw features",
    "logistic regression on raw pixels",
    "grey frame + label mapping",
    "grey frame + logistic readout",
)


def best_without_program(baselines: dict) -> str:
    """The row without a trained program with the highest AUC (balanced accuracy breaks ties)."""
    rows = [(m["auc"], m["balanced_accuracy"], name) for name, m in baselines.items() if name in NO_PROGRAM]
    return max(rows)[2]


def print_summary(report: dict, out_dir: Path) -> None:
    """Print the demo's report: BAR beside the baselines, the queries spent, the API ledger, the files written."""
    bar = report["bar"]
    rows = [("BAR (black box, this run)", bar)] + list(report["baselines"].items())
    print()
    print(f"{'method':42s} {'accuracy':>9s} {'bal. acc':>9s} {'AUC':>7s}")
    for name, m in rows:
        print(f"{name:42s} {m['accuracy']:9.3f} {m['balanced_accuracy']:9.3f} {m['auc']:7.3f}")
    print(f"best baseline without a program: {report['best_baseline_without_program']}")
    print()
    print(
        f"queries: {bar['fit_queries']} to train ({bar['steps']} steps, stop: {bar['stop_reason']}), "
        f"{bar['predict_queries']} to evaluate"
    )
    api = report.get("api")
    if api:
        print(
            f"API ledger: billed {api['billed']}, attempts {api['attempts']}, retries {api['retries']}, "
            f"cache hits {api['cache_hits']}, cost ${api['cost_usd']:.2f} at ${api['price_per_query']}/image; "
            f"server counted {api['server_billed']} billed ({'matches' if api['server_matches_ledger'] else 'DIFFERS'})"
        )
    print(
        f"report: {out_dir / 'report.json'}, {out_dir / 'learning_curve.png'}, {out_dir / 'program.png'} "
        f"({report['wall_seconds']} s in all)"
    )
