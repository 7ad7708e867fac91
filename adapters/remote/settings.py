"""RemoteModel's construction: the settings it is given, checked, and the parts they build.

Everything here runs once, in :class:`~bar_sdk.adapters.remote.RemoteModel`'s
constructor, and talks to no network: the preset and retry policy checked, the
cache folder, the ledger and the rate limiter (given from outside, e.g. shared
by Ray workers, or built here), the endpoint's identity (the key of its cached
answers and checkpoints) and the number of encoding threads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from bar_sdk.adapters.remote.ledger import RemoteLedger, StateStore
from bar_sdk.adapters.remote.presets import Preset, make_preset
from bar_sdk.adapters.remote.ratelimit import TokenBucket
from bar_sdk.adapters.remote.retry import RetryPolicy
from bar_sdk.errors import InvalidInputError

__all__ = [
    "check_preset",
    "check_retry",
    "check_cache_dir",
    "ledger_for",
    "rate_limiter_for",
    "endpoint_identity",
    "default_workers",
]

LEDGER_METHODS = ("reserve", "check_retry", "release", "record_billed")
"""What a ledger given from outside must have (see ``RemoteModel(ledger=...)``)."""

RATE_LIMITER_METHODS = ("reserve", "refund")
"""What a rate limiter given from outside must have (see ``RemoteModel(rate_limiter=...)``)."""


def check_preset(preset: Any) -> Preset:
    """``preset`` as a :class:`Preset`: one given, or the registered preset of that name."""
    found = make_preset(preset) if isinstance(preset, str) else preset
    if not isinstance(found, Preset):
        raise InvalidInputError(f"preset={preset!r}; expected a Preset or a registered preset name")
    return found


def check_retry(retry: Any) -> RetryPolicy:
    """``retry`` checked, ``RetryPolicy()`` when ``None``."""
    policy = retry if retry is not None else RetryPolicy()
    if not isinstance(policy, RetryPolicy):
        raise InvalidInputError(f"retry={retry!r}; expected a RetryPolicy")
    return policy


def check_cache_dir(cache_dir: Any) -> Path | None:
    """``cache_dir`` as a ``Path``, or ``None`` (answers and ledger in memory)."""
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise InvalidInputError(f"cache_dir={cache_dir!r}; expected a folder path (str or os.PathLike) or None")
    return Path(cache_dir) if cache_dir is not None else None


def ledger_for(ledger: Any, *, max_queries: int | None, price_per_query: float, store: StateStore | None) -> Any:
    """The ledger given (checked, and then alone: no ``max_queries`` or ``price_per_query`` beside it), or a
    :class:`RemoteLedger` of our own, saved in ``store`` (``None``: in memory)."""
    shared = _shared(
        ledger,
        "ledger",
        LEDGER_METHODS,
        max_queries=max_queries,
        price_per_query=price_per_query or None,
    )
    return shared if shared is not None else RemoteLedger(max_queries, price_per_query, store)


def rate_limiter_for(
    rate_limiter: Any, *, rate_limit: float | None, burst: int, clock: Callable[[], float] | None
) -> Any:
    """The rate limiter given (checked, and then without ``rate_limit``), a :class:`TokenBucket` of
    ``rate_limit`` requests per second, or ``None`` for no limit."""
    shared = _shared(rate_limiter, "rate_limiter", RATE_LIMITER_METHODS, rate_limit=rate_limit)
    if shared is None and rate_limit is not None:
        return TokenBucket(rate_limit, burst, clock)
    return shared


def endpoint_identity(
    base_url: str, preset: Preset, labels: Sequence[str], image_format: str, jpeg_quality: int
) -> str:
    """What answers an image (endpoint, preset options, labels, encoding; never the credential), as JSON:
    the key of the cached answers and of the checkpoints."""
    return json.dumps(
        {
            "base_url": base_url,
            "preset": preset.identity(),
            "labels": labels,
            "image_format": image_format,
            "jpeg_quality": jpeg_quality if image_format == "jpeg" else None,
        },
        sort_keys=True,
        default=str,
    )


def default_workers(workers: int | None) -> int:
    """Encoding threads: ``workers``, or ``min(4, usable CPUs)`` when ``None``."""
    return workers if workers is not None else min(4, _usable_cpus())


def _shared(obj: Any, name: str, methods: tuple[str, ...], **own: Any) -> Any:
    """``obj`` (a ledger or rate limiter given from outside) checked, or None when not given."""
    if obj is None:
        return None
    missing = [m for m in methods if not callable(getattr(obj, m, None))]
    if missing:
        raise InvalidInputError(
            f"{name}={type(obj).__name__}; expected an object with {', '.join(methods)} (it lacks {', '.join(missing)})"
        )
    given = [k for k, v in own.items() if v is not None]
    if given:
        raise InvalidInputError(
            f"{given[0]}={own[given[0]]!r} together with {name}=; expected one of them: "
            f"the {name} given holds its own settings"
        )
    return obj


def _usable_cpus() -> int:
    """CPUs this process may run on (a ``taskset`` pinning counts), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on this platform
        return os.cpu_count() or 1
