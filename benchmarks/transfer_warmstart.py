"""Queries saved by a free local surrogate: warm start and surrogate-guided BAR on BreastMNIST and PneumoniaMNIST.

The black box is the benchmarks' source CNN (trained on the CIFAR-10 subset,
input 3x32x32). The surrogate is a different architecture (LeNet-5 style:
5x5 convolutions, two fully connected layers) trained on MNIST digits
(28x28 grey), wrapped so it takes the black box's input: the RGB 32x32
image is averaged over channels and resized to 28x28, so a program (same
shape, same parameters) moves between the two.

Protocol, per seed: BAR is trained white-box on the surrogate (free), then
BAR is fitted on the black box at several budgets: cold start (the
reference; its largest budget gives "the cold-start final score"), warm
start from the surrogate's program, a control warm start from the same
parameters in a random order (same values, so the same overall brightness
of the frame, none of its spatial pattern), surrogate-guided directions
from a cold start, and both. Every fit is a separate run with its own
learning-rate schedule (what a user with that budget would do). Test-split
accuracy, balanced accuracy and AUC, averaged over seeds; the verdict asks
whether warm start reaches the cold start's final score with at most half
its queries, for accuracy and for AUC.

    python benchmarks/transfer_warmstart.py            # about 7 minutes at one thread
    python benchmarks/transfer_warmstart.py --quick    # smoke test (do not commit its results)

Writes benchmarks/results/transfer_warmstart.{json,md}.
"""

from __future__ import annotations

import argparse
import time

import common  # first: pins torch to one thread
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from adapters import TorchModel
from adapters.nets import train_classifier
from bar_sdk.transfer import warm_start_study

BUDGETS = {"cold": [10_000, 40_000], "warm": [5_000, 10_000, 20_000], "warm_shuffled": [5_000],
           "guided": [20_000], "warm+guided": [5_000]}
QUICK_BUDGETS = {"cold": [1_500, 3_000], "warm": [1_500], "warm_shuffled": [1_500], "guided": [1_500],
                 "warm+guided": [1_500]}
#: PneumoniaMNIST training images used (stratified): BAR's mapping pass sends every one at each fit
PNEUMONIA_TRAIN = 1_000
SURROGATE = {"data": "mnist_test.npz (first 8,000 images; last 2,000 held out)", "epochs": 4, "lr": 1e-3,
             "batch_size": 64, "seed": 0}


class LeNet(nn.Module):
    """LeNet-5 style: two 5x5 conv + max-pool blocks, then 120-84-10 fully connected."""

    def __init__(self, random_state: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_state)
            self.features = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                          nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84),
                                      nn.ReLU(), nn.Linear(84, 10))

    def forward(self, x):
        return self.head(self.features(x))


class RGB32ToGrey28(nn.Module):
    """Lets a 28x28 grey classifier take the black box's 3x32x32 input: channel mean, then resize."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        grey = x.mean(dim=1, keepdim=True)
        return self.net(F.interpolate(grey, size=(28, 28), mode="bilinear", align_corners=False, antialias=True))


def surrogate_model(data_dir) -> tuple[TorchModel, dict]:
    with np.load(data_dir / "mnist_test.npz") as f:
        images, labels = f["images"], f["labels"].astype(np.int64)
    started = time.perf_counter()
    net = train_classifier(LeNet(SURROGATE["seed"]), images[:8000, None], labels[:8000], epochs=SURROGATE["epochs"],
                           lr=SURROGATE["lr"], batch_size=SURROGATE["batch_size"], random_state=SURROGATE["seed"])
    held_out = TorchModel(net, (1, 28, 28)).predict_proba(images[8000:, None]).argmax(1) == labels[8000:]
    model = TorchModel(RGB32ToGrey28(net), (3, 32, 32), labels=[f"digit {d}" for d in range(10)])
    return model, {**SURROGATE, "architecture": "LeNet-5 style (conv5-6, conv5-16, fc 120-84-10) behind "
                   "RGB32->grey28 (channel mean, antialiased bilinear resize)",
                   "held_out_accuracy": float(held_out.mean()), "train_seconds": round(time.perf_counter() - started, 1)}


def tasks(data_dir, quick):
    breast = common.load_medmnist("breastmnist", data_dir)
    pneu = common.load_medmnist("pneumoniamnist", data_dir)
    keep = common.stratified_subset(pneu["train"][1], PNEUMONIA_TRAIN / len(pneu["train"][1]), seed=0)
    out = {"breastmnist": (breast["train"], breast["test"]),
           "pneumoniamnist": ((pneu["train"][0][keep], pneu["train"][1][keep]), pneu["test"])}
    if quick:  # stratified slices, to exercise every code path in seconds
        def part(split, n):
            idx = common.stratified_subset(split[1], min(1.0, n / len(split[1])), seed=0)
            return split[0][idx], split[1][idx]
        out = {k: (part(tr, 120), part(te, 80)) for k, (tr, te) in out.items()}
    return out


def verdict(savings: dict, metric: str) -> dict:
    s = savings[metric]["warm"]
    return {"metric": metric, "cold_final": s["level"], "cold_queries": s["reference_queries"],
            "warm_queries_to_reach": s["queries_to_reach"], "fraction": s["fraction"],
            "met": s["fraction"] is not None and s["fraction"] <= 0.5}


def report(payload) -> str:
    lines = ["# Warm start and surrogate-guided BAR: queries saved by a free local surrogate", "",
             f"Black box: {payload['black_box']['description']} (test accuracy "
             f"{payload['black_box']['test_accuracy']:.3f}). Surrogate: {payload['surrogate']['architecture']}, "
             f"trained on MNIST (held-out accuracy {payload['surrogate']['held_out_accuracy']:.3f}). "
             f"Seeds {payload['seeds']}; means (and standard deviations) over seeds; every fit a separate run. "
             "Queries: images sent to the black box during fit (the mapping pass included); the surrogate's "
             "calls are free and listed apart.", ""]
    for task, result in payload["tasks"].items():
        lines += [f"## {task} ({result['n_train']} training / {result['n_test']} test images)", "",
                  "| strategy | budget | accuracy | balanced acc. | AUC | surrogate calls |", "|---|---|---|---|---|---|"]
        rows = result["study"]["rows"]
        for strategy in dict.fromkeys(r["strategy"] for r in rows):
            for budget in sorted({r["budget"] for r in rows if r["strategy"] == strategy}):
                sel = [r for r in rows if r["strategy"] == strategy and r["budget"] == budget]

                def ms(key, sel=sel):
                    v = np.array([r[key] for r in sel], dtype=float)
                    return f"{v.mean():.3f} ({v.std():.3f})"
                calls = int(np.mean([r["surrogate_queries"] for r in sel]))
                lines.append(f"| {strategy} | {budget:,} | {ms('accuracy')} | {ms('balanced_accuracy')} | "
                             f"{ms('auc')} | {calls:,} |")
        wb = result["study"]["surrogate"]
        if wb:
            lines += ["", f"White-box program on the surrogate, scored through the surrogate: accuracy "
                      f"{np.mean([r['accuracy'] for r in wb]):.3f}, AUC {np.mean([r['auc'] for r in wb]):.3f} "
                      f"({int(np.mean([r['gradient_calls'] for r in wb])):,} free gradient calls)."]
        lines += ["", "Queries to reach the cold start's final score (smallest budget tried whose mean reaches it):", "",
                  "| metric | cold final | at | warm | guided | warm+guided | warm (shuffled control) |",
                  "|---|---|---|---|---|---|---|"]
        for metric, sav in result["study"]["savings"].items():
            cells = []
            for s in ("warm", "guided", "warm+guided", "warm_shuffled"):
                q = sav.get(s, {}).get("queries_to_reach")
                cells.append("not reached" if q is None else f"{q:,} ({sav[s]['fraction']:.0%})")
            lines.append(f"| {metric} | {sav['cold']['level']:.3f} | {sav['cold']['reference_queries']:,} | "
                         + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Target: warm start reaches the cold-start final score with at most half the queries", "",
              "| task | metric | cold final | warm queries to reach | share of cold | met |", "|---|---|---|---|---|---|"]
    for task, result in payload["tasks"].items():
        for v in result["verdict"]:
            q = "not reached" if v["warm_queries_to_reach"] is None else f"{v['warm_queries_to_reach']:,}"
            share = "-" if v["fraction"] is None else f"{v['fraction']:.0%}"
            lines.append(f"| {task} | {v['metric']} | {v['cold_final']:.3f} | {q} | {share} | "
                         f"{'yes' if v['met'] else 'no'} |")
    lines += ["", "Only the budgets listed were tried: a warm start that reaches the level at the smallest budget "
              "might reach it with fewer queries still.", "",
              f"Machine: {payload['machine']['processor']}, {payload['machine']['torch_threads']} torch thread(s); "
              f"{payload['wall_seconds']:.0f} s in all.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_common_args(parser)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    started = time.perf_counter()
    budgets = QUICK_BUDGETS if args.quick else BUDGETS
    black_box, source = common.source_model(args.data_dir)
    surrogate, sur_info = surrogate_model(args.data_dir)
    print("black box:", source["test_accuracy"], "surrogate:", sur_info["held_out_accuracy"], flush=True)
    payload = {"machine": common.machine(), "seeds": args.seeds, "budgets": budgets,
               "black_box": {**source, "description": "SmallCNN trained on the CIFAR-10 subset (benchmarks/common.py)"},
               "surrogate": sur_info, "pneumonia_train_images": PNEUMONIA_TRAIN, "tasks": {}}
    for task, ((Xa, ya), (Xb, yb)) in tasks(args.data_dir, args.quick).items():
        t0 = time.perf_counter()
        study = warm_start_study(black_box, surrogate, Xa, ya, Xb, yb, budgets=budgets, seeds=args.seeds,
                                 strategies=tuple(budgets), surrogate_epochs=10)
        doc = study.to_dict()
        payload["tasks"][task] = {"n_train": int(len(ya)), "n_test": int(len(yb)), "study": doc,
                                  "verdict": [verdict(doc["savings"], m) for m in ("accuracy", "auc")],
                                  "seconds": round(time.perf_counter() - t0, 1)}
        print(task, payload["tasks"][task]["verdict"], f"{time.perf_counter() - t0:.0f} s", flush=True)
        payload["wall_seconds"] = time.perf_counter() - started
        common.write_results("transfer_warmstart", payload, report(payload))


if __name__ == "__main__":
    main()
