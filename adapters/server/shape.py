"""What a vendor shape of the local server reads and writes (shared types)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

__all__ = ["BadRequest", "Wanted", "Ranked", "Shape"]

Ranked = list[tuple[str, "float | None"]]
"""One image's answer, best first: (label, score), score ``None`` in label-only mode."""


class BadRequest(Exception):
    """The request body does not follow the vendor's format (answered 400, not billed)."""


@dataclass(frozen=True)
class Wanted:
    """What the client asked for: top ``k``, a fixed selection, a score floor."""

    k: int
    select: Sequence[str] | None = None
    min_value: float | None = None


class Shape(Protocol):  # pragma: no cover - protocol
    name: str
    max_batch: int
    default_k: int
    paths: tuple[str, ...]

    def credential(self, headers: Mapping[str, str]) -> str | None: ...

    def read(self, body: bytes, headers: Mapping[str, str]) -> tuple[list[str | bytes], Wanted]: ...

    def ok(self, ranked: list[Ranked], path_params: Mapping[str, str]) -> Any: ...

    def error(self, kind: str, message: str) -> tuple[int, Any]: ...

    def malformed(self, ranked: list[Ranked], path_params: Mapping[str, str], cut: bool) -> bytes: ...
