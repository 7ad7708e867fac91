"""What a BARClassifier fit carries from step to step, its checkpoint format, and what it leaves.

:class:`TrainState` is everything that changes during fit. A checkpoint
(:func:`save_checkpoint`, :func:`load_checkpoint`) is one
:mod:`bar_sdk.checkpoint` state file holding that state, the optimizer's and
the estimator's state, the random generator and the ledger, plus a
fingerprint of the data and the parameters. The format is the one written
since checkpoints exist (arrays ``theta``, ``sources``, ``freq_sum``,
``order``, ``readout.*``, ``train_readout.*``, ``opt.*``, ``est.*``; the
metadata keys below): files written by earlier versions still resume, and
so do files written by this one in those versions.

:func:`in_flight` journals the images of a request before it leaves, so a
crash counts them as spent (``max_queries`` holds across crashes).
:func:`set_fitted` turns a finished state into the estimator's fitted
attributes, after fit and for a file :func:`load_fitted` read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from bar_sdk.checkpoint import read_state, write_state
from bar_sdk.errors import CheckpointError, InvalidInputError
from bar_sdk.mapping import CrossFittedReadout, LabelMapping, LogisticReadout

__all__ = [
    "TrainState",
    "CRASH_PURPOSE",
    "fingerprint",
    "data_record",
    "save_checkpoint",
    "load_checkpoint",
    "in_flight",
    "readout_arrays",
    "readout_from",
    "set_fitted",
    "save_fitted",
    "load_fitted",
]

logger = logging.getLogger(__name__)

#: the ledger's purpose for images in flight at a crash, counted as spent on resume
CRASH_PURPOSE = "in flight at a crash"


class TrainState:
    """Everything that changes during fit (and goes into the checkpoint)."""

    def __init__(self, theta, n_source: int = 0, k: int = 0):
        self.theta = np.asarray(theta, dtype=np.float64)
        self.mapping: LabelMapping | None = None
        self.readout: LogisticReadout | None = None
        self.train_readout: CrossFittedReadout | None = None  # mapping="logistic": what the loss reads
        self.train_scores = np.zeros((0, 0), np.float32)  # with it: the latest paid scores of each training row
        self.y = np.zeros(0, np.int64)  # the training labels (0 .. k-1), set by fit; not checkpointed
        self.readout_scores = np.zeros((0, n_source))  # the readout pass's scores so far
        self.order: np.ndarray | None = None
        self.freq_sum = np.zeros((n_source, k))  # the iterative mapping's counts this epoch
        self.step = self.epoch = self.pos = 0
        self.lost = 0  # images counted as spent for requests in flight at a crash (journaled, then lost)
        self.done = False
        self.history: dict[str, list] = {"step": [], "queries": [], "loss": [], "accuracy": []}


# ---------------------------------------------------------------------- what a checkpoint recognises
def fingerprint(params: dict, initial_program: Any, surrogate: Any, X, y: np.ndarray, model: Any) -> str:
    """The digest a checkpoint is written for: ``params`` (``get_params`` less model, verbose and checkpoint),
    the warm start's parameters, the surrogate's kind, the data's bytes and the model's shape."""
    params = dict(params)
    for key, before in (("readout", "mapping"), ("weight_decay", 0.0)):
        if params.get(key, before) == before:  # as before the option existed: those checkpoints still resume
            params.pop(key, None)
    params["initial_program"] = (
        None
        if initial_program is None
        else hashlib.sha256(
            np.ascontiguousarray(getattr(initial_program, "theta_", initial_program), dtype=np.float64).tobytes()
        ).hexdigest()
    )
    if surrogate is not None:  # its identity across processes: what it is, not where it lives
        params["surrogate"] = (type(surrogate).__name__, surrogate.n_classes, tuple(surrogate.input_shape))
    digest = hashlib.sha256(json.dumps({k: repr(v) for k, v in params.items()}, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(np.asarray(X)).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    digest.update(repr((model.n_classes, tuple(model.input_shape))).encode())
    return digest.hexdigest()


def data_record(X: np.ndarray, codes: np.ndarray, classes: np.ndarray) -> dict:
    """What a checkpoint keeps of the data, to name what differs: X's shape and dtype, y's length and classes."""
    return {
        "X": {"shape": list(X.shape), "dtype": X.dtype.str},
        "y": {"n": int(len(codes)), "classes": [str(v) for v in classes.tolist()], "dtype": classes.dtype.str},
    }


def _describe(part: dict | None) -> str:
    if part is None:
        return "(not recorded)"
    if "shape" in part:
        return f"of shape {tuple(part['shape'])}, dtype {np.dtype(part['dtype'])}"
    shown = part["classes"][:10] + (["..."] if len(part["classes"]) > 10 else [])
    return f"of {part['n']} labels in classes {shown}, dtype {np.dtype(part['dtype'])}"


def readout_arrays(readout: LogisticReadout | None, scores: np.ndarray | None = None, prefix="readout") -> dict:
    out = (
        {}
        if readout is None
        else {
            f"{prefix}.coef": readout.coef,
            f"{prefix}.intercept": readout.intercept,
            f"{prefix}.C": np.float64(readout.C),
        }
    )
    if scores is not None and len(scores):
        out["readout.scores"] = scores
    return out


def readout_from(arrays: dict, prefix="readout") -> LogisticReadout | None:
    if f"{prefix}.coef" not in arrays:
        return None
    C = float(arrays[f"{prefix}.C"]) if f"{prefix}.C" in arrays else 1.0
    return LogisticReadout(
        arrays[f"{prefix}.coef"].astype(np.float64), arrays[f"{prefix}.intercept"].astype(np.float64), C
    )


def cross_fitted_arrays(state: TrainState) -> dict:
    """``mapping="logistic"``: the fold readouts and the paid scores they are refitted on."""
    r = state.train_readout
    if r is None:
        return {}
    return {
        "train_readout.coefs": r.coefs,
        "train_readout.intercepts": r.intercepts,
        "train_readout.folds": r.folds,
        "train_readout.C": np.float64(r.C),
        "train_readout.scores": state.train_scores,
    }


def cross_fitted_from(arrays: dict) -> tuple[CrossFittedReadout | None, np.ndarray]:
    if "train_readout.coefs" not in arrays:
        return None, np.zeros((0, 0), np.float32)
    readout = CrossFittedReadout(
        arrays["train_readout.coefs"].astype(np.float64),
        arrays["train_readout.intercepts"].astype(np.float64),
        arrays["train_readout.folds"].astype(np.int64),
        float(arrays["train_readout.C"]),
    )
    return readout, arrays["train_readout.scores"].astype(np.float32)


def _labels(model: Any) -> tuple[str, ...] | None:
    return getattr(model, "labels", None) and tuple(str(v) for v in model.labels)


# ---------------------------------------------------------------------- checkpoints
def save_checkpoint(path, print_, metered, optimizer, estimator, rng, state: TrainState, in_flight=None):
    """Write the whole state (``in_flight``: images about to leave, journaled first); return what was written.

    ``print_``: ``{"digest": fingerprint(...), "data": data_record(...)}``.
    """
    sources = np.zeros((0, 0), np.int64) if state.mapping is None else state.mapping.sources
    arrays = {
        "theta": state.theta,
        "sources": sources,
        "freq_sum": state.freq_sum,
        "order": state.order if state.order is not None else np.zeros(0, np.int64),
        **readout_arrays(state.readout, state.readout_scores),
        **cross_fitted_arrays(state),
    }
    parts: dict[
        str, dict[str, Any]
    ] = {}  # the optimizer's and the estimator's state: arrays apart, the rest in the metadata
    for part, obj in (("opt", optimizer), ("est", estimator)):
        parts[part] = {}
        for key, value in ({} if obj is None else obj.state_dict()).items():
            if isinstance(value, np.ndarray):
                arrays[f"{part}.{key}"] = value
            else:
                parts[part][key] = value
    meta = {
        "fingerprint": print_["digest"],
        "data": print_["data"],
        "rng": rng.bit_generator.state,
        "step": state.step,
        "epoch": state.epoch,
        "pos": state.pos,
        "done": state.done,
        "has_order": state.order is not None,
        "ledger": metered.ledger.state_dict(),
        "history": state.history,
        "optimizer": parts["opt"],
        "estimator": parts["est"],
        "has_mapping": state.mapping is not None,
        "lost": state.lost,
        "in_flight": in_flight,
    }
    write_state(path, arrays, meta)
    return arrays, meta


def load_checkpoint(path, print_, metered, optimizer, estimator, rng, n_params, n_source) -> TrainState:
    """The state :func:`save_checkpoint` wrote to ``path``, loaded into these objects; images that were in
    flight at a crash are counted as spent (under :data:`CRASH_PURPOSE`)."""
    arrays, meta = read_state(path)
    where = f"checkpoint={str(path)!r}"
    written = meta.get("data")  # None in files written before the data's shape and classes were kept
    if written is not None and written != print_["data"]:
        differ = "; ".join(
            f"{part} {_describe(written.get(part))} there, {_describe(print_['data'][part])} here"
            for part in print_["data"]
            if written.get(part) != print_["data"][part]
        )
        raise CheckpointError(
            f"{where} was written for other data ({differ}); expected the same X, y and "
            "parameters to resume (delete the file to start over)"
        )
    if meta.get("fingerprint") != print_["digest"]:
        raise CheckpointError(
            f"{where} was written for other data or parameters; "
            "expected the same X, y and parameters to resume (delete the file to start over)"
        )
    if arrays["theta"].shape != (n_params,):
        raise CheckpointError(
            f"{where} holds {arrays['theta'].shape} program parameters; this fit's program has "
            f"({n_params},): expected the same X, y and parameters to resume"
        )
    for part, obj, name in (("opt", optimizer, "optimizer"), ("est", estimator, "estimator")):
        if obj is not None:
            part_state = dict(meta.get(name, {}))
            prefix = part + "."
            part_state.update({key[len(prefix) :]: v for key, v in arrays.items() if key.startswith(prefix)})
            obj.load_state_dict(part_state)
    rng.bit_generator.state = meta["rng"]
    metered.ledger.load_state_dict(meta["ledger"])
    state = TrainState(theta=arrays["theta"].astype(np.float64))
    if meta.get("has_mapping", True):
        state.mapping = LabelMapping(arrays["sources"], n_source, _labels(metered))
    state.lost = int(meta.get("lost", 0))
    flight = meta.get("in_flight")
    if flight and flight["images"]:  # sent (or about to be) when the run died: spent, whatever came back
        lost = int(flight["images"])
        metered.ledger.queries += lost
        metered.ledger.by_purpose[CRASH_PURPOSE] = metered.ledger.by_purpose.get(CRASH_PURPOSE, 0) + lost
        state.lost += lost
    state.freq_sum = arrays["freq_sum"]
    state.order = arrays["order"] if meta["has_order"] else None
    state.readout = readout_from(arrays)
    state.train_readout, state.train_scores = cross_fitted_from(arrays)
    state.readout_scores = arrays.get("readout.scores", np.zeros((0, n_source)))
    state.step, state.epoch, state.pos, state.done = meta["step"], meta["epoch"], meta["pos"], meta["done"]
    state.history = {key: list(v) for key, v in meta["history"].items()}
    logger.info("resumed from %s at step %d (%d queries)", path, state.step, metered.ledger.queries)
    return state


@contextlib.contextmanager
def in_flight(path, save, metered, n: int, purpose: str) -> Iterator[None]:
    """Journal ``n`` images in the checkpoint at ``path`` before the requests inside the block leave.

    Killed inside the block, the file holds the state before the block with the images
    marked in flight, and a resumed fit counts them as spent (``max_queries`` holds across
    crashes) before doing the block again. An exception inside the block writes the same
    state with what this process knows left instead of what was planned. ``save(in_flight)``
    is :func:`save_checkpoint` bound to this fit.
    """
    if path is None or n == 0:
        yield
        return
    arrays, meta = save({"images": int(n), "purpose": purpose})
    before = metered.ledger.queries
    try:
        yield
    except BaseException:
        sent = metered.ledger.queries - before
        write_state(path, arrays, dict(meta, in_flight={"images": sent, "purpose": purpose}))
        raise


# ---------------------------------------------------------------------- the fitted attributes
def set_fitted(clf, program, state: TrainState, metered, layout, classes, started: float, plan=None) -> None:
    """Set ``clf``'s fitted attributes (``theta_``, ``mapping_``, ``readout_``, ``ledger_``, ...) from ``state``.

    After a fit (``plan``: its :class:`~bar_sdk.reprogram_setup.FitPlan`, for the
    optimizer, the estimator and the surrogate) or a :func:`load_fitted` file (no plan).
    """
    surrogate = None if plan is None else plan.surrogate
    clf.theta_ = state.theta.copy()
    clf.optimizer_, clf.estimator_ = (None, None) if plan is None else (plan.optimizer, plan.estimator)
    clf.program_ = program.frame(state.theta[None])[0]
    assert state.mapping is not None  # the mapping pass (or the saved file) set it before training
    clf.mapping_ = state.mapping
    clf.readout_ = state.readout
    if state.readout is None and state.train_readout is not None:  # one readout on what training paid for
        clf.readout_ = LogisticReadout.fit(
            state.train_scores, state.y, state.train_readout.coefs.shape[2], C=state.train_readout.C
        )
    clf.queries_ = int(metered.ledger.queries)
    clf.history_ = {key: list(v) for key, v in state.history.items()}
    clf.n_steps_ = state.step
    clf.classes_ = classes
    clf.layout_ = layout
    clf.program_obj_ = program
    clf.fit_time_ = time.perf_counter() - started
    metered.ledger.max_queries = None  # max_queries bounds fit only; predictions are still counted
    clf.ledger_ = metered.ledger
    clf.surrogate_queries_ = 0 if surrogate is None else surrogate.ledger.queries
    clf._metered = metered
    if layout.kind == "tabular":
        clf.n_features_in_ = layout.n_features
    else:  # not left over from an earlier tabular fit of this instance
        clf.__dict__.pop("n_features_in_", None)
    logger.info("BAR fit: %d steps, %d queries, stop: %s", state.step, clf.queries_, clf.stop_reason_)


# ---------------------------------------------------------------------- saved fitted estimators
def save_fitted(path, clf) -> None:
    """Write a fitted BARClassifier's program, mapping, readout and layout to ``path`` (no model, no secrets)."""
    layout_meta, layout_arrays = clf.layout_.state()
    params = {
        k: v
        for k, v in clf.get_params(deep=False).items()
        if k not in ("model", "checkpoint", "verbose", "surrogate", "initial_program")
        and isinstance(v, (int, float, str, bool, type(None), tuple, list))
    }
    meta = {
        "params": params,
        "layout": layout_meta,
        "classes": int(len(clf.classes_)),
        "queries": clf.queries_,
        "history": clf.history_,
        "stop_reason": clf.stop_reason_,
        "n_source": clf.mapping_.n_source,
    }
    classes = np.asarray(clf.classes_)
    if classes.dtype == object:  # labels given as Python strings: kept as text, restored as objects
        meta["classes_object"] = True
        classes = classes.astype(str)
    write_state(
        path,
        {
            "theta": clf.theta_,
            "sources": clf.mapping_.sources,
            "classes": classes,
            **layout_arrays,
            **readout_arrays(clf.readout_),
        },
        meta,
    )


def load_fitted(path, model, n_source) -> tuple[dict, dict, TrainState, np.ndarray]:
    """``(params, meta, state, classes)`` from :func:`save_fitted`'s file for ``model`` with ``n_source``
    classes (the caller builds the estimator; ``meta["arrays"]``: the file's arrays)."""
    arrays, meta = read_state(path)
    if n_source != meta["n_source"]:
        raise InvalidInputError(
            f"model.n_classes={n_source} but the saved program was trained for {meta['n_source']} source classes"
        )
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["params"].items()}
    params.setdefault("readout", "mapping")  # files written before the readout existed
    state = TrainState(theta=arrays["theta"])
    state.mapping = LabelMapping(arrays["sources"], n_source, _labels(model))
    state.readout = readout_from(arrays)
    state.history = meta["history"]
    state.step = len(meta["history"].get("step", []))
    if "classes" in arrays:
        classes = arrays["classes"].astype(object) if meta.get("classes_object") else arrays["classes"]
    else:  # files written before any labels were accepted: 0 .. k-1
        classes = np.arange(meta["classes"])
    return params, dict(meta, arrays=arrays), state, classes
