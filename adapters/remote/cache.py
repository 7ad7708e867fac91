"""Answers already paid for, keyed by the exact 8-bit image the API saw, and the ledger that paid."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from itertools import repeat
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

import numpy as np

from bar_sdk.adapters.remote.flight import KeyedAnswers
from bar_sdk.adapters.remote.presets.base import Answer

__all__ = ["AnswerCache", "image_key", "image_keys"]

State = Union[dict[str, Any], Callable[[], dict[str, Any]]]


def image_key(img: np.ndarray, identity: str) -> str:
    """sha256 of the uint8 image (shape included) and of what answers it.

    ``identity`` names the endpoint, model and every option that changes the
    answer (never the API key), so two models never share answers.
    """
    h = hashlib.sha256()
    h.update(identity.encode())
    h.update(repr(img.shape).encode())
    h.update(np.ascontiguousarray(img, dtype=np.uint8).data.cast("B"))  # the same bytes, not copied
    return h.hexdigest()


def image_keys(images: np.ndarray, identity: str) -> list[str]:
    """:func:`image_key` of every image of the uint8 batch ``images`` (one shape), equal to it key for key.

    The identity and the shape are hashed once for the batch; each image then costs one copy of that
    hash state and the pass over its own bytes.
    """
    images = np.ascontiguousarray(images, dtype=np.uint8)
    prefix = hashlib.sha256()
    prefix.update(identity.encode())
    prefix.update(repr(images.shape[1:]).encode())
    keys = []
    for img in images:
        h = prefix.copy()
        h.update(img.data.cast("B"))
        keys.append(h.hexdigest())
    return keys


class AnswerCache:
    """Per-image answers (API label -> score): in SQLite on disk, or in this process's memory.

    The same file keeps small named states (the remote ledger), so what was
    paid and what it bought live side by side.

    An answer with a score for every label (a tensor protocol's, kept as a
    :class:`~bar_sdk.adapters.remote.flight.KeyedAnswers` block) is stored as
    its float64 scores, behind the id of its label list (stored once, in
    ``label_sets``); any other answer as JSON text. Both read back as the same
    ``{label: score}`` dict, bit for bit. (JSON for a 1,000-label answer cost
    ~0.6 ms of CPU per image, as much as the rest of the client's path.)

    Parameters
    ----------
    path : str or Path, optional
        Database file. Every write is one transaction (WAL journal), so a
        crashed process leaves each batch of answers, and each ledger update,
        either fully stored or absent; a commit costs about 0.1 ms, not an
        fsync. ``None`` keeps the cache in memory for this process: answers
        in a dict (an SQLite row cost ~6 us per small image, more than the
        rest of its path), states in an in-memory database.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            ":memory:" if self.path is None else str(self.path), check_same_thread=False, isolation_level=None
        )
        if self.path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS label_sets (id INTEGER PRIMARY KEY, labels TEXT NOT NULL UNIQUE)")
        # In memory: key -> the answer's JSON text (a few times smaller than its dict), or the keyed block it
        # came in (one object for all of a request's images: nothing is made per image, nothing per image is
        # left for the garbage collector to scan; the block finds an image's row when it is read).
        self._memory: dict[str, str | KeyedAnswers] | None = {} if path is None else None
        self._set_ids: dict[tuple[str, ...], int] = {}
        self._sets: dict[int, tuple[str, ...]] = {}

    def get_many(self, keys: Iterable[str]) -> dict[str, Answer]:
        """Stored answers for those of ``keys`` that are present (each a new dict)."""
        keys = keys if isinstance(keys, list) else list(keys)
        found: dict[str, Answer] = {}
        with self._lock:
            if self._memory is not None:
                memory = self._memory
                if memory.keys().isdisjoint(keys):  # new images, the common case: no lookup per image
                    return found
                for k in dict.fromkeys(keys):
                    stored = memory.get(k)
                    if stored is not None:
                        found[k] = json.loads(stored) if isinstance(stored, str) else stored[k]
                return found
            keys = list(dict.fromkeys(keys))
            for start in range(0, len(keys), 500):
                part = keys[start : start + 500]
                rows = self._db.execute(
                    f"SELECT key, answer FROM answers WHERE key IN ({','.join('?' * len(part))})", part
                )
                found.update((k, json.loads(a) if isinstance(a, str) else self._dense(k, a)) for k, a in rows)
        return found

    def put_many(self, answers: Mapping[str, Answer], states: Mapping[str, State] | None = None) -> None:
        """Store answers and, in the same transaction, named states: all or none.

        A state may be given as a function returning it; it is then read
        inside the transaction, so concurrent writers each store the freshest
        one (a ledger saved with the answers it paid for).
        """
        if self._memory is not None:
            stored: Iterable[tuple[str, str | KeyedAnswers]]
            if isinstance(answers, KeyedAnswers):
                stored = zip(answers, repeat(answers))
            else:
                stored = [(k, json.dumps(a)) for k, a in answers.items()]
            with self._lock:
                if states:
                    self._commit((), states)  # first: states that cannot be written store no answers
                self._memory.update(stored)
            return
        rows = self._rows(answers)
        with self._lock:
            self._commit(rows, states)

    def _commit(self, rows: Sequence[tuple[str, str | bytes]], states: Mapping[str, State] | None) -> None:
        """Answer ``rows`` and ``states`` in one transaction, all or none (the caller holds the lock)."""
        self._db.execute("BEGIN")
        try:
            self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?)", rows)
            for name, state in (states or {}).items():
                self._write_state(name, state)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _rows(self, answers: Mapping[str, Answer]) -> list[tuple[str, str | bytes]]:
        """The rows of ``answers`` for the database: a block's as scores, any other as JSON text."""
        if not isinstance(answers, KeyedAnswers):
            return [(k, json.dumps(a)) for k, a in answers.items()]
        block = answers.block
        head = self._set_id(block.labels).to_bytes(4, "little")
        scores = np.ascontiguousarray(block.rows, dtype="<f8")
        return [(k, head + row.tobytes()) for k, row in zip(answers, scores, strict=True)]

    def _set_id(self, labels: tuple[str, ...]) -> int:
        """The id of ``labels`` in ``label_sets``, stored (and committed) first if new.

        A label set stored for answers whose own write then fails is harmless: ids are never reused."""
        with self._lock:
            set_id = self._set_ids.get(labels)
            if set_id is None:
                text = json.dumps(list(labels))
                self._db.execute("INSERT OR IGNORE INTO label_sets (labels) VALUES (?)", (text,))
                set_id = int(self._db.execute("SELECT id FROM label_sets WHERE labels = ?", (text,)).fetchone()[0])
                self._remember(set_id, labels)
        return set_id

    def _dense(self, key: str, blob: bytes) -> Answer:
        """The answer stored as scores: a little-endian uint32 label-set id, then one float64 per label."""
        set_id = int.from_bytes(blob[:4], "little")
        labels = self._sets.get(set_id)
        if labels is None:
            row = self._db.execute("SELECT labels FROM label_sets WHERE id = ?", (set_id,)).fetchone()
            if row is None:
                raise ValueError(f"{self!r}: answer {key[:12]}... names label set {set_id}, which is not stored")
            labels = self._remember(set_id, json.loads(row[0]))
        if len(blob) != 4 + 8 * len(labels):
            raise ValueError(
                f"{self!r}: answer {key[:12]}... holds {len(blob)} bytes; expected {4 + 8 * len(labels)} "
                f"(a label-set id and {len(labels)} float64 scores)"
            )
        return dict(zip(labels, np.frombuffer(blob, "<f8", offset=4).tolist(), strict=True))  # as DenseAnswers reads

    def _remember(self, set_id: int, labels: Iterable[str]) -> tuple[str, ...]:
        labels = tuple(labels)
        self._set_ids[labels], self._sets[set_id] = set_id, labels
        return labels

    def load_state(self, name: str) -> dict[str, Any] | None:
        """The state saved under ``name``, or ``None``."""
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
        return None if row is None else json.loads(row[0])

    def save_state(self, name: str, state: State) -> None:
        """Replace the state saved under ``name`` (a dict, or a function returning one)."""
        with self._lock:
            self._write_state(name, state)

    def _write_state(self, name: str, state: State) -> None:
        value = state() if callable(state) else state
        self._db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (name, json.dumps(value)))

    def __len__(self) -> int:
        with self._lock:
            if self._memory is not None:
                return len(self._memory)
            return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"AnswerCache({str(self.path) if self.path else 'in memory'!r})"
