"""A user's function run where it cannot take the harness down: in a child process, with a timeout.

``explain --manual`` and the pytest plugin's diagnosis call code the project did not write.  Such code may
sleep forever, call ``sys.exit`` or ``os._exit``, crash in native code, or print without end; in the
harness's own process each of those would hang it, end it with a status a script reads as "agrees", or
flood its output.  Here the function is imported and called in a fresh interpreter whose output is kept
(the first ``OUTPUT_LIMIT`` bytes) and whose end -- a timeout, an exit, a signal -- is a finding.

``run_calls`` is the calling itself (which arguments the signature takes, the conversion of the result), the
same in the child and, for a function object that cannot be named by import, in the caller's process.

May import: the ground floor and NumPy; never a framework (the user's function imports what it needs).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import InputError, UsageError

__all__ = ["OUTPUT_LIMIT", "Call", "Ran", "Returned", "load_function", "run_calls", "run_isolated"]

OUTPUT_LIMIT = 4096  # bytes of the function's output kept; the rest is counted and dropped
FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64")


@dataclass(frozen=True)
class Call:
    """One call: the positional arrays, the options offered (the function gets those its signature names),
    and when to make it: ``always``, ``if_first_raised`` (the first call raised), ``if_names`` (the first two
    parameters' names are in ``names``, e.g. a prediction named first and a label second)."""

    args: tuple[np.ndarray, ...]
    offered: Mapping[str, Any] = field(default_factory=dict)
    when: str = "always"
    names: tuple[frozenset[str], frozenset[str]] | None = None


@dataclass(frozen=True)
class Returned:
    """What one call gave: its value as float64 and the dtype it had, or the error it raised."""

    value: np.ndarray | None
    dtype: str
    error: str | None


@dataclass(frozen=True)
class Ran:
    """A run of calls: the function's parameter names, one result per call (None: not made, or not reached),
    why the process ended early (None if it did not), and the output the function printed."""

    params: tuple[str, ...]
    results: tuple[Returned | None, ...]
    ended: str | None = None
    output: str = ""
    output_bytes: int = 0


def load_function(spec: str) -> Callable[..., Any]:
    """The function named ``MODULE:FUNCTION`` or ``path/to/file.py:FUNCTION``; anything its import raises is an
    input error naming it (the module is the user's: any exception at its import is theirs, not ours)."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise UsageError(f"--manual={spec!r} is not of the form MODULE:FUNCTION or FILE.py:FUNCTION")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise UsageError(f"--manual={spec!r}: no file {target!r}")
            spec_ = importlib.util.spec_from_file_location(f"_bce_manual_{path.stem}", path)
            assert spec_ is not None and spec_.loader is not None
            module = importlib.util.module_from_spec(spec_)
            sys.modules[spec_.name] = module
            spec_.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
        fn = getattr(module, attr)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's module raising at import is an input error
        text = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise UsageError(f"--manual={spec!r} cannot be loaded ({text})") from None
    if not callable(fn):
        raise UsageError(f"--manual={spec!r} is not callable")
    return fn


def _params(fn: Callable[..., Any]) -> tuple[str, ...]:
    try:
        return tuple(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return ()


def _one(fn: Callable[..., Any], call: Call, params: Sequence[str]) -> Returned:
    kwargs = {k: v for k, v in call.offered.items() if k in params}
    try:
        out = fn(*call.args, **kwargs)
        arr = np.asarray(out)
        name = str(arr.dtype)
        value = arr.astype(np.float64)
    except BaseException as exc:  # noqa: BLE001 - the user's code raising (SystemExit included) is a result
        if isinstance(exc, KeyboardInterrupt):
            raise
        return Returned(None, "", " ".join(f"{type(exc).__name__}: {exc}".split())[:500])
    return Returned(value, name if name in FLOAT_NAMES else "float64", None)


def _wanted(call: Call, params: Sequence[str], first: Returned | None) -> bool:
    if call.when == "if_first_raised":
        return first is not None and first.error is not None
    if call.when == "if_names":
        return call.names is not None and len(params) >= 2 and params[0] in call.names[0] and params[1] in call.names[1]
    return True


def run_calls(fn: Callable[..., Any], calls: Sequence[Call], report: Callable[[int, Returned], None] | None = None) -> Ran:
    """Make ``calls`` on ``fn`` in this process, each as its ``when`` says."""
    params = _params(fn)
    results: list[Returned | None] = []
    for i, call in enumerate(calls):
        r = _one(fn, call, params) if _wanted(call, params, results[0] if results else None) else None
        results.append(r)
        if r is not None and report is not None:
            report(i, r)
    return Ran(params, tuple(results))


# -- the child process ----------------------------------------------------------------------------------------


def _child(folder: str) -> None:
    """The child's work: load the function, make the calls, leave each result in ``folder`` as it comes."""
    work = Path(folder)
    payload = pickle.loads((work / "payload.pkl").read_bytes())
    sys.path[:] = payload["sys_path"]
    try:
        fn = load_function(payload["spec"])
    except UsageError as exc:
        (work / "load_error.txt").write_text(str(exc), encoding="utf-8")
        return
    except BaseException as exc:  # noqa: BLE001 - SystemExit at the module's import
        (work / "load_error.txt").write_text(f"--manual={payload['spec']!r} cannot be loaded ({type(exc).__name__}: {exc})", encoding="utf-8")
        return
    (work / "params.pkl").write_bytes(pickle.dumps(_params(fn)))

    def report(i: int, r: Returned) -> None:
        (work / f"result-{i}.pkl").write_bytes(pickle.dumps(r))

    run_calls(fn, payload["calls"], report)
    (work / "done").write_text("")


class _Tail(threading.Thread):
    """Reads the child's output to its end: keeps the first OUTPUT_LIMIT bytes, counts the rest."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.kept = bytearray()
        self.total = 0

    def run(self) -> None:
        while chunk := self.stream.read(65536):
            self.total += len(chunk)
            if len(self.kept) < OUTPUT_LIMIT:
                self.kept += chunk[: OUTPUT_LIMIT - len(self.kept)]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def run_isolated(spec: str, calls: Sequence[Call], *, timeout: float = 60.0) -> Ran:
    """Make ``calls`` on the function ``spec`` names, in a child interpreter that gets ``timeout`` seconds in
    all (its import included).  A function that cannot be loaded is an input error (exit 2); one that hangs,
    exits or is killed gives a ``Ran`` whose ``ended`` says so, with the results it gave before."""
    if not timeout > 0:
        raise UsageError(f"manual_timeout={timeout!r} is not a positive number of seconds")
    home = str(Path(__file__).resolve().parents[2])  # the folder holding this harness package
    code = f"import sys; sys.path.insert(0, {home!r}); from harness.run.sandbox import _child; _child(sys.argv[1])"
    with tempfile.TemporaryDirectory(prefix="bce-manual-") as folder:
        work = Path(folder)
        path = [os.getcwd() if p == "" else p for p in sys.path]
        (work / "payload.pkl").write_bytes(pickle.dumps({"spec": spec, "calls": list(calls), "sys_path": path}))
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter, our own code
            [sys.executable, "-c", code, folder], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        tail = _Tail(proc.stdout)
        tail.start()
        try:
            proc.wait(timeout=timeout)
            ended = None
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the child and whatever it started
            except ProcessLookupError:
                pass
            proc.wait()
            ended = f"did not finish within {timeout:g} s (--manual-timeout); it was stopped"
        tail.join(timeout=5)
        output = tail.kept.decode("utf-8", errors="replace")
        if (work / "load_error.txt").exists():
            raise InputError((work / "load_error.txt").read_text(encoding="utf-8"))
        if not (work / "params.pkl").exists():
            how = ended or _ending(proc.returncode)
            raise InputError(f"--manual={spec!r} cannot be loaded: its import {how}")
        params = pickle.loads((work / "params.pkl").read_bytes())
        results = tuple(
            pickle.loads((work / f"result-{i}.pkl").read_bytes()) if (work / f"result-{i}.pkl").exists() else None
            for i in range(len(calls))
        )  # fmt: skip
        if ended is None and not (work / "done").exists():
            ended = _ending(proc.returncode)
        return Ran(params, results, ended, output, tail.total)


def _ending(code: int | None) -> str:
    if code is not None and code < 0:
        name = _signal_name(-code)
        crash = " (a crash in native code)" if name in ("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT") else ""
        return f"ended the process with {name}{crash}"
    return f"ended the process with exit status {code} (sys.exit or os._exit) before returning"
