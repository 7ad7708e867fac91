"""Transfer: attacks and programs moved between models, and the baselines BAR is measured against.

- :func:`transfer_matrix`: adversarial examples crafted on models you own,
  evaluated on every target (``rates[attack, source, target]``), with
  CSV/JSON/heatmap output; :class:`EnsembleModel` makes several sources one.
- :func:`evaluate_program`: a program trained on one model, in front of others.
- :func:`warm_start_study`: queries saved on a black box by a free local
  surrogate (warm start, surrogate-guided estimation);
  :func:`distilled_program` first teaches a copy of the surrogate the black
  box's answers with a few counted queries (:func:`distill_surrogate`), in
  rounds, and trains the warm-start program on the copy.
- :func:`compare`: BAR, white-box reprogramming, linear probe, fine-tuning
  and training from scratch on one data split, in one table.

>>> from bar_sdk.transfer import transfer_matrix, compare     # doctest: +SKIP
"""

from bar_sdk.transfer import compare  # the module; calling it runs compare.compare (see bar_sdk._modules)
from bar_sdk.transfer.compare import Comparison, default_methods
from bar_sdk.transfer.distill import DistilledProgram, DistilledSurrogate, distill_surrogate, distilled_program
from bar_sdk.transfer.ensemble import EnsembleModel
from bar_sdk.transfer.local import LocalTransferClassifier
from bar_sdk.transfer.matrix import TransferMatrix, to_uint8, transfer_matrix
from bar_sdk.transfer.metrics import classification_metrics
from bar_sdk.transfer.programs import ProgramTransfer, evaluate_program, program_scores
from bar_sdk.transfer.warmstart import STRATEGIES, WarmStartStudy, warm_start_study

__all__ = [
    "transfer_matrix",
    "TransferMatrix",
    "EnsembleModel",
    "to_uint8",
    "evaluate_program",
    "program_scores",
    "ProgramTransfer",
    "warm_start_study",
    "WarmStartStudy",
    "STRATEGIES",
    "distill_surrogate",
    "DistilledSurrogate",
    "distilled_program",
    "DistilledProgram",
    "compare",
    "Comparison",
    "default_methods",
    "LocalTransferClassifier",
    "classification_metrics",
]
