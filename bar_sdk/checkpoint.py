"""Checksummed, atomically written state files (checkpoints and saved models).

Layout: an 8-byte magic, the hex SHA-256 of the payload, then the payload
(an ``.npz`` archive of arrays plus one JSON document, no pickle). A file that
is truncated or altered fails the checksum and is refused whole, never
half-loaded. Writes go to a temporary file in the same folder, are flushed
to disk and then renamed over the target, so a crash leaves either the old
file or the new one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bar_sdk.errors import CheckpointError

__all__ = ["write_state", "read_state", "check_writable"]

MAGIC = b"BARSTAT1"
_META = "__meta__"


def write_state(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Atomically write ``arrays`` and the JSON-able ``meta`` to ``path``."""
    buf = io.BytesIO()
    payload_arrays = {k: np.asarray(v) for k, v in arrays.items()}
    payload_arrays[_META] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    np.savez(buf, **payload_arrays)  # type: ignore[arg-type]  # numpy's stub: a **dict might hold allow_pickle
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC + digest + payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_writable(path: str | os.PathLike, name: str = "checkpoint") -> None:
    """Refuse a ``path`` that :func:`write_state` could not write, before anything is paid for.

    Creates the missing parent folders (as the first write would) and
    writes and removes a probe file there.
    """
    target = Path(path)
    if target.is_dir():
        raise CheckpointError(f"{name}={str(path)!r} is a folder; expected a file path")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=target.name + ".", suffix=".probe", dir=target.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CheckpointError(
            f"{name}={str(path)!r} cannot be written ({exc.strerror or exc}); "
            "expected a path in a folder that exists or can be created, and is writable"
        ) from None


def read_state(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`write_state`, verifying its checksum."""
    raw = Path(path).read_bytes()
    if len(raw) < len(MAGIC) + 64 or not raw.startswith(MAGIC):
        raise CheckpointError(f"checkpoint={str(path)!r} is not a bar-sdk state file (bad header or truncated)")
    digest, payload = raw[len(MAGIC) : len(MAGIC) + 64], raw[len(MAGIC) + 64 :]
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise CheckpointError(
            f"checkpoint={str(path)!r} fails its checksum (corrupt or truncated); refusing to load it. "
            "Delete it to start over."
        )
    with np.load(io.BytesIO(payload), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k != _META}
        meta = json.loads(bytes(data[_META]).decode())
    return arrays, meta
