"""Report files: the output folder, checked before any query, and JSON documents with NumPy values."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from bar_sdk.errors import InvalidInputError

__all__ = ["check_out_dir", "write_json"]

logger = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


@overload
def check_out_dir(value: Any, name: str = ..., *, allow_none: Literal[False]) -> Path: ...
@overload
def check_out_dir(value: Any, name: str = ..., *, allow_none: bool = ...) -> Path | None: ...
def check_out_dir(value: Any, name: str = "out_dir", *, allow_none: bool = True) -> Path | None:
    """Return ``value`` as a folder that exists and is writable (created if needed), or None.

    Called with the other argument checks, so a bad folder is refused
    before any query is spent rather than after the run.
    """
    if value is None and allow_none:
        return None
    not_a_path = f"{name}={value!r}; expected a folder path (str or os.PathLike) or None"
    if not isinstance(value, (str, os.PathLike)) or (isinstance(value, str) and not value):
        raise InvalidInputError(not_a_path)
    try:
        path = Path(value)
        path.mkdir(parents=True, exist_ok=True)
    except TypeError:  # an os.PathLike whose __fspath__ returns bytes or another non-str
        raise InvalidInputError(not_a_path) from None
    except OSError as err:  # a file in the way, no permission, read-only file system, ...
        raise InvalidInputError(
            f"{name}={str(value)!r} cannot be created as a folder ({err.strerror or type(err).__name__}); "
            "expected a writable folder"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{name}={str(value)!r} is not writable; expected a writable folder")
    return path


def write_json(path: str | Path, document: dict[str, Any]) -> Path:
    """Write ``document`` (NumPy values allowed) as indented JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(document), indent=2, sort_keys=False) + "\n")
    return path
