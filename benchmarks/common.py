"""Shared pieces of the benchmark scripts: data, the cached source model, metrics, reports.

Every script imports this module first; it pins torch (and BLAS) to one
thread, because the machine the numbers come from is shared.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import hashlib
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # scripts run as `python benchmarks/x.py` from a source checkout
    sys.path.insert(0, str(ROOT))

import numpy as np
import torch

from bar_sdk.adapters import TorchModel
from bar_sdk.adapters.nets import SmallCNN, train_classifier
from bar_sdk.adapters.train import train_module
from bar_sdk.transfer.metrics import classification_metrics as binary_metrics  # noqa: F401  (the scripts' name)

torch.set_num_threads(1)

DEFAULT_DATA_DIR = ROOT.parent / "shared" / "data"
CACHE_DIR = Path(__file__).resolve().parent / "cache"
RESULTS_DIR = Path(__file__).resolve().parent / "results"

MEDMNIST_FILES = {"breastmnist": "breastmnist.npz", "pneumoniamnist": "pneumoniamnist_reconstructed.npz"}

#: the first source black box: SmallCNN on the CIFAR-10 subset, 10 epochs of Adam on the images and
#: their mirror images (test accuracy 0.569); the transfer matrix, compare and sweep results use it
SOURCE_CONFIG = {"width": 16, "epochs": 10, "batch_size": 64, "lr": 1e-3, "hflip": True, "normalize": True, "seed": 0}

#: the same network trained properly (test accuracy 0.654): 40 epochs, random 4-pixel crops and
#: mirroring drawn per batch, Adam with weight decay under a one-cycle learning rate. The calibration
#: run's source model was this strong (~0.70), and an undertrained source made white-box
#: reprogramming of BreastMNIST look worse than it is; the reprogramming and warm-start benchmarks use it
TRAINED_SOURCE_CONFIG = {
    **SOURCE_CONFIG,
    "epochs": 40,
    "lr": 2e-3,
    "crop": 4,
    "weight_decay": 5e-4,
    "schedule": "onecycle",
}


def add_common_args(parser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="folder with the .npz files (default: ../shared/data from the repo root)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny budgets, to smoke-test the script")


# ---------------------------------------------------------------------- data
def load_medmnist(name: str, data_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (images uint8 (n, 28, 28), labels int64 (n,))}`` for train, val and test."""
    with np.load(Path(data_dir) / MEDMNIST_FILES[name]) as f:
        return {
            split: (f[f"{split}_images"], f[f"{split}_labels"].reshape(-1).astype(np.int64))
            for split in ("train", "val", "test")
        }


def load_cifar(data_dir: Path):
    """CIFAR-10 subset as NCHW uint8: ``(Xtr, ytr, Xte, yte, label_names)``."""
    with np.load(Path(data_dir) / "cifar10_partial.npz") as f:

        def nchw(a):
            return np.ascontiguousarray(a.transpose(0, 3, 1, 2) if a.shape[-1] == 3 else a)

        return (
            nchw(f["train_images"]),
            f["train_labels"].reshape(-1).astype(np.int64),
            nchw(f["test_images"]),
            f["test_labels"].reshape(-1).astype(np.int64),
            [str(n) for n in f["label_names"]],
        )


def stratified_subset(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a class-stratified random subset of ``y``."""
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        keep.append(rng.choice(idx, size=max(1, round(fraction * len(idx))), replace=False))
    return np.sort(np.concatenate(keep))


def medmnist_tasks(data_dir: Path, eval_split: str) -> dict[str, tuple[tuple, tuple]]:
    """``{task: (train, evaluation)}`` for BreastMNIST, PneumoniaMNIST and its 10% subset.

    ``eval_split`` is ``"val"`` (choosing settings) or ``"test"`` (reporting). The 10% subset is one
    fixed stratified draw of PneumoniaMNIST's train split, so every benchmark trains on the same images.
    """
    breast = load_medmnist("breastmnist", data_dir)
    pneu = load_medmnist("pneumoniamnist", data_dir)
    keep = stratified_subset(pneu["train"][1], 0.1, seed=0)
    return {
        "breastmnist": (breast["train"], breast[eval_split]),
        "pneumoniamnist": (pneu["train"], pneu[eval_split]),
        "pneumoniamnist_10pct": ((pneu["train"][0][keep], pneu["train"][1][keep]), pneu[eval_split]),
    }


def as_float(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 255.0


# ---------------------------------------------------------------------- source model
def source_model(data_dir: Path, config: dict | None = None) -> tuple[TorchModel, dict]:
    """The CIFAR-subset SmallCNN as a black box, trained once and cached under benchmarks/cache/."""
    cfg = dict(SOURCE_CONFIG, **(config or {}))
    Xtr, ytr, Xte, yte, names = load_cifar(data_dir)
    digest = hashlib.sha256(Xtr.tobytes() + ytr.tobytes()).hexdigest()[:12]
    key = "_".join(f"{k}{v}" for k, v in sorted(cfg.items()))
    path = CACHE_DIR / f"cifar_smallcnn_{key}_{digest}.pt"
    cnn = SmallCNN(3, 10, 32, width=cfg["width"], random_state=cfg["seed"])
    X = as_float(Xtr)
    # per-channel standardisation inside the network, so inputs stay in [0, 1] for the trainer
    mean, std = (X.mean((0, 2, 3)), X.std((0, 2, 3))) if cfg["normalize"] else (np.zeros(3), np.ones(3))
    net = torch.nn.Sequential(_Standardize(mean, std), cnn)
    started = time.perf_counter()
    if path.exists():
        net.load_state_dict(torch.load(path, weights_only=True))
        trained_now = False
    else:
        if cfg.get("crop"):
            _train_augmented(net, X, ytr, cfg)
        else:
            y = ytr
            if cfg["hflip"]:
                X, y = np.concatenate([X, X[..., ::-1]]), np.concatenate([y, y])
            train_classifier(
                net,
                np.ascontiguousarray(X),
                y,
                epochs=cfg["epochs"],
                batch_size=cfg["batch_size"],
                lr=cfg["lr"],
                random_state=cfg["seed"],
            )
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), path)
        trained_now = True
    model = TorchModel(net, (3, 32, 32), labels=names, batch_size=512)
    acc = float((model.predict_proba(as_float(Xte)).argmax(1) == yte).mean())
    info = {
        "config": cfg,
        "test_accuracy": acc,
        "n_train": int(len(ytr)),
        "n_test": int(len(yte)),
        "cache": str(path.relative_to(ROOT)),
        "trained_now": trained_now,
        "seconds": time.perf_counter() - started,
    }
    return model, info


def _train_augmented(net: torch.nn.Module, X: np.ndarray, y: np.ndarray, cfg: dict) -> None:
    """Adam + weight decay, one-cycle learning rate; each batch randomly shifted (reflect-padded crop) and mirrored."""
    import torch.nn.functional as F

    rng = np.random.default_rng(cfg["seed"])
    pad = cfg["crop"]
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    h, w = X.shape[2:]

    def loss(idx):
        xb = F.pad(Xt[idx], (pad,) * 4, mode="reflect")
        dx, dy = rng.integers(0, 2 * pad + 1, 2)
        xb = xb[:, :, dy : dy + h, dx : dx + w]
        if rng.random() < 0.5:
            xb = xb.flip(3)
        return F.cross_entropy(net(xb), yt[idx])

    net.train()
    train_module(
        net.parameters(),
        loss,
        len(X),
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        lr=cfg["lr"],
        rng=rng,
        seed=cfg["seed"],
        weight_decay=cfg["weight_decay"],
        one_cycle=True,
    )
    net.eval()


# ---------------------------------------------------------------------- metrics and reports
class _Standardize(torch.nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(np.asarray(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(np.asarray(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def machine() -> dict:
    return {
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_name(),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write_results(name: str, payload: dict, markdown: str) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")
    (RESULTS_DIR / f"{name}.md").write_text(markdown)


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def md_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A markdown table; ``columns`` are ``(key, header)``; floats get 3 decimals."""

    def cell(v):
        if isinstance(v, float):
            return f"{v:.3f}"
        return "" if v is None else str(v)

    head = "| " + " | ".join(h for _, h in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(cell(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body]) + "\n"
