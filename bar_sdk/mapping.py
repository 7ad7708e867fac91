"""Many-to-one label mappings from source labels to target classes.

A mapping assigns ``m`` distinct source labels to each of the ``k`` target
classes; a target class's score is the mean of its source labels' scores,
which works unchanged when a model returns only its top-k scores (the rest
are zeros).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bar_sdk.errors import InvalidInputError
from bar_sdk.logistic import fit_logistic

__all__ = [
    "LabelMapping",
    "LogisticReadout",
    "CrossFittedReadout",
    "choose_readout_C",
    "readout_folds",
    "check_readout_folds",
    "random_mapping",
    "frequency_mapping",
    "check_mapping_size",
    "source_frequencies",
]


@dataclass(frozen=True)
class LabelMapping:
    """Which source labels stand for which target class.

    Attributes
    ----------
    sources : ndarray (k, m)
        ``sources[t]`` are the source label indices mapped to target ``t``.
    n_source : int
        Number of source classes.
    source_names : tuple or None
        The model's label names, when it has them (for reports).
    """

    sources: np.ndarray
    n_source: int
    source_names: tuple | None = field(default=None, compare=False)

    @property
    def n_target(self) -> int:
        return int(self.sources.shape[0])

    @property
    def matrix(self) -> np.ndarray:
        """``(n_source, n_target)`` averaging matrix: target scores = scores @ matrix."""
        mat = np.zeros((self.n_source, self.n_target))
        for t, src in enumerate(self.sources):
            mat[src, t] = 1.0 / len(src)
        return mat

    def target_scores(self, scores: np.ndarray) -> np.ndarray:
        """Mean source score per target class: ``(n, n_source) -> (n, n_target)``."""
        return scores[:, self.sources].mean(axis=2)

    def describe(self) -> dict:
        names = self.source_names
        return {str(t): [names[s] if names is not None else int(s) for s in src] for t, src in enumerate(self.sources)}


#: the regularisation strengths (scikit-learn's C, an inverse L2 weight) a readout chooses from with ``C="auto"``
READOUT_C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)

#: folds of the cross-fitted readout and of the choice of C
READOUT_FOLDS = 5


def readout_folds(n: int, n_folds: int = READOUT_FOLDS) -> np.ndarray:
    """The fold of each of ``n`` training rows: ``i % n_folds`` (no randomness, so nothing to checkpoint)."""
    return np.arange(n) % n_folds


def log_features(scores: np.ndarray) -> np.ndarray:
    """Log-scores; a score a top-k answer left out (an exact zero) is read as half the smallest score the row gave.

    The scores left out are below the row's k-th, not near zero: read as the floor, they would turn the
    features into a flag of which labels were returned (on Lite0's grey frame with top-10 answers, val splits,
    this reading scored 4-5 balanced-accuracy points higher on three tasks). Rows with every score given are
    read unchanged, as ``log(max(score, FLOOR))``.
    """
    s = np.asarray(scores, np.float64)
    if s.size and (s <= 0).any():
        given = np.where(s > 0, s, np.inf).min(axis=1, keepdims=True)
        s = np.where(s > 0, s, np.where(np.isfinite(given), given / 2, 0.0))
    return np.log(np.maximum(s, LogisticReadout.FLOOR))


def _check_scores(scores, y, n_target):
    scores, y = np.asarray(scores, np.float64), np.asarray(y)
    if scores.ndim != 2 or not np.all(np.isfinite(scores)):
        raise InvalidInputError(f"scores has shape {scores.shape}; expected finite (n, n_source) scores")
    if y.shape != (len(scores),):
        raise InvalidInputError(f"y has shape {y.shape}; expected ({len(scores)},), one label per row of scores")
    if not np.array_equal(np.unique(y), np.arange(n_target)):
        raise InvalidInputError(
            f"y has labels {np.unique(y).tolist()}; expected every label 0..{n_target - 1} (n_target={n_target})"
        )
    return scores, y


def _fit_linear(features, y, n_target, C, tol=1e-4):
    """Class-weighted L2 logistic regression: ``(coef (n_source, k), intercept (k,))``."""
    return fit_logistic(features, y, n_target, [C], np.ones((1, len(y)), bool), tol)[0][0]


def _softmax(logits):
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def _weighted_nll(proba, y, n_target):
    # a class absent from these rows gets no weight to use; max(count, 1) keeps its entry finite
    w = len(y) / (n_target * np.maximum(np.bincount(y, minlength=n_target), 1))
    return float(np.sum(-w[y] * np.log(np.maximum(proba[np.arange(len(y)), y], 1e-12))))


def check_readout_folds(y: np.ndarray, n_target: int, folds: np.ndarray | None = None) -> None:
    """Raise unless the rows outside every fold hold every class (what a cross-fitted readout needs)."""
    y = np.asarray(y)
    folds = readout_folds(len(y)) if folds is None else np.asarray(folds)
    for j in range(int(folds.max()) + 1):
        missing = np.setdiff1d(np.arange(n_target), y[folds != j])
        if len(missing):
            raise InvalidInputError(
                f"y has {np.sum(y == missing[0])} sample(s) of class {missing[0]}, all in fold {j} of the "
                f"{folds.max() + 1} folds (row i is in fold i % {folds.max() + 1}); expected every class outside "
                "every fold: give more samples of it, or use a mapping other than 'logistic'"
            )


#: lbfgs's tolerance in the fold fits (choosing C, training through them) where scikit-learn solves them (1,000
#: scores): ten times its default, which halves their time while moving the chosen C and the loss far less than
#: the folds do; small problems are solved by Newton's method to the optimum (:mod:`bar_sdk.logistic`)
FOLD_TOL = 1e-3


def _fold_masks(folds):
    return np.stack([folds != j for j in range(int(folds.max()) + 1)])


def _fold_fits(features, y, n_target, folds, C):
    """One linear fit per fold, each on the rows outside it."""
    check_readout_folds(y, n_target, folds)
    return fit_logistic(features, y, n_target, [C], _fold_masks(folds), FOLD_TOL)[0]


def choose_readout_C(
    scores: np.ndarray, y: np.ndarray, n_target: int, folds: np.ndarray | None = None, grid=READOUT_C_GRID
) -> float:
    """The C of ``grid`` whose out-of-fold readouts give the lowest class-weighted log-loss (no queries)."""
    scores, y = _check_scores(scores, y, n_target)
    folds = readout_folds(len(y)) if folds is None else np.asarray(folds)
    return _search_C(log_features(scores), y, n_target, folds, grid)[0]


def _search_C(features, y, n_target, folds, grid=READOUT_C_GRID):
    """``(C, its fold fits)``: the C of ``grid`` with the lowest out-of-fold class-weighted log-loss."""
    check_readout_folds(y, n_target, folds)
    best = None
    for C, fits in zip(grid, fit_logistic(features, y, n_target, grid, _fold_masks(folds), FOLD_TOL), strict=True):
        nll = 0.0
        for j, (coef, intercept) in enumerate(fits):
            rows = folds == j
            nll += _weighted_nll(_softmax(features[rows] @ coef + intercept), y[rows], n_target)
        if best is None or nll < best[0]:
            best = (nll, float(C), fits)
    assert best is not None  # the grid is not empty
    return best[1], best[2]


@dataclass(frozen=True)
class LogisticReadout:
    """A learned readout: target probabilities from a linear model on the source log-scores.

    Where a :class:`LabelMapping` averages fixed groups of source scores, this
    weighs every source label (``softmax(log(scores) @ coef + intercept)``), so
    labels that say little about the target count little. Fitted by
    class-weighted, L2-regularised logistic regression (scikit-learn's objective,
    :func:`bar_sdk.logistic.fit_logistic`) on the
    scores of the training data under the trained program.

    Attributes
    ----------
    coef : ndarray (n_source, k)
    intercept : ndarray (k,)
    C : float
        The regularisation it was fitted with (scikit-learn's C).
    """

    coef: np.ndarray
    intercept: np.ndarray
    C: float = 1.0

    #: scores below this floor are read as it (top-k answers carry exact zeros)
    FLOOR = 1e-6

    @classmethod
    def fit(cls, scores: np.ndarray, y: np.ndarray, n_target: int, C: float | str = 1.0) -> "LogisticReadout":
        """Fit on ``(n, n_source)`` scores and labels ``0 .. n_target-1`` (every class present).

        ``C="auto"`` chooses C from :data:`READOUT_C_GRID` by cross-validation
        (:func:`choose_readout_C`; CPU only, no queries).
        """
        scores, y = _check_scores(scores, y, n_target)
        if C == "auto":
            C = choose_readout_C(scores, y, n_target)
        coef, intercept = _fit_linear(log_features(scores), y, n_target, C)
        return cls(coef, intercept, float(C))

    @classmethod
    def _features(cls, scores: np.ndarray) -> np.ndarray:
        return log_features(scores)

    def logits(self, scores: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """``(n, k)`` target logits; ``rows`` (ignored here) as in :class:`CrossFittedReadout`."""
        return log_features(scores) @ self.coef + self.intercept

    def backward(self, dlogits: np.ndarray, scores: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The gradient on the log-scores ``(n, n_source)`` from one on the logits ``(n, k)``."""
        return (dlogits @ self.coef.T) * (np.asarray(scores) > self.FLOOR)

    def proba(self, scores: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Target probabilities ``(n, k)`` from source scores ``(n, n_source)``."""
        return _softmax(self.logits(scores, rows))


@dataclass(frozen=True)
class CrossFittedReadout:
    """Out-of-fold logistic readouts that a program is trained through (``mapping="logistic"``).

    Training row ``i`` is read by the readout fitted on the rows outside its
    fold, so the loss measures how well a readout fitted on *other* images
    classifies it: a program is rewarded for making the classes separable, not
    for letting one readout memorise 1,000 scores of a few hundred images (a
    readout's own training loss is near zero there and carries no signal). C
    is chosen once by cross-validation; the fold readouts are refitted from the
    scores already paid for while training. Rows that are not training rows
    (``rows=None``) are read by the mean of the fold readouts.

    Attributes
    ----------
    coefs : ndarray (n_folds, n_source, k)
    intercepts : ndarray (n_folds, k)
    folds : ndarray (n,)
        The fold of each training row.
    C : float
    """

    coefs: np.ndarray
    intercepts: np.ndarray
    folds: np.ndarray
    C: float

    FLOOR = LogisticReadout.FLOOR

    @classmethod
    def fit(
        cls, scores: np.ndarray, y: np.ndarray, n_target: int, C: float | str = "auto", n_folds: int = READOUT_FOLDS
    ) -> "CrossFittedReadout":
        scores, y = _check_scores(scores, y, n_target)
        folds = readout_folds(len(y), n_folds)
        features = log_features(scores)
        if C == "auto":  # the search's fits of the chosen C are the readouts: not fitted twice
            C, fits = _search_C(features, y, n_target, folds)
        else:
            fits = _fold_fits(features, y, n_target, folds, C)
        return cls(np.stack([c for c, _ in fits]), np.stack([b for _, b in fits]), folds, float(C))

    def refit(self, scores: np.ndarray, y: np.ndarray) -> "CrossFittedReadout":
        """The same folds and C, fitted anew on newer scores of the training rows."""
        return type(self).fit(scores, y, self.coefs.shape[2], self.C, self.coefs.shape[0])

    def logits(self, scores: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        f = log_features(scores)
        if rows is None:
            return f @ self.coefs.mean(0) + self.intercepts.mean(0)
        fold = self.folds[np.asarray(rows)]
        return np.einsum("ns,nsk->nk", f, self.coefs[fold]) + self.intercepts[fold]

    def backward(self, dlogits: np.ndarray, scores: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        mask = np.asarray(scores) > self.FLOOR
        if rows is None:
            return (dlogits @ self.coefs.mean(0).T) * mask
        return np.einsum("nk,nsk->ns", dlogits, self.coefs[self.folds[np.asarray(rows)]]) * mask

    def proba(self, scores: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        return _softmax(self.logits(scores, rows))


def check_mapping_size(n_source: int, n_target: int, per_class: int) -> None:
    """Raise when ``n_target * per_class`` source labels do not exist."""
    if n_target * per_class > n_source:
        raise InvalidInputError(
            f"labels_per_class={per_class} with {n_target} target classes needs {n_target * per_class} "
            f"distinct source labels, but the model has n_classes={n_source}; expected "
            f"labels_per_class <= {n_source // n_target}"
        )


def random_mapping(
    n_source: int, n_target: int, per_class: int, rng: np.random.Generator, source_names=None
) -> LabelMapping:
    """``per_class`` distinct random source labels per target class."""
    check_mapping_size(n_source, n_target, per_class)
    chosen = rng.permutation(n_source)[: n_target * per_class]
    return LabelMapping(chosen.reshape(n_target, per_class), n_source, _names(source_names))


def source_frequencies(scores: np.ndarray, y: np.ndarray, n_target: int) -> np.ndarray:
    """``(n_source, n_target)`` evidence that source label s stands for target t.

    The share of target-``t`` samples whose top source label is ``s``, plus,
    as a tie-break between equal shares, the mean score of ``s`` on them.
    The tie-break is below half of the smallest gap between two different
    shares, so it never reorders them. A row with no score above zero (an API
    that returned nothing above its threshold) votes for no label.
    """
    n_source = scores.shape[1]
    top = scores.argmax(axis=1)
    voted = scores.max(axis=1) > 0
    sizes = np.bincount(y, minlength=n_target)[:n_target]
    # shares a/n_i and b/n_j that differ, differ by at least 1 / (n_i * n_j) >= 1 / max(n)^2
    tie = 0.5 / max(int(sizes.max()), 1) ** 2
    freq = np.zeros((n_source, n_target))
    for t in range(n_target):
        rows = y == t
        if sizes[t]:
            freq[:, t] = np.bincount(top[rows & voted], minlength=n_source) / sizes[t]
            mean = scores[rows].mean(axis=0)
            freq[:, t] += tie * mean / max(mean.max(), 1e-12)
    return freq


def frequency_mapping(freq: np.ndarray, per_class: int, source_names=None) -> LabelMapping:
    """BAR's greedy frequency mapping from a ``(n_source, n_target)`` evidence table.

    Repeatedly takes the largest remaining entry (s, t) whose source label is
    still free and whose target class still needs labels.
    """
    n_source, n_target = freq.shape
    check_mapping_size(n_source, n_target, per_class)
    order = np.argsort(-freq, axis=None, kind="stable")
    taken = np.zeros(n_source, bool)
    chosen: list[list[int]] = [[] for _ in range(n_target)]
    for flat in order:
        s, t = divmod(int(flat), n_target)
        if not taken[s] and len(chosen[t]) < per_class:
            chosen[t].append(s)
            taken[s] = True
    return LabelMapping(np.array(chosen, dtype=np.int64), n_source, _names(source_names))


def _names(names):
    return None if names is None else tuple(str(n) for n in names)
