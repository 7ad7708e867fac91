"""API keys that never show up in reprs, logs, exceptions or checkpoints."""

from __future__ import annotations

import base64
import html
import json
import os
import re
from typing import Iterable, NoReturn, Sequence
from urllib.parse import quote, quote_plus

from bar_sdk.errors import InvalidInputError

__all__ = ["Secret", "resolve_secret", "encoded_forms", "redact_all"]

_MIN_FORM = 6  # a base64 fragment shorter than this (of a short key) is too common to blank out of a message


def _base64_cores(raw: bytes, alphabet: str) -> Iterable[str]:
    """The base64 text that encodes ``raw`` wherever it sits in a longer value (three byte alignments).

    Characters that mix the key's bits with a neighbour's are left out, so each core is found
    inside the base64 of, e.g., ``b"Key " + key`` or ``b"user:" + key`` (HTTP Basic).
    """
    encode = base64.urlsafe_b64encode if alphabet == "url" else base64.b64encode
    for pad in range(3):
        text = encode(b"\0" * pad + raw).decode("ascii")
        start = -(-8 * pad // 6)  # first character made of the key's bits only
        stop = 8 * (pad + len(raw)) // 6  # past the last such character
        yield text[start:stop]


def encoded_forms(value: str) -> list[str]:
    """Every spelling of ``value`` a message, a body or a repr may carry, longest first.

    The value as given; escaped as a repr, JSON (with or without ``\\/``), ``unicode_escape``
    or HTML; percent-encoded (path, component, form ``+``, lower-case hex, twice); hex (both
    cases); base64 and URL-safe base64 at any alignment (so inside a base64 header too).
    """
    raw = value.encode("utf-8")
    pct = quote(value, safe="")
    forms = {
        value,
        repr(value)[1:-1],
        value.encode("unicode_escape").decode("ascii"),
        json.dumps(value)[1:-1],
        json.dumps(value)[1:-1].replace("/", "\\/"),
        html.escape(value),
        html.escape(value, quote=False),
        pct,
        quote(value),
        quote_plus(value),
        quote(pct, safe=""),
        re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), pct),
    }
    # Encodings to other alphabets only where long enough not to match ordinary text (a 2-letter test key).
    coded = {raw.hex(), raw.hex().upper(), *_base64_cores(raw, "std"), *_base64_cores(raw, "url")}
    forms.update(f for f in coded if len(f) >= _MIN_FORM)
    return sorted(forms, key=len, reverse=True)


def redact_all(text: str, values: Iterable[str | None]) -> str:
    """``text`` with every :func:`encoded_forms` spelling of each of ``values`` replaced by ``'***'``."""
    forms = sorted({f for v in values if v for f in encoded_forms(v)}, key=len, reverse=True)
    for form in forms:
        text = text.replace(form, "***")
    return text


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

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError("api_key must be a non-empty string")
        value = value.strip()  # a key read from a file or an env file often ends in a newline
        if any(ord(c) < 32 or ord(c) == 127 for c in value):  # the key itself is never echoed
            raise InvalidInputError(
                "api_key contains a control character (a line break or tab inside it); expected the key alone"
            )
        if not value.isascii():  # HTTP clients encode header values as ASCII: refuse now, not at the first send
            raise InvalidInputError(
                "api_key contains a non-ASCII character (a typographic quote, an accented "
                "letter or a non-breaking space pasted with it?), which cannot be sent in an "
                "HTTP header; expected the key as the vendor issued it (printable ASCII)"
            )
        self._value = value

    def reveal(self) -> str:
        """The credential itself; use it only to authorise a request."""
        return self._value

    def redact(self, text: str) -> str:
        """``text`` with the credential, in any spelling :func:`encoded_forms` knows, replaced by ``'***'``."""
        return redact_all(text, [self._value])

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret (API key) cannot be pickled; checkpoints never hold credentials")


def resolve_secret(
    value: str | Secret | None, env_vars: Sequence[str], *, required: bool, name: str = "api_key"
) -> Secret | None:
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
