"""Model adapters: put any classifier behind the black-box contract.

- :class:`TorchModel`: a ``torch.nn.Module`` (needs torch; loaded on first use,
  so ``import adapters`` works without torch).
- :class:`CallableModel`: any function of an image batch.
- :class:`SklearnModel`: a fitted scikit-learn classifier.
- :class:`TopK`, :class:`Rounded`, :class:`LabelOnly`: wrappers that make any
  model answer like a real API (top-k scores, rounded scores, label only).

Small torch networks, a trainer and an offline digits source live in
:mod:`adapters.nets` (needs torch).
"""

from __future__ import annotations

from typing import Any

from adapters.callable import CallableModel
from adapters.restrict import LabelOnly, Rounded, TopK
from adapters.sklearn import SklearnModel

# RemoteModel (adapters.remote) joins here once that package lands.

__all__ = [
    "TorchModel",
    "CallableModel",
    "SklearnModel",
    "TopK",
    "Rounded",
    "LabelOnly",
]


def __getattr__(name: str) -> Any:
    # torch is heavy and optional: import it only when TorchModel is asked for.
    if name == "TorchModel":
        from adapters.torch import TorchModel

        return TorchModel
    raise AttributeError(f"module 'adapters' has no attribute {name!r}")
