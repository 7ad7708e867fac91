"""The one exception tree of bar-sdk.

Every error the SDK raises on purpose derives from :class:`BarError` and also
from the matching builtin, so ``except ValueError`` keeps working for callers
who do not know this package::

    BarError
    ├── InvalidInputError (ValueError)        bad argument or data, raised before any query
    │   └── ModelOutputError                  the model answered with the wrong shape, NaN, ...
    ├── InvalidModelError (TypeError)         the object does not satisfy the black-box contract
    ├── QueryBudgetExceeded (RuntimeError)    a batch would cross ``max_queries`` (``images_sent`` says what left)
    ├── CheckpointError (ValueError)          corrupt, truncated or mismatched checkpoint
    ├── NonFiniteProgramError (FloatingPointError)  training turned the program NaN/inf; nothing such was sent
    ├── MissingDependencyError (ImportError)  an optional extra is not installed; names the pip command
    └── RemoteError (RuntimeError)            a remote model failed (see bar_sdk.adapters.remote)
        ├── AuthenticationError               401/403: never retried
        ├── RateLimitError                    429 or a vendor throttle body, after retries ran out
        ├── ResponseFormatError (ValueError)  the body could not be parsed into scores
        └── TransientError                    5xx, timeout, connection error, after retries ran out
"""

from __future__ import annotations

__all__ = [
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
]


class BarError(Exception):
    """Base class of every error raised on purpose by bar-sdk."""


class InvalidInputError(BarError, ValueError):
    """An argument or a data array is not what was expected.

    The message names the parameter, the offending value and what was
    expected. Raised before any query is spent.
    """


class ModelOutputError(InvalidInputError):
    """A model answered with scores of the wrong shape, NaN/inf or negatives."""


class InvalidModelError(BarError, TypeError):
    """The object does not satisfy the black-box contract."""


class QueryBudgetExceeded(BarError, RuntimeError):
    """Sending the next batch would exceed ``max_queries``; nothing was sent.

    Attributes
    ----------
    requested : int
        Images in the batch that was refused.
    spent : int
        Images already counted against the budget.
    max_queries : int
        The budget.
    """

    def __init__(self, requested: int, spent: int, max_queries: int, what: str = "max_queries") -> None:
        self.requested = int(requested)
        self.spent = int(spent)
        self.max_queries = int(max_queries)
        super().__init__(
            f"{what}={self.max_queries} would be exceeded: {self.spent} queries spent, "
            f"a batch of {self.requested} refused (nothing was sent)"
        )


class CheckpointError(BarError, ValueError):
    """A checkpoint is corrupt, truncated or belongs to another configuration."""


class MissingDependencyError(BarError, ImportError):
    """An optional package is not installed; the message names the ``pip install`` that brings it."""


class RemoteError(BarError, RuntimeError):
    """A remote model failed; subclasses say how.

    Attributes
    ----------
    retryable : bool
        Whether trying the request again may help (``False`` for an account
        limit or an answer over ``max_response_bytes``). Class default ``True``;
        the retry policy still retries only throttles, transient failures and
        unreadable bodies.
    unconfirmed : bool
        Whether the request may have been served, and billed, though no usable
        answer came back (a read timeout, a dropped connection, an oversized or
        unreadable 2xx answer). Class default ``False``.
    """

    retryable: bool = True
    unconfirmed: bool = False


class AuthenticationError(RemoteError):
    """The API refused the credentials (401/403). Never retried."""


class RateLimitError(RemoteError):
    """The API kept throttling after every retry allowed was spent."""


class ResponseFormatError(RemoteError, ValueError):
    """The API's body could not be read as scores."""


class TransientError(RemoteError):
    """5xx, timeout or connection failure that outlasted the retries."""


class NonFiniteProgramError(BarError, FloatingPointError):
    """Training made the program non-finite; fit stopped before sending such an image.

    The estimator keeps the last finite program (``theta_``, ``program_``) and says why
    in ``stop_reason_``.
    """
