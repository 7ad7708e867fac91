"""The Open Inference Protocol's tensors on the wire: JSON ``data`` lists and the binary tensor extension.

Shared by the client preset (:mod:`bar_sdk.adapters.remote.presets.open_inference`) and the local server
(:mod:`bar_sdk.adapters.server.open_inference`).
"""

from __future__ import annotations

import functools
import json
import struct
from typing import Any, Sequence

import numpy as np

from bar_sdk.errors import InvalidInputError, ResponseFormatError

__all__ = ["Levels", "encode_tensors", "decode_tensors", "DATATYPES", "HEADER_LENGTH"]

HEADER_LENGTH = "Inference-Header-Content-Length"
"""Header of the binary tensor extension: bytes of JSON before the raw tensors."""

DATATYPES: dict[str, str] = {
    "BOOL": "|b1",
    "UINT8": "|u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "|i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
"""The protocol's numeric datatypes as little-endian NumPy dtypes (``BYTES`` is handled apart)."""

_INPUT_TYPES = ("FP32", "FP64", "UINT8")
_LAYOUTS = ("NCHW", "NHWC", "FLAT")


class Levels:
    """A tensor given as 8-bit levels and what each level stands for in ``datatype``.

    ``k`` for ``UINT8``; ``k / 255`` (``scale=255``) or ``k`` for floats. The
    value of each of the 256 levels is computed once, so a float tensor is one
    table lookup, and its JSON text is a join of 256 precomputed strings (the
    same text ``json.dumps`` writes for those floats), not 150k float reprs.
    Binary bodies take the quotient in one vectorised pass.
    """

    __slots__ = ("levels", "datatype", "scale")

    def __init__(self, levels: np.ndarray, datatype: str, scale: float = 1.0) -> None:
        if levels.dtype != np.uint8:
            raise InvalidInputError(f"levels have dtype {levels.dtype}; expected uint8")
        self.levels, self.datatype, self.scale = levels, datatype, float(scale)

    @property
    def shape(self) -> list[int]:
        return list(self.levels.shape)

    def values(self) -> np.ndarray:
        dtype = np.dtype(DATATYPES[self.datatype])
        if self.scale == 1.0:  # UINT8 levels travel as they are: no copy before the body's own
            return self.levels.astype(dtype, copy=False)
        # One pass, and the same correctly rounded quotient as the table (3x faster than a gather).
        quotient: np.ndarray = np.divide(self.levels, dtype.type(self.scale), dtype=dtype)
        return quotient

    def json_text(self) -> str:
        return "[" + ",".join(_level_table(self.datatype, self.scale)[1][self.levels.ravel()]) + "]"


@functools.lru_cache(maxsize=None)
def _level_table(datatype: str, scale: float) -> tuple[np.ndarray, np.ndarray]:
    dtype = np.dtype(DATATYPES[datatype])
    values = np.arange(256, dtype=dtype)
    if scale != 1.0:
        values = values / dtype.type(scale)  # one correctly rounded division, as x.astype(dtype) / 255
    text = np.array([json.dumps(v) for v in values.tolist()], dtype=object)
    return values, text


def encode_tensors(
    doc: dict[str, Any], key: str, tensors: Sequence[tuple[dict[str, Any], Any]], binary: bool
) -> tuple[bytes, int | None]:
    """An inference request or response body, and the JSON header's length when ``binary``.

    ``doc`` holds the other fields (``id``, ``outputs`` wanted, ...); ``key``
    is ``"inputs"`` or ``"outputs"``; each tensor is ``(meta, values)`` with
    ``meta`` holding ``name``, ``datatype`` and ``shape`` and ``values`` an
    array, a :class:`Levels`, or a list of ``bytes`` for ``BYTES``.
    """
    entries, blobs, spliced = [], [], {}
    for j, (meta, values) in enumerate(tensors):
        entry = dict(meta)
        if binary:
            blob = (
                np.ascontiguousarray(values.values()).data
                if isinstance(values, Levels)
                else _to_bytes(meta["datatype"], values)
            )
            entry["parameters"] = {**entry.get("parameters", {}), "binary_data_size": blob.nbytes}
            blobs.append(blob)
        elif isinstance(values, Levels):
            mark = f"@@levels{j}@@"
            entry["data"] = mark
            spliced[json.dumps(mark)] = values.json_text()
        elif meta["datatype"] == "BYTES":
            entry["data"] = [v.decode("utf-8", errors="replace") for v in values]
        else:
            entry["data"] = np.asarray(values).reshape(-1).tolist()
        entries.append(entry)
    text = json.dumps({**doc, key: entries}, separators=(",", ":"))
    for mark, data in spliced.items():
        text = text.replace(mark, data, 1)
    header = text.encode()
    return (b"".join([header, *blobs]), len(header)) if binary else (header, None)


def decode_tensors(
    body: bytes, header_length: Any, key: str, what: str
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], Any]]]:
    """``(doc, [(meta, values), ...])`` from a body :func:`encode_tensors` wrote (or a server did).

    ``values`` is a NumPy array shaped as ``meta["shape"]`` for numeric types
    and a list of ``bytes`` for ``BYTES``. Raises ResponseFormatError naming
    what is wrong.
    """
    n_header = len(body)
    if header_length is not None:
        try:
            n_header = int(header_length)
        except (TypeError, ValueError):
            raise ResponseFormatError(f"{what}: {HEADER_LENGTH}={header_length!r}; expected a byte count") from None
        if not 0 < n_header <= len(body):
            raise ResponseFormatError(f"{what}: {HEADER_LENGTH}={n_header} but the body has {len(body)} bytes")
    try:
        doc = json.loads(body[:n_header])
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ResponseFormatError(
            f"{what}: the JSON part is not valid JSON ({type(exc).__name__}); starts {body[:120]!r}"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise ResponseFormatError(
            f"{what} has no {key!r} list (keys there: "
            f"{sorted(doc)[:8] if isinstance(doc, dict) else type(doc).__name__})"
        )
    offset, tensors = n_header, []
    for j, entry in enumerate(doc[key]):
        where = f"{what} {key}.{j}"
        if not isinstance(entry, dict):
            raise ResponseFormatError(f"{where} is {type(entry).__name__}; expected an object")
        datatype, shape = entry.get("datatype"), entry.get("shape")
        if datatype != "BYTES" and datatype not in DATATYPES:
            raise ResponseFormatError(f"{where}.datatype={datatype!r}; expected one of BYTES, {', '.join(DATATYPES)}")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise ResponseFormatError(f"{where}.shape={shape!r}; expected a list of non-negative integers")
        size = (entry.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(body):
                raise ResponseFormatError(
                    f"{where}: binary_data_size={size!r} does not fit the {len(body) - offset} bytes left in the body"
                )
            values = _from_bytes(datatype, body[offset : offset + size], shape, where)
            offset += size
        elif "data" in entry:
            values = _from_json(datatype, entry["data"], shape, where)
        else:
            raise ResponseFormatError(f"{where} has neither 'data' nor parameters.binary_data_size")
        tensors.append((entry, values))
    return doc, tensors


def _count(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def _to_bytes(datatype: str, values: Any) -> memoryview:
    if datatype == "BYTES":
        return memoryview(b"".join(struct.pack("<I", len(v)) + v for v in values))
    return np.ascontiguousarray(values, dtype=DATATYPES[datatype]).data


def _from_bytes(datatype: str, raw: bytes, shape: list[int], where: str) -> Any:
    n = _count(shape)
    if datatype == "BYTES":
        out, pos = [], 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise ResponseFormatError(f"{where}: a BYTES element's length is cut short")
            (length,) = struct.unpack_from("<I", raw, pos)
            if pos + 4 + length > len(raw):
                raise ResponseFormatError(f"{where}: a BYTES element of {length} bytes runs past the tensor")
            out.append(raw[pos + 4 : pos + 4 + length])
            pos += 4 + length
        if len(out) != n:
            raise ResponseFormatError(f"{where} holds {len(out)} BYTES elements; shape {shape} needs {n}")
        return out
    dtype = np.dtype(DATATYPES[datatype])
    if len(raw) != n * dtype.itemsize:
        raise ResponseFormatError(
            f"{where} has {len(raw)} bytes; shape {shape} of {datatype} needs {n * dtype.itemsize}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _from_json(datatype: str, data: Any, shape: list[int], where: str) -> Any:
    n = _count(shape)
    flat = _flatten(data, where)
    if len(flat) != n:
        raise ResponseFormatError(f"{where}.data holds {len(flat)} values; shape {shape} needs {n}")
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise ResponseFormatError(f"{where}.data: expected strings for BYTES")
        return [v.encode() for v in flat]
    if not all(isinstance(v, (int, float)) and (datatype == "BOOL" or not isinstance(v, bool)) for v in flat):
        bad = next(v for v in flat if not isinstance(v, (int, float)) or isinstance(v, bool))
        raise ResponseFormatError(f"{where}.data holds {bad!r}; expected numbers for {datatype}")
    try:
        return np.asarray(flat, dtype=np.float64 if datatype.startswith("FP") else DATATYPES[datatype]).reshape(shape)
    except (OverflowError, ValueError) as exc:
        raise ResponseFormatError(f"{where}.data cannot be read as {datatype} ({exc})") from None


def _flatten(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise ResponseFormatError(f"{where}.data is {type(data).__name__}; expected a list")
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    for v in data:  # the protocol allows nested lists in row-major order
        out.extend(_flatten(v, where) if isinstance(v, list) else [v])
    return out
