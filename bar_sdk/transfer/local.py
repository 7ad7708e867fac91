"""Transfer learning on a model you can download: the baselines BAR is measured against.

:class:`LocalTransferClassifier` turns a local classifier into a classifier
for a new task in one of three classic ways:

- ``"probe"``: a logistic regression on frozen features (the input of the
  network's last linear layer; for a model without torch, its log-scores);
- ``"finetune"``: a new last layer, then every weight trained;
- ``"scratch"``: the same network with fresh random weights, trained on the
  target data alone.

The core never imports torch: the network's training is the model's own
capability (``model.transfer_trainer()``, which
:class:`bar_sdk.adapters.TorchModel` provides), NumPy in and out.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from bar_sdk.contract import check_choice, check_float, check_int, check_labels, check_model
from bar_sdk.errors import InvalidInputError
from bar_sdk.layout import TargetLayout
from bar_sdk.ledger import MeteredModel, QueryLedger

__all__ = ["LocalTransferClassifier", "trainer_of"]

logger = logging.getLogger(__name__)

_FLOOR = 1e-30


def trainer_of(model: Any) -> Any:
    """The model's training capability (``model.transfer_trainer()``), or None for a model without one.

    :class:`bar_sdk.adapters.TorchModel` has one (a NumPy-facing
    ``TorchTrainer``: ``features``, ``fit_head``, ``distil``); torch stays in
    the adapters.
    """
    make = getattr(model, "transfer_trainer", None)
    return make() if callable(make) else None


class LocalTransferClassifier(ClassifierMixin, BaseEstimator):
    """Linear probe, fine-tuning or training from scratch of a local model, scikit-learn style.

    Target images are resized to the model's input (grey repeated to RGB),
    tabular rows laid out as a patch, exactly as BAR's full-frame layout does.

    Parameters
    ----------
    model : object
        ``"finetune"`` and ``"scratch"`` need a trainable torch model
        (``bar_sdk.adapters.TorchModel``, or any model whose
        ``transfer_trainer()`` gives such a trainer).
        ``"probe"`` takes any black box: with a torch model the features
        are the input of its last ``nn.Linear``, otherwise its log-scores
        (sent through a ledger, counted in ``queries_``).
    mode : {"probe", "finetune", "scratch"}, default="finetune"
    epochs : int, default=20
        Passes over the training data (``"finetune"``, ``"scratch"``).
    batch_size : int, default=64
    learning_rate : float, default=1e-3
        Adam's step size.
    C : float, default=1.0
        Inverse regularisation of the probe's logistic regression.
    class_weight : {None, "balanced"}, default=None
        ``"balanced"`` weighs classes by 1/frequency (as BAR's loss does).
    random_state : int, optional
        Seeds the new weights and the shuffling.

    Attributes
    ----------
    classes_ : ndarray
    queries_ : int
        Images sent to ``model`` through the black-box contract during fit
        (the probe on a model without torch); a torch module trained or read
        directly is not queried.
    ledger_ : QueryLedger
        Every image sent to ``model`` by this estimator (fit and predict).
    n_train_images_ : int
        Images the network processed while training (epochs x samples).

    Notes
    -----
    The user's model is never modified: fine-tuning trains a deep copy.
    The network runs in eval mode throughout (as ``TorchModel`` keeps it),
    so dropout is off and batch-norm statistics stay frozen.
    """

    def __init__(
        self,
        model: Any,
        *,
        mode: str = "finetune",
        epochs: int = 20,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        C: float = 1.0,
        class_weight: str | None = None,
        random_state: int | None = None,
    ) -> None:
        self.model = model
        self.mode = mode
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.C = C
        self.class_weight = class_weight
        self.random_state = random_state

    def _validate_params(self) -> None:
        check_choice(self.mode, "mode", ("probe", "finetune", "scratch"))
        check_int(self.epochs, "epochs", low=1)
        check_int(self.batch_size, "batch_size", low=1)
        check_float(self.learning_rate, "learning_rate", low=0.0, low_open=True)
        check_float(self.C, "C", low=0.0, low_open=True)
        if self.class_weight not in (None, "balanced"):
            raise InvalidInputError(f"class_weight={self.class_weight!r}; expected None or 'balanced'")
        if self.random_state is not None:
            check_int(self.random_state, "random_state", low=0)
        check_model(self.model)
        if self.mode != "probe" and trainer_of(self.model) is None:
            raise InvalidInputError(
                f"mode={self.mode!r} trains the network's weights; model={type(self.model).__name__} is not a "
                "torch model (expected bar_sdk.adapters.TorchModel). Use mode='probe' for other models"
            )

    def fit(self, X: Any, y: Any) -> LocalTransferClassifier:
        """Train on ``(X, y)``; return ``self``."""
        self._validate_params()
        _, input_shape = check_model(self.model)
        self.layout_ = TargetLayout.fit(X, input_shape, full_frame=True)
        images = self.layout_.transform(X)
        y, k = check_labels(y, len(images))
        self.classes_ = np.arange(k)
        self.ledger_ = QueryLedger()
        self.n_train_images_ = 0
        rng = np.random.default_rng(self.random_state)
        if self.mode == "probe":
            self._fit_probe(images, y)
        else:
            self._fit_network(images, y, k, rng)
        self.queries_ = self.ledger_.queries
        return self

    # ------------------------------------------------------------------ probe
    def _features(self, images: np.ndarray, purpose: str) -> np.ndarray:
        trainer = trainer_of(getattr(self, "net_", None) or self.model)
        feats: np.ndarray
        if trainer is not None:
            feats = trainer.features(images, self.batch_size * 4)
        else:
            scores = MeteredModel(self.model, self.ledger_).predict_proba(images, purpose=purpose)
            feats = np.log(np.maximum(scores, _FLOOR))
        return feats

    def _fit_probe(self, images: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        feats = self._features(images, "train")
        self.probe_ = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.C, max_iter=2000, class_weight=self.class_weight)
        ).fit(feats, y)

    # ------------------------------------------------------------------ network
    def _fit_network(self, images: np.ndarray, y: np.ndarray, k: int, rng: np.random.Generator) -> None:
        weight = None
        if self.class_weight == "balanced":
            counts = np.bincount(y, minlength=k).astype(np.float64)
            weight = len(y) / (k * np.maximum(counts, 1))
        fitted = trainer_of(self.model).fit_head(
            images,
            y,
            k,
            scratch=self.mode == "scratch",
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            class_weight=weight,
            rng=rng,
        )
        self.n_train_images_ += fitted.n_images
        self._fitted = fitted
        self.net_, self.head_ = fitted.net, fitted.head

    # ------------------------------------------------------------------ predict
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, k)``."""
        check_is_fitted(self, "classes_")
        images = self.layout_.transform(X)
        proba: np.ndarray
        if self.mode == "probe":
            proba = self.probe_.predict_proba(self._features(images, "predict"))
        else:
            proba = self._fitted.predict_proba(images, self.batch_size * 4)
        return proba

    def predict(self, X: Any) -> np.ndarray:
        """Predicted classes ``(n,)``."""
        predicted: np.ndarray = self.classes_[self.predict_proba(X).argmax(axis=1)]
        return predicted
