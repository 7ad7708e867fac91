"""Queries saved by a local surrogate: warm start, distillation and surrogate-guided BAR on BreastMNIST and PneumoniaMNIST.

The black box is the benchmarks' trained source CNN (CIFAR-10 subset, input
3x32x32). The surrogate is a different architecture (LeNet-5 style: 5x5
convolutions, two fully connected layers) trained on MNIST digits (28x28
grey), wrapped so it takes the black box's input: the RGB 32x32 image is
resized to 28x28 and its first layer sees each colour channel with a third
of the grey weights (the grey network on the channel mean), so a program
(same shape, same parameters) moves between the two.

Protocol, per seed: BAR is trained white-box on the surrogate (free), then
BAR is fitted on the black box at several budgets: cold start (the
reference; its largest budget gives "the cold-start final score"), warm
start from the surrogate's program, a control warm start from the same
parameters in a random order, surrogate-guided directions from a cold start,
both, and "distilled": a copy of the surrogate fine-tuned on 4,000 counted
black-box answers in two rounds (2,000 framed training images under random
programs; a program trained white-box on the copy; 2,000 more under
programs drawn around that one; training on), BAR started from the
result, the 4,000 queries inside its budget. A control distils an untrained LeNet the same
way. Every fit is a separate run with its own learning-rate schedule (what a
user with that budget would do). Test-split accuracy, balanced accuracy and
AUC, averaged over seeds; the verdict asks whether a warm start reaches the
cold start's final score with at most half its queries.

    python benchmarks/transfer_warmstart.py            # about 25 minutes at one thread
    python benchmarks/transfer_warmstart.py --quick    # smoke test (do not commit its results)

Writes benchmarks/results/transfer_warmstart.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import time

import common  # first: pins torch to one thread
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bar_sdk.adapters import TorchModel
from bar_sdk.adapters.nets import train_classifier
from bar_sdk.transfer import WarmStartStudy, warm_start_study

BUDGETS = {
    "cold": [10_000, 20_000, 40_000],
    "warm": [5_000, 10_000, 20_000],
    "warm_shuffled": [5_000],
    "guided": [20_000],
    "warm+guided": [5_000],
    "distilled": [10_000, 20_000],
}
QUICK_BUDGETS = {
    "cold": [1_500, 3_000],
    "warm": [1_500],
    "warm_shuffled": [1_500],
    "guided": [1_500],
    "warm+guided": [1_500],
    "distilled": [2_500],
}
#: black-box images spent teaching the surrogate's copy the black box's answers (part of each
#: "distilled" budget)
DISTILL_QUERIES = {"full": 4_000, "quick": 1_000}
#: the control for distillation: the same architecture, untrained, distilled the same way
CONTROL = "distilled (untrained LeNet)"
#: PneumoniaMNIST training images used (stratified): BAR's mapping pass sends every one at each fit
PNEUMONIA_TRAIN = 1_000
SURROGATE = {
    "data": "mnist_test.npz (first 8,000 images; last 2,000 held out)",
    "epochs": 4,
    "lr": 1e-3,
    "batch_size": 64,
    "seed": 0,
}


class LeNet(nn.Module):
    """LeNet-5 style: two 5x5 conv + max-pool blocks, then 120-84-10 fully connected."""

    def __init__(self, random_state: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_state)
            self.features = nn.Sequential(
                nn.Conv2d(1, 6, 5, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(6, 16, 5),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )
            self.head = nn.Sequential(
                nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10)
            )

    def forward(self, x):
        return self.head(self.features(x))


class RGB32Net(nn.Module):
    """Lets a 28x28 grey classifier take the black box's 3x32x32 input: resize, then a colour first layer.

    The first convolution gets three input channels, each with a third of
    the grey weights, so at the start the network computes exactly what it
    did on the channel mean (resizing commutes with it); fine-tuned on the
    black box's answers (``distill_surrogate``) it can learn to tell colours apart.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        conv = net.features[0]
        rgb = nn.Conv2d(3, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding)
        with torch.no_grad():
            rgb.weight.copy_(conv.weight.repeat(1, 3, 1, 1) / 3)
            rgb.bias.copy_(conv.bias)
        self.net = copy.deepcopy(net)
        self.net.features[0] = rgb

    def forward(self, x):
        return self.net(F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False, antialias=True))


def surrogate_model(data_dir, untrained: bool = False) -> tuple[TorchModel, dict]:
    """The LeNet trained on MNIST (or, for the control, the same network left at its initial weights)."""
    with np.load(data_dir / "mnist_test.npz") as f:
        images, labels = f["images"], f["labels"].astype(np.int64)
    started = time.perf_counter()
    net = LeNet(SURROGATE["seed"])
    if not untrained:
        net = train_classifier(
            net,
            images[:8000, None],
            labels[:8000],
            epochs=SURROGATE["epochs"],
            lr=SURROGATE["lr"],
            batch_size=SURROGATE["batch_size"],
            random_state=SURROGATE["seed"],
        )
    held_out = TorchModel(net, (1, 28, 28)).predict_proba(images[8000:, None]).argmax(1) == labels[8000:]
    model = TorchModel(RGB32Net(net), (3, 32, 32), labels=[f"digit {d}" for d in range(10)])
    return model, {
        **SURROGATE,
        "architecture": "LeNet-5 style (conv5-6, conv5-16, fc 120-84-10) behind an "
        "antialiased bilinear resize 32->28, first layer on RGB as a third of the grey weights "
        "per channel (the grey network on the channel mean)",
        "held_out_accuracy": float(held_out.mean()),
        "train_seconds": round(time.perf_counter() - started, 1),
    }


def tasks(data_dir, quick):
    breast = common.load_medmnist("breastmnist", data_dir)
    pneu = common.load_medmnist("pneumoniamnist", data_dir)
    keep = common.stratified_subset(pneu["train"][1], PNEUMONIA_TRAIN / len(pneu["train"][1]), seed=0)
    out = {
        "breastmnist": (breast["train"], breast["test"]),
        "pneumoniamnist": ((pneu["train"][0][keep], pneu["train"][1][keep]), pneu["test"]),
    }
    if quick:  # stratified slices, to exercise every code path in seconds

        def part(split, n):
            idx = common.stratified_subset(split[1], min(1.0, n / len(split[1])), seed=0)
            return split[0][idx], split[1][idx]

        out = {k: (part(tr, 120), part(te, 80)) for k, (tr, te) in out.items()}
    return out


def verdict(savings: dict, metric: str, strategy: str) -> dict:
    s = savings[metric][strategy]
    return {
        "metric": metric,
        "strategy": strategy,
        "cold_final": s["level"],
        "cold_queries": s["reference_queries"],
        "warm_queries_to_reach": s["queries_to_reach"],
        "fraction": s["fraction"],
        "met": s["fraction"] is not None and s["fraction"] <= 0.5,
    }


def report(payload) -> str:
    lines = [
        "# Warm start and surrogate-guided BAR: queries saved by a free local surrogate",
        "",
        f"Black box: {payload['black_box']['description']} (test accuracy "
        f"{payload['black_box']['test_accuracy']:.3f}). Surrogate: {payload['surrogate']['architecture']}, "
        f"trained on MNIST (held-out accuracy {payload['surrogate']['held_out_accuracy']:.3f}). "
        f"Seeds {payload['seeds']}; means (and standard deviations) over seeds; every fit a separate run. "
        "Queries: images sent to the black box before predicting (the mapping pass included, and for "
        f"the distilled strategies the {payload['distill_queries']:,} distillation images); the surrogate's "
        "calls are free and listed apart.",
        "",
        "Strategies: *cold* starts from a random program (the reference); *warm* from a program trained "
        "white-box on the surrogate as it comes from MNIST; *warm_shuffled* from the same parameters in a "
        "random order (a control); *guided* biases BAR's random directions toward the surrogate's gradient; "
        f"*distilled* spends {payload['distill_queries']:,} black-box queries in two rounds "
        "(`bar_sdk.transfer.distilled_program`): half on framed training images under random programs, to "
        "fine-tune a copy of the surrogate to the black box's scores and train a program white-box on it; "
        "half under programs drawn around that program, to fine-tune the copy where the program goes and "
        f"train on; BAR starts from the result, its budget covering the distillation. *{CONTROL}* does the "
        "same from an untrained LeNet of the same architecture, to show what the MNIST training "
        "contributes.",
        "",
    ]
    for task, result in payload["tasks"].items():
        lines += [
            f"## {task} ({result['n_train']} training / {result['n_test']} test images)",
            "",
            "| strategy | budget | accuracy | balanced acc. | AUC | surrogate calls |",
            "|---|---|---|---|---|---|",
        ]
        rows = result["study"]["rows"]
        for strategy in dict.fromkeys(r["strategy"] for r in rows):
            for budget in sorted({r["budget"] for r in rows if r["strategy"] == strategy}):
                sel = [r for r in rows if r["strategy"] == strategy and r["budget"] == budget]

                def ms(key, sel=sel):
                    v = np.array([r[key] for r in sel], dtype=float)
                    return f"{v.mean():.3f} ({v.std():.3f})"

                calls = int(np.mean([r["surrogate_queries"] for r in sel]))
                lines.append(
                    f"| {strategy} | {budget:,} | {ms('accuracy')} | {ms('balanced_accuracy')} | "
                    f"{ms('auc')} | {calls:,} |"
                )
        for kind in ("as given", "distilled", CONTROL):
            wb = [r for r in result["study"]["surrogate"] if r.get("surrogate") == kind]
            if wb:
                fidelity = (
                    ""
                    if kind == "as given"
                    else (
                        f"; the copy agrees with the black box's top class on {np.mean([r['agreement'] for r in wb]):.0%} "
                        f"of held-out frames (before fine-tuning: {np.mean([r['agreement_before'] for r in wb]):.0%})"
                    )
                )
                lines += [
                    "",
                    f"White-box program on the surrogate ({kind}; for distilled copies the last "
                    "round's fidelity), scored through it: accuracy "
                    f"{np.mean([r['accuracy'] for r in wb]):.3f}, AUC {np.mean([r['auc'] for r in wb]):.3f} "
                    f"({int(np.mean([r['gradient_calls'] for r in wb])):,} free gradient calls){fidelity}.",
                ]
        lines += [
            "",
            "Queries to reach the cold start's final score (smallest budget tried whose mean reaches it):",
            "",
            "| metric | cold final | at | warm | guided | warm+guided | warm (shuffled control) | distilled "
            f"| {CONTROL} |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for metric, sav in result["study"]["savings"].items():
            cells = []
            for s in ("warm", "guided", "warm+guided", "warm_shuffled", "distilled", CONTROL):
                q = sav.get(s, {}).get("queries_to_reach")
                cells.append("not reached" if q is None else f"{q:,} ({sav[s]['fraction']:.0%})")
            lines.append(
                f"| {metric} | {sav['cold']['level']:.3f} | {sav['cold']['reference_queries']:,} | "
                + " | ".join(cells)
                + " |"
            )
        lines.append("")
    lines += [
        "## Target: warm start reaches the cold-start final score with at most half the queries",
        "",
        "| task | warm start | metric | cold final | queries to reach | share of cold | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, result in payload["tasks"].items():
        for v in result["verdict"]:
            q = "not reached" if v["warm_queries_to_reach"] is None else f"{v['warm_queries_to_reach']:,}"
            share = "-" if v["fraction"] is None else f"{v['fraction']:.0%}"
            lines.append(
                f"| {task} | {v['strategy']} | {v['metric']} | {v['cold_final']:.3f} | {q} | {share} | "
                f"{'yes' if v['met'] else 'no'} |"
            )
    lines += [
        "",
        "Only the budgets listed were tried: a warm start that reaches the level at the smallest budget "
        "might reach it with fewer queries still.",
        "",
        f"Machine: {payload['machine']['processor']}, {payload['machine']['torch_threads']} torch thread(s); "
        f"{payload['wall_seconds']:.0f} s in all.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_common_args(parser)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    started = time.perf_counter()
    budgets = QUICK_BUDGETS if args.quick else BUDGETS
    black_box, source = common.source_model(args.data_dir, common.TRAINED_SOURCE_CONFIG)
    surrogate, sur_info = surrogate_model(args.data_dir)
    distill_queries = DISTILL_QUERIES["quick" if args.quick else "full"]
    print("black box:", source["test_accuracy"], "surrogate:", sur_info["held_out_accuracy"], flush=True)
    payload = {
        "machine": common.machine(),
        "seeds": args.seeds,
        "budgets": budgets,
        "black_box": {**source, "description": "SmallCNN trained on the CIFAR-10 subset (benchmarks/common.py)"},
        "surrogate": sur_info,
        "pneumonia_train_images": PNEUMONIA_TRAIN,
        "distill_queries": distill_queries,
        "tasks": {},
    }
    for task, ((Xa, ya), (Xb, yb)) in tasks(args.data_dir, args.quick).items():
        t0 = time.perf_counter()
        study = warm_start_study(
            black_box,
            surrogate,
            Xa,
            ya,
            Xb,
            yb,
            budgets=budgets,
            seeds=args.seeds,
            strategies=tuple(budgets),
            surrogate_epochs=10,
            distill_queries=distill_queries,
        )
        # the control: an untrained LeNet of the same shape, distilled the same way
        control = warm_start_study(
            black_box,
            surrogate_model(args.data_dir, untrained=True)[0],
            Xa,
            ya,
            Xb,
            yb,
            budgets={"cold": [budgets["cold"][0]], "distilled": budgets["distilled"]},
            seeds=args.seeds,
            strategies=("cold", "distilled"),
            surrogate_epochs=10,
            distill_queries=distill_queries,
        )
        rename = {"distilled": CONTROL}
        study = WarmStartStudy(
            rows=study.rows + tuple(dict(r, strategy=CONTROL) for r in control.rows if r["strategy"] == "distilled"),
            surrogate_rows=study.surrogate_rows
            + tuple(dict(r, surrogate=rename[r["surrogate"]]) for r in control.surrogate_rows),
        )
        doc = study.to_dict()
        payload["tasks"][task] = {
            "n_train": int(len(ya)),
            "n_test": int(len(yb)),
            "study": doc,
            "verdict": [verdict(doc["savings"], m, s) for s in ("warm", "distilled") for m in ("accuracy", "auc")],
            "seconds": round(time.perf_counter() - t0, 1),
        }
        print(task, payload["tasks"][task]["verdict"], f"{time.perf_counter() - t0:.0f} s", flush=True)
        payload["wall_seconds"] = time.perf_counter() - started
        common.write_results("transfer_warmstart", payload, report(payload))


if __name__ == "__main__":
    main()
