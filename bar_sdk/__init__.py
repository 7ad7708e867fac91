"""bar-sdk: black-box adversarial reprogramming of classifiers you can only query.

>>> from bar_sdk import BARClassifier, QueryBudgetExceeded   # doctest: +SKIP
"""

import bar_sdk.audit as audit  # the module; calling it runs audit.audit (see bar_sdk._modules)
from bar_sdk.audit import AuditReport
from bar_sdk.contract import BlackBox, GradientModel, check_images, check_model
from bar_sdk.errors import (
    AuthenticationError,
    BarError,
    CheckpointError,
    InvalidInputError,
    InvalidModelError,
    MissingDependencyError,
    ModelOutputError,
    NonFiniteProgramError,
    QueryBudgetExceeded,
    RateLimitError,
    RemoteError,
    ResponseFormatError,
    TransientError,
)
from bar_sdk.ledger import MeteredModel, QueryLedger
from bar_sdk.reprogram import BARClassifier, QuantizationWarning

__version__ = "0.2.0"

__all__ = [
    "BlackBox",
    "GradientModel",
    "check_images",
    "check_model",
    "BarError",
    "InvalidInputError",
    "ModelOutputError",
    "InvalidModelError",
    "QueryBudgetExceeded",
    "CheckpointError",
    "NonFiniteProgramError",
    "MissingDependencyError",
    "RemoteError",
    "AuthenticationError",
    "RateLimitError",
    "ResponseFormatError",
    "TransientError",
    "MeteredModel",
    "QueryLedger",
    "BARClassifier",
    "QuantizationWarning",
    "audit",
    "AuditReport",
]
