"""Worker processes: TensorFlow runs outside the harness's own process, so a case that kills or hangs it
costs one record, not the run.

The parent hands out *jobs* (lists of cases) to N spawned workers over pipes.  Each worker imports
TensorFlow once, evaluates reference, target (``TFTarget.run_many``, which stacks what it can) and
comparison for every case of a job, and sends the results back.  When a worker dies (abort, segfault) or
a job exceeds its time limit, the worker is replaced and the job's cases are retried one per job, which
pins the culprit: it becomes a ``crash`` or ``timeout`` result, and every other case still gets its own.

The parent imports neither TensorFlow nor anything that does.
"""

from __future__ import annotations

import contextlib
import faulthandler
import itertools
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from harness.case import Case, Outcome
from harness.errors import HarnessError, TargetUnavailable
from harness.judge.compare import Comparison
from harness.run.evaluate import CaseResult, evaluate

__all__ = ["WorkerPool", "default_workers"]

# A worker that does not report ready within this many seconds of starting is given up on: TensorFlow
# imports in 2-10 s on this class of machine.
STARTUP_SECONDS = 180.0
CRASH_REAP_SECONDS = 10.0  # how long a crashed worker may take to exit before it is killed
# asks a hung worker for its Python traceback (faulthandler) before it is killed; POSIX only
HANG_SIGNAL: signal.Signals | None = getattr(signal, "SIGUSR1", None)
HANG_TRACE_SECONDS = 1.0  # how long the parent waits for that traceback
TAIL_BYTES = 4096  # how much of a crashed or hung worker's last output its record keeps


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _no_core_dumps() -> None:
    """A worker that aborts leaves no core file.  The crash is a record with its reproduction, and the core of
    a process with TensorFlow loaded is gigabytes: writing it keeps the dying worker alive (and holding the
    run's stdout) for as long as the disk takes, which stalls the parent's reaping and its exit."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):  # not POSIX, or not permitted: keep the system's setting
        pass


def _capture_output(log: str) -> None:
    """The worker's file descriptors 1 and 2 go to ``log``: what TensorFlow or a loss prints stays out of the
    run's own output, and the end of it (with the Python traceback that faulthandler writes on a fatal
    signal, or on HANG_SIGNAL) goes into the record of the case that crashed or hung."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for target_fd in (1, 2):
        os.dup2(fd, target_fd)
    os.close(fd)
    sys.stdout.reconfigure(line_buffering=True)  # what a loss prints before it crashes is not lost in a buffer
    faulthandler.enable(all_threads=False)
    if HANG_SIGNAL is not None:
        faulthandler.register(HANG_SIGNAL, all_threads=False)


def _worker_main(conn: Connection, factory_spec: str | None, profile: str, log: str) -> None:
    """Loop of one worker: build the target, then evaluate jobs until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _no_core_dumps()
    _capture_output(log)
    from harness.target import TFTarget, load_factory

    try:
        target = TFTarget(loss_factory=load_factory(factory_spec), threads=1)
        conn.send(("ready", target.versions()))
    except HarnessError as exc:
        conn.send(("fatal", type(exc).__name__, str(exc)))
        return
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        job_id, jobs = message
        sys.stdout.flush()
        os.ftruncate(1, 0)  # the log holds the current job's output only (appends go on at the new end)
        conn.send(("done", job_id, evaluate(jobs, target, profile)))


@dataclass
class _Slot:
    process: Any
    conn: Connection
    log: str
    ready: bool = False
    job: tuple[int, list[tuple[int, Case]]] | None = None
    started: float = 0.0
    spawned: float = 0.0


class WorkerPool:
    """N TensorFlow worker processes with crash and hang recovery.

    ``run(jobs)`` yields a ``CaseResult`` per case as results come in (not in order).  A job that kills
    its worker or outlives ``timeout`` seconds is split into single-case jobs; a single case that does
    either becomes a ``crash`` or ``timeout`` result.
    """

    def __init__(self, workers: int, *, factory: str | None = None, profile: str = "keras3", timeout: float = 120.0):
        self.workers = workers
        self.factory = factory
        self.profile = profile
        self.timeout = timeout
        self.versions: dict[str, Any] = {}
        self._ctx = mp.get_context("spawn")
        self._slots: list[_Slot] = []
        self._logs: tempfile.TemporaryDirectory[str] | None = None
        self._spawned = itertools.count()

    # -- lifecycle ---------------------------------------------------------------------------------------

    def _spawn(self) -> _Slot:
        if self._logs is None:
            self._logs = tempfile.TemporaryDirectory(prefix="bce-harness-workers-")
        log = os.path.join(self._logs.name, f"worker-{next(self._spawned)}.log")
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_worker_main, args=(child, self.factory, self.profile, log), daemon=True, name="bce-harness-worker"
        )
        process.start()
        child.close()
        return _Slot(process, parent, log, spawned=time.monotonic())

    def _kill(self, slot: _Slot) -> None:
        if slot.process.is_alive():
            slot.process.kill()
        slot.process.join(timeout=10)
        slot.conn.close()

    def close(self) -> None:
        for slot in self._slots:
            try:
                if slot.process.is_alive() and slot.ready and slot.job is None:
                    slot.conn.send(None)
                    slot.process.join(timeout=5)
            except (OSError, BrokenPipeError):
                pass
            self._kill(slot)
        self._slots = []
        if self._logs is not None:
            self._logs.cleanup()
            self._logs = None

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop ----------------------------------------------------------------------------------------

    def run(self, jobs: Sequence[list[tuple[int, Case]]]) -> Iterator[CaseResult]:
        """Results of ``jobs`` as workers finish them.  Ctrl-C raises KeyboardInterrupt here at the next turn of
        the loop (it waits at most half a second for workers), never inside a spawn, a pipe transfer or a
        join: an interrupt there could leave a started worker untracked, alive after the run and holding the
        run's stdout (a CI run of the Ctrl-C test showed such a worker outliving the run)."""
        with _deferred_interrupt() as interrupted:
            yield from self._run(jobs, interrupted)

    def _run(self, jobs: Sequence[list[tuple[int, Case]]], interrupted: threading.Event) -> Iterator[CaseResult]:
        queue: deque[list[tuple[int, Case]]] = deque(jobs)
        while len(self._slots) < min(self.workers, max(len(queue), 1)):
            self._slots.append(self._spawn())
        ids = itertools.count()

        def dispatch(slot: _Slot) -> None:
            if slot.ready and slot.job is None and queue:
                slot.job = (next(ids), queue.popleft())
                slot.started = time.monotonic()
                slot.conn.send(slot.job)

        while queue or any(s.job is not None for s in self._slots):
            if interrupted.is_set():
                raise KeyboardInterrupt
            for slot in self._slots:
                dispatch(slot)
            ready = wait([s.conn for s in self._slots] + [s.process.sentinel for s in self._slots], timeout=0.5)
            now = time.monotonic()
            for i, slot in enumerate(list(self._slots)):
                failure: str | None = None
                if slot.conn in ready:
                    try:
                        message = slot.conn.recv()
                    except (EOFError, OSError):
                        failure = "crash"
                    else:
                        if message[0] == "ready":
                            slot.ready = True
                            self.versions = message[1]
                        elif message[0] == "fatal":
                            self.close()
                            if message[1] == "TargetUnavailable":
                                raise TargetUnavailable(message[2])
                            raise HarnessError(f"worker could not start: {message[2]}")
                        else:
                            # the worker's next job goes out before this one's results are taken in: the
                            # caller's work on them (verdicts, the stream) would otherwise leave it idle
                            slot.job = None
                            dispatch(slot)
                            yield from message[2]
                            continue
                elif not slot.process.is_alive():
                    failure = "crash"
                elif slot.job is not None and now - slot.started > self.timeout:
                    failure = "timeout"
                elif not slot.ready and now - slot.spawned > STARTUP_SECONDS:
                    self.close()
                    raise HarnessError(f"a worker did not start within {STARTUP_SECONDS:.0f}s")
                if failure is None:
                    continue
                if failure == "crash":
                    # The pipe closes before the process is reaped (an abort handler may still be running):
                    # wait for the exit status so the record can name the signal.
                    slot.process.join(timeout=CRASH_REAP_SECONDS)
                elif HANG_SIGNAL is not None and slot.process.is_alive():  # a hang: have it say where it is
                    with contextlib.suppress(OSError):
                        os.kill(slot.process.pid, HANG_SIGNAL)
                    slot.process.join(timeout=HANG_TRACE_SECONDS)
                exitcode = slot.process.exitcode
                job = slot.job
                self._kill(slot)
                output = _tail(slot.log)
                self._slots[i] = self._spawn()
                if job is None:
                    if not slot.ready:
                        self.close()
                        said = f"; its last output:\n{output}" if output else ""
                        raise HarnessError(f"a worker died while starting (exit code {exitcode}){said}")
                    continue
                cases = job[1]
                if len(cases) > 1:
                    queue.extendleft([[pair] for pair in reversed(cases)])  # retry one by one
                    continue
                yield _failed(cases[0], failure, exitcode, self.timeout, output)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and what a CI runner sends to cancel a job


@contextlib.contextmanager
def _deferred_interrupt() -> Iterator[threading.Event]:
    """SIGINT and SIGTERM set the yielded event instead of raising (or killing) wherever the main thread
    happens to be, so a cancelled run stops at a safe point with a partial report.  Off the main thread
    nothing changes, nor for a signal that is ignored (a background job of a non-interactive shell ignores
    SIGINT: it is not the job's to take)."""
    event = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            handler = signal.getsignal(sig)
            if handler is not signal.SIG_IGN and handler is not None:
                previous[sig] = handler
                signal.signal(sig, lambda signum, frame: event.set())
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _tail(log: str) -> str:
    """The last lines the worker wrote (at most TAIL_BYTES), or "" if it wrote nothing."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - TAIL_BYTES))
            data = f.read()
    except OSError:
        return ""
    text = data.decode(errors="replace").strip()
    return text if len(data) < TAIL_BYTES else "...\n" + text.partition("\n")[2]


def _failed(pair: tuple[int, Case], kind: str, exitcode: int | None, timeout: float, output: str = "") -> CaseResult:
    index, case = pair
    if kind == "timeout":
        what = f"TensorFlow did not return within {timeout:g}s; the worker was killed"
    else:
        sig = -exitcode if exitcode is not None and exitcode < 0 else None
        name = signal.Signals(sig).name if sig else f"exit code {exitcode}"
        what = f"the worker process died ({name}) while TensorFlow ran this case"
    if output:
        what += f"\nthe worker's last output:\n{output}"
    return CaseResult(
        index,
        None,
        Outcome(error=f"{kind}: {what}"),
        Comparison(kind, f"case: {case.id}\n{what}"),
        {},
    )
