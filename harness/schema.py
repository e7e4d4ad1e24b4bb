"""Schemas for the files the harness reads: every field's type and range, checked when the file is read.

A schema is a tree of small specs (``Str``, ``Int``, ``Num``, ``Bool``, ``Scalar``, ``Opt``, ``List``, ``Map``, ``Obj``,
``Array``, ``Json``); ``Spec.check(value, where)`` raises UsageError naming the field (``records[3].max_ulp``)
and the value, cut to a readable length.  ``read_json`` reads a file strictly (UTF-8, no bare NaN/Infinity,
no number that overflows, a size cap) and checks it against a schema, as a whole, whether or not the command
uses every field: a wrong value is refused where the file is named, not met later as an internal error.
``Array`` checks an encoded array's shape (each size, the element count) before anything is allocated.

May import: the standard library, NumPy, ``errors`` and ``jsonio`` (the ground floor).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any as _Any

from harness.errors import InputError, UsageError
from harness.jsonio import MAX_DIMS, MAX_ELEMENTS, decode_array, loads, read_text

__all__ = ["Array", "Bool", "Int", "Json", "List", "Map", "Num", "Obj", "Opt", "Scalar", "Spec", "Str", "Values", "format_version", "read_json", "short"]

_NONFINITE = ("nan", "inf", "-inf")
# A string field's default cap: a value from another job's file is data, kept whole however long (the reports
# cut it where it lands); the file's own size cap bounds it.
MAX_TEXT = 1 << 30


def _name(where: str) -> str:
    return where or "the file"


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def short(value: _Any, cap: int = 100) -> str:
    """``repr`` of a value from a file, cut to ``cap`` characters (an integer of thousands of digits too)."""
    if type(value) is int and abs(value) >= 10**cap:
        return f"<an integer of {len(str(abs(value)))} digits>"
    text = repr(value)
    return text if len(text) <= cap else f"{text[:cap]}... ({len(text)} characters)"


class Spec:
    """What one field must be."""

    what = "a value"

    def check(self, value: _Any, where: str) -> None:
        if not self.accepts(value):
            raise UsageError(f"{_name(where)}={short(value)} is not {self.what}")

    def accepts(self, value: _Any) -> bool:  # pragma: no cover - every spec overrides check or accepts
        raise NotImplementedError


@dataclass(frozen=True)
class Json(Spec):
    """Any JSON value (its depth is bounded by the reader)."""

    def check(self, value: _Any, where: str) -> None:
        return None


@dataclass(frozen=True)
class Str(Spec):
    max_len: int = MAX_TEXT
    choices: tuple[str, ...] | None = None
    nonempty: bool = False

    @property
    def what(self) -> str:  # type: ignore[override]
        if self.choices is not None:
            return f"one of {', '.join(self.choices)}"
        cap = "" if self.max_len == MAX_TEXT else f" of at most {self.max_len:,} characters"
        return f"a {'non-empty ' if self.nonempty else ''}string{cap}"

    def accepts(self, value: _Any) -> bool:
        return (isinstance(value, str) and len(value) <= self.max_len and (bool(value) or not self.nonempty)
                and (self.choices is None or value in self.choices))  # fmt: skip


@dataclass(frozen=True)
class Int(Spec):
    lo: int | None = 0
    hi: int | None = 2**63 - 1

    @property
    def what(self) -> str:  # type: ignore[override]
        return f"an integer in [{self.lo if self.lo is not None else '-inf'}, {self.hi if self.hi is not None else 'inf'}]"

    def accepts(self, value: _Any) -> bool:
        return (type(value) is int and (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi))  # fmt: skip


@dataclass(frozen=True)
class Num(Spec):
    """A number as jsonio writes one: a finite JSON number, or (``nonfinite``) "nan", "inf", "-inf"."""

    lo: float = -math.inf
    hi: float = math.inf
    nonfinite: bool = True

    @property
    def what(self) -> str:  # type: ignore[override]
        where = "" if (self.lo, self.hi) == (-math.inf, math.inf) else f" in [{self.lo}, {self.hi}]"
        return f"a number{where}" + (' (or "nan", "inf", "-inf")' if self.nonfinite else "")

    def accepts(self, value: _Any) -> bool:
        if isinstance(value, str):
            return self.nonfinite and value in _NONFINITE
        if type(value) not in (int, float):
            return False
        try:
            return self.lo <= float(value) <= self.hi
        except OverflowError:
            return False


@dataclass(frozen=True)
class Scalar(Spec):
    """One setting or version as a run records it: a string (of at most ``max_len``), a finite number (an
    integer within 2**64), a boolean or null."""

    max_len: int = MAX_TEXT

    @property
    def what(self) -> str:  # type: ignore[override]
        cap = "" if self.max_len == MAX_TEXT else f" of at most {self.max_len:,} characters"
        return f"a string{cap}, a finite number, true, false or null"

    def accepts(self, value: _Any) -> bool:
        if isinstance(value, str):
            return len(value) <= self.max_len
        return (value is None or isinstance(value, bool) or (type(value) is int and abs(value) <= 2**64)
                or (type(value) is float and math.isfinite(value)))  # fmt: skip


@dataclass(frozen=True)
class Bool(Spec):
    what = "true or false"

    def accepts(self, value: _Any) -> bool:
        return isinstance(value, bool)


@dataclass(frozen=True)
class Opt(Spec):
    """``spec``, or null."""

    spec: Spec

    def check(self, value: _Any, where: str) -> None:
        if value is not None:
            self.spec.check(value, where)


@dataclass(frozen=True)
class List(Spec):
    item: Spec
    max_len: int = 10_000_000

    def check(self, value: _Any, where: str) -> None:
        if not isinstance(value, list) or len(value) > self.max_len:
            raise UsageError(f"{_name(where)}={short(value)} is not a list of at most {self.max_len:,} items")
        for i, v in enumerate(value):
            self.item.check(v, f"{where}[{i}]")


@dataclass(frozen=True)
class Map(Spec):
    """An object of any string keys, each value a ``value``."""

    value: Spec
    max_len: int = 10_000
    key: Spec = field(default_factory=lambda: Str(1000))

    def check(self, value: _Any, where: str) -> None:
        if not isinstance(value, dict) or len(value) > self.max_len:
            raise UsageError(f"{_name(where)}={short(value)} is not an object of at most {self.max_len:,} fields")
        for k, v in value.items():
            self.key.check(k, f"{_name(where)} key")
            self.value.check(v, _at(where, k))


@dataclass(frozen=True)
class Obj(Spec):
    """An object of the named ``fields`` (those in ``required`` must be there); other keys are refused
    unless ``extra`` says what they may be (``Json()``: a newer or older writer's field, not read)."""

    fields: Mapping[str, Spec]
    required: frozenset[str] = frozenset()
    extra: Spec | None = None

    def check(self, value: _Any, where: str) -> None:
        if not isinstance(value, dict):
            raise UsageError(f"{_name(where)}={short(value)} is not an object")
        for key in sorted(self.required - set(value)):
            raise UsageError(f"{_name(where)} has no {key!r}")
        for k, v in value.items():
            spec = self.fields.get(k, self.extra)
            if spec is None:
                raise UsageError(f"{_name(where)} has unknown field {short(k)}")
            spec.check(v, _at(where, k))


@dataclass(frozen=True)
class Array(Spec):
    """An array as jsonio encodes one (a number, nested lists, {shape, data}, {dtype, shape, b64}), decoded
    to check every element (jsonio checks the shape before it allocates)."""

    def check(self, value: _Any, where: str) -> None:
        decode_array(value, _name(where))


@dataclass(frozen=True)
class Values(Spec):
    """Numbers as a person writes them in a table: a number (``Num``) or nested lists of them, at most
    MAX_DIMS deep and MAX_ELEMENTS in all."""

    number: Num = field(default_factory=Num)

    def check(self, value: _Any, where: str) -> None:
        count = 0

        def walk(v: _Any, at: str, depth: int) -> None:
            nonlocal count
            if isinstance(v, list):
                if depth >= MAX_DIMS:
                    raise UsageError(f"{at} is nested more than {MAX_DIMS} deep")
                for i, x in enumerate(v):
                    walk(x, f"{at}[{i}]", depth + 1)
                return
            count += 1
            if count > MAX_ELEMENTS:
                raise UsageError(f"{_name(where)} holds more than {MAX_ELEMENTS:,} numbers")
            self.number.check(v, at)

        walk(value, _name(where), 0)


def format_version(data: _Any, newest: int, *, key: str = "format_version") -> int:
    """The format version of the JSON object ``data``, a file a reader of versions 0 to ``newest`` takes: its
    ``key``, or 0 where it has none (written before its format had a version; the schema then says whether
    the rest fits).  A newer version is refused as such, before the schema would name a field it does not
    know: UsageError, one line."""
    if not isinstance(data, dict) or key not in data:
        return 0
    version = data[key]
    if type(version) is int and version > newest:
        raise UsageError(f"{key}={short(version)} is newer than this bce-harness reads ({newest}); update it")
    Int(0, newest).check(version, key)
    return version


def read_json(
    path: str | os.PathLike[str], what: str, schema: Spec | None = None, *, max_bytes: int = 1 << 31,
    check: Callable[[_Any], None] | None = None,
) -> _Any:  # fmt: skip
    """The JSON in ``path`` (``what``: "results file", "audit.json"), read strictly and checked against
    ``schema`` (and then ``check``); InputError names the file, the field and the value."""
    path = Path(path)
    text = read_text(path, what, max_bytes=max_bytes)
    try:
        data = loads(text)
    except ValueError as exc:
        raise InputError(f"{path}: not a {what} (not JSON: {exc})") from None
    try:
        if schema is not None:
            schema.check(data, "")
        if check is not None:
            check(data)
    except UsageError as exc:
        raise InputError(f"{path}: {exc}") from None
    return data
