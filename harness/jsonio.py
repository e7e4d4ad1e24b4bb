"""Lossless JSON for arrays and numbers, and atomic file writes.

JSON has no NaN or infinity, so non-finite numbers are written as the strings "nan", "inf" and "-inf";
finite numbers are written with ``repr`` (shortest round-trip form), so float64 values survive exactly.
Files are written to a temporary name in the same folder and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import InputError, UsageError

__all__ = [
    "read_text",
    "MAX_DIMS",
    "MAX_ELEMENTS",
    "atomic_write_text",
    "decode_array",
    "decode_number",
    "dumps",
    "encode_array",
    "encode_number",
    "loads",
    "pack_array",
    "read_toml",
    "strict_float",
]

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def encode_number(x: float | bool | None) -> Any:
    """A JSON-safe form of one number: floats that are not finite become strings."""
    if x is None or isinstance(x, (bool, int, np.bool_)):
        return None if x is None else (bool(x) if isinstance(x, (bool, np.bool_)) else int(x))
    if isinstance(x, np.integer):
        return int(x)
    f = float(x)
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f


def decode_number(x: Any, name: str = "value") -> float:
    """A number as JSON holds it: a number, or one of the strings "nan", "inf", "-inf"; never a boolean."""
    if isinstance(x, bool):
        raise UsageError(f"{name}={x!r} is a boolean, not a number")
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, str) and x in _NONFINITE:
        return _NONFINITE[x]
    raise UsageError(f"{name}={x!r} is not a number")


def encode_array(a: np.ndarray | None) -> Any:
    """Nested lists for an array (a bare number for 0-d), booleans and integers kept as such."""
    if a is None:
        return None
    a = np.asarray(a)
    kind = _kind(a)
    if kind != "float64":
        return {"dtype": kind, "shape": list(a.shape), "data": a.ravel().tolist()}
    values = a.astype(np.float64, copy=False).ravel()
    flat = values.tolist()
    # A finite sum means every element is finite (a NaN or an infinity makes it NaN or infinite), and then
    # the floats go out as they are; otherwise the non-finite ones are replaced.  This runs for every array
    # of a report, and a Python call per element was most of a report's time.
    if not math.isfinite(sum(flat)):
        for i in np.flatnonzero(~np.isfinite(values)).tolist():
            flat[i] = encode_number(flat[i])
    return flat[0] if a.ndim == 0 else {"shape": list(a.shape), "data": flat}


def _kind(a: np.ndarray) -> str:
    """What an array is written as, by both encodings: booleans, integers (as int64) or floats (float64)."""
    return "bool" if a.dtype.kind == "b" else "int64" if a.dtype.kind in "iu" else "float64"


# pack_array's element types: little-endian whatever the machine, so a file reads the same everywhere
_PACKED = {"float64": "<f8", "bool": "|b1", "int64": "<i8"}


def pack_array(a: np.ndarray | None) -> Any:
    """``encode_array``'s compact form for files only the harness reads (the record stream): the bytes of the
    array in base64.  Exact like the list form (NaN, infinities and signed zeros included), and several
    times faster to write and read: a float's decimal form costs about a microsecond to print here."""
    if a is None:
        return None
    a = np.asarray(a)
    kind = _kind(a)
    data = np.ascontiguousarray(a, dtype=_PACKED[kind]).tobytes()
    return {"dtype": kind, "shape": list(a.shape), "b64": base64.b64encode(data).decode("ascii")}


def _unpack_array(x: dict[str, Any], name: str) -> np.ndarray:
    if set(x) != {"dtype", "shape", "b64"}:
        raise UsageError(f"{name} must have the keys 'dtype', 'shape' and 'b64'")
    kind, shape = x["dtype"], _shape(x["shape"], name)
    if kind not in _PACKED:
        raise UsageError(f"{name}.dtype={kind!r} is not one of {', '.join(_PACKED)}")
    try:
        data = base64.b64decode(x["b64"], validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise UsageError(f"{name}.b64 is not base64") from None
    size = math.prod(shape) * np.dtype(_PACKED[kind]).itemsize
    if len(data) != size:
        raise UsageError(f"{name}.b64 holds {len(data)} bytes, not the {size} of shape {shape}")
    return np.frombuffer(data, dtype=_PACKED[kind]).astype(kind).reshape(shape)


MAX_DIMS = 32  # an array's dimensions: NumPy's own limit is 64, no case of the harness has more than a handful
MAX_ELEMENTS = 1 << 31  # an array's element count (and each size): more than any run writes, less than NumPy's limit


def _shape(shape: Any, name: str) -> list[int]:
    """An array's shape from a file, checked before anything is allocated for it: at most MAX_DIMS sizes,
    none and their product no more than MAX_ELEMENTS (``[0, 2**64]`` holds no element, yet NumPy refuses it)."""
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(type(s) is int and s >= 0 for s in shape):
        text = repr(shape) if len(repr(shape)) <= 100 else repr(shape)[:100] + "..."
        raise UsageError(f"{name}.shape={text} is not a list of at most {MAX_DIMS} sizes")
    if any(s > MAX_ELEMENTS for s in shape) or math.prod(shape) > MAX_ELEMENTS:
        raise UsageError(f"{name}.shape={shape!r} holds more than {MAX_ELEMENTS:,} elements")
    return shape


def decode_array(x: Any, name: str = "array") -> np.ndarray:
    """Inverse of ``encode_array`` and ``pack_array``: float64 (or bool/int64) ndarray.  Raises UsageError
    naming ``name``."""
    if isinstance(x, dict) and "b64" in x:
        return _unpack_array(x, name)
    if isinstance(x, dict):
        if set(x) - {"dtype"} != {"shape", "data"}:
            raise UsageError(f"{name} must have the keys 'shape' and 'data' (and optionally 'dtype')")
        shape = _shape(x["shape"], name)
        data = x["data"]
        if not isinstance(data, list) or len(data) != math.prod(shape):
            raise UsageError(f"{name}.data does not hold {math.prod(shape)} numbers")
        kind = x.get("dtype", "float64")
        if kind not in ("float64", "bool", "int64"):
            raise UsageError(f"{name}.dtype={kind!r} is not one of float64, bool, int64")
        if kind == "bool":
            if not all(isinstance(v, bool) for v in data):
                raise UsageError(f"{name}.data holds a value that is not a boolean")
            return np.asarray(data, dtype=np.bool_).reshape(shape)
        if kind == "int64":
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in data):
                raise UsageError(f"{name}.data holds a value that is not an integer")
            try:
                return np.asarray(data, dtype=np.int64).reshape(shape)
            except OverflowError:
                raise UsageError(f"{name}.data holds an integer outside int64") from None
        values = [decode_number(v, f"{name}.data[{i}]") for i, v in enumerate(data)]
        return np.asarray(values, dtype=np.float64).reshape(shape)
    if isinstance(x, (bool, int, float, str)):
        return np.asarray(decode_number(x, name), dtype=np.float64)
    if isinstance(x, list):
        leaves = list(_leaves(x))
        if any(isinstance(v, bool) for v in leaves) and not all(isinstance(v, bool) for v in leaves):
            raise UsageError(f"{name} mixes booleans with numbers; a boolean array holds only true and false")
        try:
            a = np.asarray(x)
        except ValueError:
            raise UsageError(f"{name} is a ragged list") from None
        if a.dtype == np.bool_ or np.issubdtype(a.dtype, np.integer) or a.size == 0:
            return a if a.size else a.astype(np.float64)
        raise UsageError(f"{name} is a list of {a.dtype}; floats are stored as {{'shape', 'data'}}")
    raise UsageError(f"{name}={x!r} is not an array")


def _leaves(x: Any) -> Any:
    for v in x:
        if isinstance(v, list):
            yield from _leaves(v)
        else:
            yield v


def strict_float(text: str) -> float:
    """``parse_float`` for JSON and TOML readers: a number too large for a float64 (``1e400``) is refused
    instead of read as infinity, and so are TOML's bare ``inf`` and ``nan``; non-finite values are written
    as the strings "nan", "inf", "-inf"."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f'{text} is not a finite float64; write the string "nan", "inf" or "-inf"')
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f'bare {name} is not JSON; write the string "nan", "inf" or "-inf"')


def loads(text: str) -> Any:
    """``json.loads``, strictly: no bare NaN/Infinity, no number that overflows to infinity.  Raises
    ValueError (json.JSONDecodeError for the syntax) with the reason."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=strict_float)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_text(path: Path, what: str, *, max_bytes: int | None = None, invalid: str | None = None) -> str:
    """The UTF-8 text of ``path`` (``what`` names it in the errors: "registry file", "audit.json"), at most
    ``max_bytes`` long; InputError names the file and what is wrong (``invalid``: how an undecodable file is
    described, "not a <what>" by default): the one reader every input format uses."""
    try:
        if max_bytes is not None:
            size = path.stat().st_size
            if size > max_bytes:
                raise InputError(f"{path}: {what} of {size:,} bytes is over the limit of {max_bytes:,}")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a {what}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: {invalid or 'not a ' + what} (not UTF-8: {exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None


def read_toml(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """The table of a TOML file (``what``: "registry", "special-case table"), strictly: non-finite numbers
    only as the strings "nan", "inf", "-inf".  InputError names the file and what is wrong."""
    path = Path(path)
    text = read_text(path, f"{what} file", invalid="not valid TOML")
    try:
        return tomllib.loads(text, parse_float=strict_float)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    except ValueError as exc:
        raise InputError(f"{path}: not a valid {what} ({exc})") from None
    except RecursionError:
        raise InputError(f"{path}: not a valid {what} (nested too deeply)") from None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` so that the file is either the old one or the complete new one, with the
    permissions ``open`` would give a new file (the user's umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes the file 0600; a report is the user's, as open() makes it
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:  # a full disk (ENOSPC) names no file
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        raise
    return path


def dumps(obj: Any) -> str:
    """JSON text of an object already made JSON-safe; refuses bare NaN so nothing lossy slips out.

    The top-level keys one per line, and a list under one of them one item per line: a report of thousands
    of records stays readable and diffable line by line, and each item goes through the C encoder (an
    ``indent`` anywhere makes ``json`` encode in pure Python, several times slower on a large report).
    """
    if not isinstance(obj, dict):
        return json.dumps(obj, allow_nan=False) + "\n"
    lines = []
    for key, value in obj.items():
        head = f"{json.dumps(key)}: "
        if isinstance(value, list) and value:
            items = ",\n  ".join(json.dumps(v, allow_nan=False) for v in value)
            lines.append(f"{head}[\n  {items}\n ]")
        else:
            lines.append(head + json.dumps(value, indent=1, allow_nan=False).replace("\n", "\n "))
    return "{\n " + ",\n ".join(lines) + "\n}\n"
