"""bar_sdk.transfer.compare on BreastMNIST and PneumoniaMNIST: reprogramming a black box against transfer learning.

The model is the benchmarks' source CNN (CIFAR-10 subset, common.py), seen
twice: as a black box you pay to query (BAR, 40,000 queries) and as a model
you can download (white-box reprogramming, linear probe on its penultimate
features, fine-tuning, and its architecture trained from scratch), all with
the library's defaults, on the same split: the full training split of
BreastMNIST, a stratified 1,000-image subset of PneumoniaMNIST's, and each
full test split.

    python benchmarks/transfer_compare.py            # about 3 minutes at one thread
    python benchmarks/transfer_compare.py --quick    # smoke test (do not commit its results)

Writes benchmarks/results/transfer_compare.{json,md}.
"""

from __future__ import annotations

import argparse
import time

import common  # first: pins torch to one thread

from bar_sdk.transfer import compare

MAX_QUERIES = 40_000
EPOCHS = 20
PNEUMONIA_TRAIN = 1_000


def tasks(data_dir, quick):
    breast = common.load_medmnist("breastmnist", data_dir)
    pneu = common.load_medmnist("pneumoniamnist", data_dir)
    keep = common.stratified_subset(pneu["train"][1], PNEUMONIA_TRAIN / len(pneu["train"][1]), seed=0)
    out = {
        "breastmnist": (breast["train"], breast["test"]),
        "pneumoniamnist (1,000 training images)": ((pneu["train"][0][keep], pneu["train"][1][keep]), pneu["test"]),
    }
    if quick:

        def part(split, n):
            idx = common.stratified_subset(split[1], min(1.0, n / len(split[1])), seed=0)
            return split[0][idx], split[1][idx]

        out = {k: (part(tr, 120), part(te, 80)) for k, (tr, te) in out.items()}
    return out


def report(payload) -> str:
    lines = [
        "# Reprogramming a black box against transfer learning on a local copy (`bar_sdk.transfer.compare`)",
        "",
        f"Model: {payload['model']['description']} (CIFAR test accuracy {payload['model']['test_accuracy']:.3f}). "
        f"BAR: library defaults, max_queries={payload['max_queries']:,}; white-box reprogramming, fine-tuning "
        f"and from scratch: {payload['epochs']} epochs; linear probe: logistic regression on the input of the "
        "last linear layer. Queries: images sent to the model during fit (black-box queries for BAR, exact "
        "gradient calls for white-box reprogramming; the other methods read the network directly). "
        "Wall time: fit and test predictions, one torch thread.",
        "",
    ]
    for task, doc in payload["tasks"].items():
        lines += [
            f"## {task} ({doc['n_train']} training / {doc['n_test']} test images)",
            "",
            "| method | model | accuracy | balanced acc. | AUC | queries | wall time (s) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in doc["rows"]:
            lines.append(
                f"| {r['method']} | {r['model']} | {r['accuracy']:.3f} | {r['balanced_accuracy']:.3f} | "
                f"{r['auc']:.3f} | {r['queries']:,} | {r['wall_time']:.1f} |"
            )
        lines.append("")
    lines += [
        "One seed (random_state=0); test sets of 156 (BreastMNIST, 73% one class) and 624 images: "
        "differences of a few points are noise.",
        "",
        f"Machine: {payload['machine']['processor']}, {payload['machine']['torch_threads']} torch thread(s); "
        f"{payload['wall_seconds']:.0f} s in all.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_common_args(parser)
    args = parser.parse_args()
    started = time.perf_counter()
    model, info = common.source_model(args.data_dir)
    max_queries, epochs = (3_000, 2) if args.quick else (MAX_QUERIES, EPOCHS)
    payload = {
        "machine": common.machine(),
        "max_queries": max_queries,
        "epochs": epochs,
        "model": {**info, "description": "SmallCNN trained on the CIFAR-10 subset (benchmarks/common.py)"},
        "tasks": {},
    }
    for task, ((Xa, ya), (Xb, yb)) in tasks(args.data_dir, args.quick).items():
        table = compare(
            Xa, ya, Xb, yb, model=model, local_model=model, max_queries=max_queries, epochs=epochs, random_state=0
        )
        payload["tasks"][task] = table.to_dict()
        print(task, "\n" + table.to_markdown(), flush=True)
        payload["wall_seconds"] = time.perf_counter() - started
        common.write_results("transfer_compare", payload, report(payload))


if __name__ == "__main__":
    main()
