"""Cloud image APIs as black boxes: RemoteModel, its presets, ledger, cache and limits.

>>> from adapters.remote import RemoteModel, RetryPolicy, register_preset   # doctest: +SKIP
"""

from adapters.remote.cache import AnswerCache
from adapters.remote.encoding import QUANTIZATION_STEP, decode_image, encode_image, quantize
from adapters.remote.labels import LabelMapper
from adapters.remote.ledger import RemoteLedger
from adapters.remote.model import RemoteModel
from adapters.remote.presets import Preset, available_presets, make_preset, register_preset
from adapters.remote.ratelimit import TokenBucket
from adapters.remote.retry import RetryPolicy
from adapters.remote.secret import Secret

__all__ = [
    "RemoteModel", "RemoteLedger", "RetryPolicy", "TokenBucket", "AnswerCache", "LabelMapper", "Secret",
    "Preset", "register_preset", "make_preset", "available_presets",
    "QUANTIZATION_STEP", "quantize", "encode_image", "decode_image",
]
