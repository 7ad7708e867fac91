"""When to try a request again, how long to wait, and when to give up.

Built from tenacity's small objects, always with an explicit stop: a request is
tried at most ``max_attempts`` times and never waits past ``max_delay``
seconds in total (or as your own tenacity ``stop``, ``wait`` and ``retry``
objects say; see :class:`RetryPolicy`). Retried: throttles (429, vendor throttle bodies), 5xx,
timeouts and connection errors, and a malformed body a few times.
Never retried: 400/401/403 and other client errors.
"""

from __future__ import annotations

import email.utils
import inspect
import logging
import math
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, NoReturn

import numpy as np
import tenacity

from bar_sdk.contract import check_float, check_int
from bar_sdk.errors import InvalidInputError, RateLimitError, ResponseFormatError, TransientError

__all__ = ["RetryPolicy", "parse_retry_after", "retry_after_of"]

logger = logging.getLogger(__name__)

_EXAMPLES = {
    "stop": "tenacity.stop_after_attempt(3)",
    "wait": "tenacity.wait_fixed(1)",
    "retry": "tenacity.retry_if_exception_type(TransientError)",
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or HTTP date), or ``None``."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def retry_after_of(exc: BaseException) -> float | None:
    """The wait an error asks for (``Retry-After``, ``estimated_time``), if any."""
    value = getattr(exc, "retry_after", None)
    return None if value is None else float(value)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded in attempts and in time.

    The wait before attempt ``k + 1`` is
    ``min(maximum, initial * exp_base ** (k - 1)) + U(0, jitter)`` seconds, but
    never less than what the server asked for (``Retry-After``, Hugging Face's
    ``estimated_time``). Retrying stops when ``max_attempts`` were made or when
    the next wait would end past ``max_delay`` seconds since the first attempt;
    the last error is then raised, its message saying how many attempts were
    made.

    Parameters
    ----------
    max_attempts : int
        Attempts per request, the first included.
    max_delay : float
        Seconds one request may take, waits included.
    initial, maximum, exp_base : float
        Backoff schedule before jitter.
    jitter : float
        Upper end of the uniform random seconds added to each wait, so clients
        that were throttled together do not come back together.
    max_malformed : int
        Attempts allowed while the API answers with a body that cannot be read
        (a proxy that cut the answer, a glitch). A format that is wrong every
        time fails fast.
    random_state : int or None
        Seed of the jitter.
    stop : tenacity stop, optional
        Your own stop rule (``tenacity.stop_after_attempt(3)``,
        ``stop_after_delay(10) | stop_after_attempt(5)``, ...), used instead of
        ``max_attempts`` and ``max_delay``; ``max_malformed`` still applies.
    wait : tenacity wait, optional
        Your own wait rule (``tenacity.wait_fixed(2)``,
        ``wait_random_exponential(...)``), used instead of ``initial``,
        ``maximum``, ``exp_base`` and ``jitter``; a wait the server asks for
        (``Retry-After``) is still the floor.
    retry : tenacity retry, optional
        A further condition for retrying (``tenacity.retry_if_exception_type(...)``,
        ``retry_if_not_exception_message(...)``). It can only narrow the
        built-in rule: what is never retried (401/403, other client errors) is
        not retried whatever it says, so no budget is spent on hopeless requests.

    Examples
    --------
    >>> import tenacity
    >>> policy = RetryPolicy(stop=tenacity.stop_after_attempt(2), wait=tenacity.wait_fixed(0.5))
    >>> RetryPolicy(max_attempts=3, initial=0.1).max_attempts      # numbers work as before
    3
    """

    max_attempts: int = 6
    max_delay: float = 120.0
    initial: float = 0.5
    maximum: float = 30.0
    exp_base: float = 2.0
    jitter: float = 0.5
    max_malformed: int = 3
    random_state: int | None = None
    stop: Any = None
    wait: Any = None
    retry: Any = None

    def __post_init__(self) -> None:
        for name in ("stop", "wait", "retry"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise InvalidInputError(
                    f"{name}={value!r}; expected a tenacity {name} object (e.g. {_EXAMPLES[name]}) or None"
                )
        check_int(self.max_attempts, "max_attempts", low=1)
        check_float(self.max_delay, "max_delay", low=0.0, low_open=True)
        check_float(self.initial, "initial", low=0.0)
        check_float(self.maximum, "maximum", low=0.0)
        check_float(self.exp_base, "exp_base", low=1.0)
        check_float(self.jitter, "jitter", low=0.0)
        check_int(self.max_malformed, "max_malformed", low=1)
        check_int(self.random_state, "random_state", low=0, allow_none=True)

    def backoff(self, attempt: int, rng: np.random.Generator | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), before any floor."""
        base = min(self.maximum, self.initial * self.exp_base ** (attempt - 1))
        return base + (float(rng.uniform(0.0, self.jitter)) if rng is not None and self.jitter > 0 else 0.0)

    def retrying(
        self,
        *,
        rng: np.random.Generator,
        sleep: Callable[[float], Any],
        lock: threading.Lock | None = None,
        asynchronous: bool = False,
        what: str = "request",
    ) -> tenacity.BaseRetrying:
        """A fresh tenacity controller for one request.

        ``sleep`` is called with the seconds to wait (it may return an
        awaitable when ``asynchronous``); ``rng`` draws the jitter, under
        ``lock`` when several requests share it.
        """
        lock = lock or threading.Lock()
        malformed = [0]

        def should_retry(exc: BaseException) -> bool:
            if not isinstance(exc, (RateLimitError, TransientError, ResponseFormatError)) or not exc.retryable:
                return False
            if isinstance(exc, ResponseFormatError):
                malformed[0] += 1
            return True

        def wait(state: tenacity.RetryCallState) -> float:
            if self.wait is not None:
                seconds = float(self.wait(state))
            else:
                with lock:
                    seconds = self.backoff(state.attempt_number, rng)
            failure = state.outcome.exception() if state.outcome else None
            floor = retry_after_of(failure) if failure is not None else None
            return max(seconds, floor) if floor is not None else seconds

        def out_of_time(state: tenacity.RetryCallState) -> bool:
            # idle_for counts injected (fake) sleeps too, so tests see the same stop as real runs.
            spent = max(state.seconds_since_start or 0.0, state.idle_for)
            return spent + state.upcoming_sleep > self.max_delay

        def too_many_malformed(state: tenacity.RetryCallState) -> bool:
            return malformed[0] >= self.max_malformed

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logger.info(
                "%s: attempt %d failed (%s: %s); retrying in %.2f s",
                what,
                state.attempt_number,
                type(exc).__name__,
                exc,
                state.upcoming_sleep,
            )

        def give_up(state: tenacity.RetryCallState) -> NoReturn:
            exc = state.outcome.exception() if state.outcome else None
            if exc is None:  # not reached: tenacity gives up only after a failed attempt, which holds its error
                raise RuntimeError(f"{what}: retrying stopped without an error to raise")
            limits = (
                f"stop={self.stop!r}"
                if self.stop is not None
                else f"max_attempts={self.max_attempts}, max_delay={self.max_delay:g} s"
            )
            exc.args = (
                f"{exc} (gave up after {state.attempt_number} attempt(s) and "
                f"{state.idle_for:.1f} s of waiting; {limits}, max_malformed={self.max_malformed})",
            )
            raise exc

        stops: tuple[Callable[[tenacity.RetryCallState], bool], ...] = (
            (self.stop,) if self.stop is not None else (tenacity.stop_after_attempt(self.max_attempts), out_of_time)
        )

        def stop(state: tenacity.RetryCallState) -> bool:  # tenacity.stop_any(*stops, too_many_malformed)
            return any(rule(state) for rule in stops) or too_many_malformed(state)

        retry: Any = tenacity.retry_if_exception(should_retry)
        options: dict[str, Any] = dict(
            stop=stop,
            wait=wait,
            retry=retry if self.retry is None else tenacity.retry_all(retry, self.retry),
            before_sleep=before_sleep,
            retry_error_callback=give_up,
        )
        if asynchronous:

            async def async_sleep(seconds: float) -> None:
                result = sleep(seconds)
                if inspect.isawaitable(result):
                    await result

            return tenacity.AsyncRetrying(sleep=async_sleep, **options)
        return tenacity.Retrying(sleep=sleep, **options)
