"""Transfer matrix on the CIFAR-10 subset: three local architectures, an ensemble, and a cloud-like API.

Sources (white-box, the attacker's own): the benchmarks' SmallCNN (common.py),
a one-hidden-layer MLP, a LeNet-5 style CNN, and the MLP + LeNet ensemble
(mean log-probabilities). Targets: the three local models (the diagonal is
each one's white-box rate) and a "vendor" model the attacker never sees (a
wider SmallCNN, another seed) served by the local cloud-like API
(bar_sdk.adapters.server, Clarifai format, real HTTP, PNG-encoded 8-bit images)
and queried through bar_sdk.adapters.remote.RemoteModel.

Attacks, all Linf with eps = 8/255: FGSM; PGD (10 steps, random start, as
implemented it stops at the first success on the source); iterative FGSM run
to the end of its schedule (MIFGSM with momentum 0: a control that separates
"full schedule" from "momentum"); MI-FGSM (momentum 1); MI-DI-FGSM (momentum
1, input diversity with probability 0.5).

Success is counted over the test images each target classifies correctly;
the adversarial images are rounded to 8 bits before any target sees them.

    python benchmarks/transfer_matrix.py            # about 4 minutes at one thread (models cached after)
    python benchmarks/transfer_matrix.py --quick    # smoke test (do not commit its results)

Writes benchmarks/results/transfer_matrix.{json,md,csv,png}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time

import common  # first: pins torch to one thread
import numpy as np
import torch
from torch import nn

from bar_sdk.adapters import TorchModel
from bar_sdk.adapters.nets import MLPNet, train_classifier
from bar_sdk.adapters.remote import RemoteModel
from bar_sdk.adapters.server import serve
from bar_sdk.attacks import FGSM, PGD
from bar_sdk.attacks.mifgsm import MIFGSM
from bar_sdk.transfer import transfer_matrix

EPS = 8 / 255
N_IMAGES = 300
ATTACKS = {
    "FGSM": FGSM(None, eps=EPS),
    "PGD": PGD(None, eps=EPS, steps=10, random_state=0),
    "I-FGSM (full schedule)": MIFGSM(None, eps=EPS, steps=10, momentum=0.0),
    "MI-FGSM": MIFGSM(None, eps=EPS, steps=10, momentum=1.0),
    "MI-DI-FGSM": MIFGSM(None, eps=EPS, steps=10, momentum=1.0, diversity_prob=0.5, random_state=0),
}
LOCAL = {"mlp": {"epochs": 20, "hidden": 256, "lr": 1e-3, "seed": 0}, "lenet": {"epochs": 20, "lr": 1e-3, "seed": 0}}
VENDOR = {"width": 32, "seed": 1}


class LeNetRGB(nn.Module):
    """LeNet-5 style for 3x32x32: conv5-6, pool, conv5-16, pool, fc 120-84-10."""

    def __init__(self, seed: int):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.features = nn.Sequential(
                nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2)
            )
            self.head = nn.Sequential(
                nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10)
            )

    def forward(self, x):
        return self.head(self.features(x))


def local_model(name: str, data_dir, names) -> tuple[TorchModel, dict]:
    """The MLP or the LeNet on the CIFAR subset (horizontal flips), cached under benchmarks/cache/."""
    cfg = LOCAL[name]
    Xtr, ytr, Xte, yte, _ = common.load_cifar(data_dir)
    digest = hashlib.sha256(Xtr.tobytes() + ytr.tobytes()).hexdigest()[:12]
    path = common.CACHE_DIR / f"cifar_{name}_{'_'.join(f'{k}{v}' for k, v in sorted(cfg.items()))}_{digest}.pt"
    net = (
        MLPNet((3, 32, 32), 10, hidden=cfg["hidden"], random_state=cfg["seed"])
        if name == "mlp"
        else LeNetRGB(cfg["seed"])
    )
    started = time.perf_counter()
    if path.exists():
        net.load_state_dict(torch.load(path, weights_only=True))
    else:
        X = common.as_float(Xtr)
        X, y = np.concatenate([X, X[..., ::-1]]), np.concatenate([ytr, ytr])
        train_classifier(net, np.ascontiguousarray(X), y, epochs=cfg["epochs"], lr=cfg["lr"], random_state=cfg["seed"])
        common.CACHE_DIR.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), path)
    model = TorchModel(net, (3, 32, 32), labels=names, batch_size=512)
    acc = float((model.predict_proba(common.as_float(Xte)).argmax(1) == yte).mean())
    return model, {"config": cfg, "test_accuracy": acc, "seconds": round(time.perf_counter() - started, 1)}


def report(payload) -> str:
    m = payload["matrix"]
    targets, sources = m["targets"], m["sources"]
    lines = [
        "# Transfer matrix: CIFAR-10 subset, Linf eps = 8/255",
        "",
        f"{m['n_samples']} CIFAR-10 test images (8-bit). Rates: share of the images a target classified "
        "correctly that it misclassifies once attacked; * marks white-box cells (the target is the source). "
        "Sources are attacked locally; every image sent to a target is counted.",
        "",
        "| model | role | architecture | clean test accuracy (846 images) |",
        "|---|---|---|---|",
    ]
    for name, info in payload["models"].items():
        lines.append(f"| {name} | {info['role']} | {info['architecture']} | {info['test_accuracy']:.3f} |")
    for a, attack in enumerate(m["attacks"]):
        lines += [
            "",
            f"## {attack}",
            "",
            "| source \\ target | " + " | ".join(targets) + " | white-box rate |",
            "|---" * (len(targets) + 2) + "|",
        ]
        for s, source in enumerate(sources):
            cells = []
            for t in range(len(targets)):
                v = m["rates"][a][s][t]
                cells.append(("n/a" if v is None else f"{v:.3f}") + ("*" if m["white_box"][s][t] else ""))
            wb = m["source_rates"][a][s]
            lines.append(f"| {source} | " + " | ".join(cells) + f" | {'n/a' if wb is None else f'{wb:.3f}'} |")
    api_t = targets.index("api (vendor)")
    lines += [
        "",
        "## Transfer to the API, both ways of counting",
        "",
        "Left: over the images the API classified correctly (the matrix above). Right: over the images both the "
        "source and the API classified correctly (an attack leaves an image its source already gets wrong "
        "unchanged, which caps the left number).",
        "",
        "| attack | " + " | ".join(sources) + " | " + " | ".join(f"{s} (source-correct)" for s in sources) + " |",
        "|---" * (1 + 2 * len(sources)) + "|",
    ]
    for a, attack in enumerate(m["attacks"]):
        left = [f"{m['rates'][a][s][api_t]:.3f}" for s in range(len(sources))]
        right = [f"{m['rates_source_correct'][a][s][api_t]:.3f}" for s in range(len(sources))]
        lines.append(f"| {attack} | " + " | ".join(left + right) + " |")
    lines += [
        "",
        "## Targets",
        "",
        "| target | clean accuracy on these images | correct (denominator) | images sent |",
        "|---|---|---|---|",
    ]
    for t, target in enumerate(targets):
        lines.append(
            f"| {target} | {m['clean_accuracy'][t]:.3f} | {m['n_correct'][t]} | {m['target_queries'][target]:,} |"
        )
    api = payload["api"]
    lines += [
        "",
        f"API ledger: {api['sent']:,} images handed to the RemoteModel, {api['billed']:,} billed, "
        f"{api['cache_hits']:,} answered from its cache (repeated 8-bit images: an attack leaves an image "
        f"the source already gets wrong unchanged); the server counted {api['server_billed']:,} billed "
        f"({'matches' if api['server_billed'] == api['billed'] else 'DIFFERS'}).",
        "",
        f"Largest Linf change of any 8-bit adversarial image: {max(max(r) for r in m['max_linf']) * 255:.2f}/255.",
        "",
        f"Machine: {payload['machine']['processor']}, {payload['machine']['torch_threads']} torch thread(s); "
        f"{payload['wall_seconds']:.0f} s in all ({m['wall_time']:.0f} s in transfer_matrix).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_common_args(parser)
    parser.add_argument("--n", type=int, default=N_IMAGES, help="test images attacked")
    parser.add_argument("--report-only", action="store_true", help="rewrite the markdown from the saved JSON")
    args = parser.parse_args()
    if args.report_only:
        path = common.RESULTS_DIR / "transfer_matrix.json"
        (common.RESULTS_DIR / "transfer_matrix.md").write_text(report(json.loads(path.read_text())))
        return
    started = time.perf_counter()
    n = 40 if args.quick else args.n
    Xtr, ytr, Xte, yte, names = common.load_cifar(args.data_dir)
    cnn, cnn_info = common.source_model(args.data_dir)
    mlp, mlp_info = local_model("mlp", args.data_dir, names)
    lenet, lenet_info = local_model("lenet", args.data_dir, names)
    vendor, vendor_info = common.source_model(args.data_dir, VENDOR)
    models = {
        "smallcnn": {
            "role": "source and target",
            "architecture": f"SmallCNN width {cnn_info['config']['width']}",
            **cnn_info,
        },
        "mlp": {"role": "source and target", "architecture": f"MLP, {LOCAL['mlp']['hidden']} hidden units", **mlp_info},
        "lenet": {"role": "source and target", "architecture": "LeNet-5 style CNN", **lenet_info},
        "api (vendor)": {
            "role": "target only, over HTTP",
            "architecture": f"SmallCNN width {VENDOR['width']}, seed {VENDOR['seed']} (never seen by the attacker)",
            **vendor_info,
        },
    }
    for name, info in models.items():
        print(f"{name}: test accuracy {info['test_accuracy']:.3f}", flush=True)
    x, y = Xte[:n], yte[:n]
    attacks = {k: v for k, v in ATTACKS.items() if not args.quick or k in ("FGSM", "MI-DI-FGSM")}
    with serve(vendor, preset="clarifai", api_keys=["bench-key"]) as server:
        with RemoteModel.from_preset(
            "clarifai",
            base_url=server.base_url,
            api_key=server.api_key,
            model_id="vendor-cnn",
            labels=names,
            input_shape=(3, 32, 32),
        ) as api:
            result = transfer_matrix(
                sources={"smallcnn": cnn, "mlp": mlp, "lenet": lenet, "mlp+lenet": [mlp, lenet]},
                targets={"smallcnn": cnn, "mlp": mlp, "lenet": lenet, "api (vendor)": api},
                attacks=attacks,
                x=x,
                y=y,
                out_dir=common.CACHE_DIR / "transfer_matrix_run",
            )
            ledger = api.ledger
            api_info = {
                "sent": int(result.target_queries[-1]),
                "billed": ledger.billed,
                "cache_hits": ledger.cache_hits,
                "attempts": ledger.attempts,
                "server_billed": server.billed,
            }
    payload = {
        "machine": common.machine(),
        "eps": EPS,
        "n_images": n,
        "attacks": {k: repr(v) for k, v in attacks.items()},
        "models": models,
        "api": api_info,
        "matrix": result.to_dict(),
        "wall_seconds": time.perf_counter() - started,
    }
    common.write_results("transfer_matrix", payload, report(payload))
    result.to_csv(common.RESULTS_DIR / "transfer_matrix.csv")
    result.plot(
        common.RESULTS_DIR / "transfer_matrix.png",
        title=f"Transfer matrix, CIFAR-10 subset, Linf eps=8/255 ({n} images; red: white-box)",
    )
    print(report(payload))


if __name__ == "__main__":
    main()
