"""Cloud image APIs as black boxes: RemoteModel, its presets, ledger, cache and limits.

>>> from bar_sdk.adapters.remote import RemoteModel, RetryPolicy, register_preset   # doctest: +SKIP
"""

from bar_sdk.adapters.remote.cache import AnswerCache
from bar_sdk.adapters.remote.encoding import QUANTIZATION_STEP, decode_image, encode_image, quantize
from bar_sdk.adapters.remote.labels import LabelMapper
from bar_sdk.adapters.remote.ledger import RemoteLedger
from bar_sdk.adapters.remote.model import RemoteModel
from bar_sdk.adapters.remote.presets import Preset, available_presets, make_preset, register_preset
from bar_sdk.adapters.remote.ratelimit import TokenBucket
from bar_sdk.adapters.remote.retry import RetryPolicy
from bar_sdk.adapters.remote.secret import Secret

__all__ = [
    "RemoteModel",
    "RemoteLedger",
    "RetryPolicy",
    "TokenBucket",
    "AnswerCache",
    "LabelMapper",
    "Secret",
    "Preset",
    "register_preset",
    "make_preset",
    "available_presets",
    "QUANTIZATION_STEP",
    "quantize",
    "encode_image",
    "decode_image",
]
