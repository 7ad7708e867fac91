"""Answers already paid for, keyed by the exact 8-bit image the API saw."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Iterable

import numpy as np

__all__ = ["AnswerCache", "image_key"]


def image_key(img: np.ndarray, identity: str) -> str:
    """sha256 of the uint8 image (shape included) and of what answers it.

    ``identity`` names the endpoint, model and every option that changes the
    answer (never the API key), so two models never share answers.
    """
    h = hashlib.sha256()
    h.update(identity.encode())
    h.update(repr(img.shape).encode())
    h.update(np.ascontiguousarray(img, dtype=np.uint8).tobytes())
    return h.hexdigest()


class AnswerCache:
    """Per-image answers (API label -> score) in SQLite, on disk or in memory.

    Parameters
    ----------
    path : str or Path, optional
        Database file; ``None`` keeps the cache in memory for this process.
        Each batch of answers is one transaction, so a crash leaves every
        answer either fully stored or absent.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:" if self.path is None else str(self.path),
                                   check_same_thread=False, isolation_level=None)
        if self.path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL)")

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, float | None]]:
        """Stored answers for those of ``keys`` that are present."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, dict[str, float | None]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                part = keys[start:start + 500]
                rows = self._db.execute(
                    f"SELECT key, answer FROM answers WHERE key IN ({','.join('?' * len(part))})", part)
                found.update((k, json.loads(a)) for k, a in rows)
        return found

    def put_many(self, answers: dict[str, dict[str, float | None]]) -> None:
        """Store answers, all or none."""
        rows = [(k, json.dumps(a)) for k, a in answers.items()]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"AnswerCache({str(self.path) if self.path else 'in memory'!r})"
