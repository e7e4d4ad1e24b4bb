"""The one appender and the one reader of every JSON-lines file the harness writes (the record stream, the
job-level findings, a large run's summarised passes).

A file starts with a header line ``{KEY: VERSION, ...}`` (its format's key and version, and whatever the
format keeps there), then one JSON value per line, each written whole and flushed the moment it is made, so
a run killed at any point leaves a file whose complete lines are all good.  ``JsonlAppender(append=True)``
continues such a file after cutting a torn last line (reading back from its end only: a million-line file
is never read whole here); ``read_jsonl`` checks the header's version against the ones a reader knows and
yields the lines, ignoring a torn last one.  A full disk is named by the file it filled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Self

from harness.errors import InputError

__all__ = ["JsonlAppender", "read_jsonl", "trim_torn_line"]


def trim_torn_line(path: Path) -> None:
    """Cut a torn last line (a run killed mid-write), reading the file back from its end only to the last
    newline."""
    with path.open("r+b") as f:
        end = f.seek(0, os.SEEK_END)
        pos = end
        while pos > 0:
            step = min(pos, 1 << 16)
            f.seek(pos - step)
            chunk = f.read(step)
            if pos == end and chunk.endswith(b"\n"):
                return  # the last line is whole
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                f.truncate(pos - step + newline + 1)
                return
            pos -= step
        if end:
            f.truncate(0)


class JsonlAppender:
    """Appends JSON values to ``path``, one flushed line each, after the header ``header`` (written when the
    file is started, not when ``append`` continues it)."""

    def __init__(self, path: str | Path, header: Mapping[str, Any], *, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not (append and self.path.exists() and self.path.stat().st_size > 0)
        if not fresh:
            trim_torn_line(self.path)
            fresh = self.path.stat().st_size == 0  # (only a torn header was there)
        self._file: IO[str] | None = self.path.open("w" if fresh else "a", encoding="utf-8")
        if fresh:
            self.write(dict(header))

    def write(self, obj: Any) -> None:
        self.write_line(json.dumps(obj, allow_nan=False, separators=(",", ":")))

    def write_line(self, line: str) -> None:
        """A value already encoded as one line of JSON (no newline in it)."""
        if self._file is None:
            raise ValueError(f"{self.path}: written after close")
        try:
            self._file.write(line + "\n")
            self._file.flush()
        except OSError as exc:
            raise _named(exc, self.path) from None

    def close(self) -> None:
        """Flush and fsync (what was appended is on disk when close returns), then close; a second close is
        nothing."""
        f, self._file = self._file, None
        if f is None:
            return
        try:
            f.flush()
            os.fsync(f.fileno())
        except OSError as exc:
            try:
                f.close()  # (its own flush fails again: the first error is the one to tell)
            except OSError:
                pass
            raise _named(exc, self.path) from None
        f.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _named(exc: OSError, path: Path) -> OSError:
    """A full disk (ENOSPC) names no file: name the one being written."""
    if exc.errno is not None and exc.filename is None:
        return type(exc)(exc.errno, exc.strerror, str(path))
    return exc


def read_jsonl(
    path: str | Path,
    key: str,
    versions: tuple[int, ...],
    what: str,
    *,
    loads: Callable[[str], Any] = json.loads,
    headerless: bool = False,
    raw: bool = False,
) -> tuple[dict[str, Any], Iterator[tuple[int, Any]]]:
    """The header of the JSON-lines file ``path`` and its values one at a time with their line numbers (a
    torn last line is left out).  ``key``: the header's version field, which must be one of ``versions``;
    ``what``: the file's name in an error; ``headerless``: a file written before it had a header is read as
    version 0 (its first line is a value); ``raw``: each value is its line's text, unparsed (a copy of the lines
    as written).  Every failure is an InputError of one line naming the file."""
    path = Path(path)
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no {what} here") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc})") from None

    def decoded(raw: bytes, n: int) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            f.close()
            raise InputError(f"{path}: cannot read the {what} (line {n}: {exc})") from None

    try:
        first = f.readline()
    except OSError as exc:
        f.close()
        raise InputError(f"{path}: cannot read the {what} ({exc})") from None
    text = decoded(first, 1)
    if not text.strip() or not first.endswith(b"\n"):
        f.close()
        raise InputError(f"{path}: the {what} is empty")
    try:
        head = loads(text)
    except ValueError:
        f.close()
        raise InputError(f"{path}: line 1 is not JSON (is this a {what} written by bce-harness?)") from None
    pending: list[tuple[int, Any]] = []
    if not (isinstance(head, dict) and key in head):
        if not headerless:
            f.close()
            raise InputError(f"{path}: line 1 is not the header of a {what} (is this a {what} written by bce-harness?)")
        pending.append((1, head))
        head = {key: 0}
    if head[key] not in versions:
        f.close()
        raise InputError(f"{path}: {what} version {head[key]!r} is not one this bce-harness reads ({', '.join(map(str, versions))})")

    def values() -> Iterator[tuple[int, Any]]:
        with f:
            yield from pending
            for n, data in enumerate(f, start=2):
                if not data.endswith(b"\n"):
                    return  # the text after the last newline may be torn
                line = decoded(data, n)
                if not line.strip():
                    continue
                if raw:
                    yield n, line.rstrip("\n")
                    continue
                try:
                    yield n, loads(line)
                except ValueError:
                    raise InputError(f"{path}: line {n} is not JSON") from None

    return head, values()
