"""API keys that never show up in reprs, logs, exceptions or checkpoints."""

from __future__ import annotations

import os
from typing import Sequence

from bar_sdk.errors import InvalidInputError

__all__ = ["Secret", "resolve_secret"]


class Secret:
    """A credential that prints as ``'***'``.

    The value is read only through :meth:`reveal`, at the moment a request is
    authorised. ``repr``, ``str`` and ``format`` give ``'***'``, and pickling
    is refused so a key cannot end up in a checkpoint by accident.

    >>> key = Secret("abc123")
    >>> key, f"{key}"
    (***, '***')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str):
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError("api_key must be a non-empty string")
        value = value.strip()  # a key read from a file or an env file often ends in a newline
        if any(ord(c) < 32 or ord(c) == 127 for c in value):  # the key itself is never echoed
            raise InvalidInputError("api_key contains a control character (a line break or tab inside it); "
                                    "expected the key alone")
        self._value = value

    def reveal(self) -> str:
        """The credential itself; use it only to authorise a request."""
        return self._value

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the credential replaced by ``'***'``."""
        for form in {self._value, repr(self._value)[1:-1], self._value.encode("unicode_escape").decode()}:
            text = text.replace(form, "***")  # the key as given, and as a repr or escaped message shows it
        return text

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"

    def __reduce__(self):
        raise TypeError("a Secret (API key) cannot be pickled; checkpoints never hold credentials")


def resolve_secret(value: str | Secret | None, env_vars: Sequence[str], *, required: bool,
                   name: str = "api_key") -> Secret | None:
    """Wrap ``value``, or read the first set variable of ``env_vars``.

    ``BAR_API_KEY`` is tried last, only when a key is ``required`` (an
    optional credential is never guessed from the generic variable). With
    ``required`` and nothing found, raise naming the variables looked at.
    """
    if isinstance(value, Secret):
        return value
    if value is not None:
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError(f"{name} must be a non-empty string or None (read from the environment)")
        return Secret(value)
    names = [*env_vars, "BAR_API_KEY"] if required else list(env_vars)
    for var in names:
        found = os.environ.get(var)
        if found and found.strip():
            return Secret(found)
    if required:
        raise InvalidInputError(
            f"{name}=None and none of the environment variables {', '.join(names)} is set; "
            "pass api_key=... or set one of them"
        )
    return None
