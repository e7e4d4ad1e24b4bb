"""Worker processes: TensorFlow runs outside the harness's own process, so a case that kills or hangs it
costs one record, not the run.

The parent hands out *jobs* (lists of cases) to N spawned workers over pipes.  Each worker imports
TensorFlow once, evaluates reference, target (``TFTarget.run_many``, which stacks what it can) and
comparison for every case of a job, and sends the results back a *chunk* at a time (``chunks``: a stacked
group, or a few cases that are not stacked), so that the watchdog times each chunk against its own limit and
a worker's death loses no result of a chunk already done.  When a worker dies (abort, segfault) or a chunk
exceeds its time limit, the worker is replaced, the cases of that chunk are retried one per job, which pins
the culprit (it becomes a ``crash`` or ``timeout`` result, and every other case still gets its own), and the
job's chunks not yet run go back to the queue.

The parent imports neither TensorFlow nor anything that does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import io
import itertools
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from harness.case import Case, Outcome
from harness.errors import HarnessError, TargetUnavailable, UsageError
from harness.judge.compare import Comparison
from harness.run.evaluate import CaseResult, evaluate
from harness.run.quarantine import Quarantine
from harness.run.watchdog import Watchdog

__all__ = ["DeadlineReached", "PooledTarget", "WorkerPool", "default_workers", "process_failure"]

# A worker that does not report ready within this many seconds of starting is given up on: TensorFlow
# imports in 2-10 s on this class of machine.
STARTUP_SECONDS = 180.0
START_TRIES = 3  # workers in a row that may fail to start (die, or hang importing) before the run gives up
RECV_SECONDS = 10.0  # a reply that has begun to arrive must be whole within this: else the pipe holds garbage
CRASH_REAP_SECONDS = 10.0  # how long a crashed worker may take to exit before it is killed
# asks a hung worker for its Python traceback (faulthandler) before it is killed; POSIX only
HANG_SIGNAL: signal.Signals | None = getattr(signal, "SIGUSR1", None)
HANG_TRACE_SECONDS = 1.0  # how long the parent waits for that traceback
TAIL_BYTES = 4096  # how much of a crashed or hung worker's last output its record keeps
CHUNK = 8  # cases that are not stacked, per chunk: each chunk is timed apart and its results sent at once


def chunks(
    pairs: Sequence[tuple[int, Case]], *, size: int = CHUNK, alone: Collection[int] = ()
) -> list[list[tuple[int, Case]]]:
    """``pairs`` cut into the chunks a worker reports one at a time: each run of cases sharing a
    ``stacking.batch_key`` (one stacked call), and the other cases ``size`` at a time, in order; the cases
    whose index is in ``alone`` (a first trace or XLA compile: slow, and slower still on a busy machine) get a
    chunk, and so a limit, each."""
    from harness.stacking import MAX_STACK, batch_key

    out: list[list[tuple[int, Case]]] = []
    last: Any = ()
    for pair in pairs:
        key = ("alone", pair[0]) if pair[0] in alone else batch_key(pair[1])
        if out and key == last and len(out[-1]) < (MAX_STACK if key is not None else size):
            out[-1].append(pair)
        else:
            out.append([pair])
        last = key
    return out


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


def _first_to_go() -> None:
    """If memory runs out, the kernel kills this worker (a record: a crash of SIGKILL), not the run."""
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")


class _Garbled(Exception):
    """A worker's reply did not arrive whole in time: its pipe holds something else than a reply."""


def _receive(conn: Connection, seconds: float = RECV_SECONDS) -> Any:
    """``conn.recv()``, but a reply that does not arrive whole within ``seconds`` raises _Garbled instead of
    blocking the run: bytes a fault wrote into the pipe may announce a length that never comes.  (The thread
    left reading ends when the worker is killed and its end of the pipe closes.)"""
    box: dict[str, Any] = {}

    def read() -> None:
        try:
            box["message"] = conn.recv()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    reader = threading.Thread(target=read, daemon=True, name="bce-harness-recv")
    reader.start()
    reader.join(seconds)
    if reader.is_alive():
        raise _Garbled(f"its reply did not arrive whole within {seconds:g}s (garbage in its pipe?)")
    if "error" in box:
        raise box["error"]
    return box["message"]


def _capture_output(log: str) -> None:
    """The worker's file descriptors 1 and 2 go to ``log``: what TensorFlow or a loss prints stays out of the
    run's own output, and the end of it (with the Python traceback that faulthandler writes on a fatal
    signal, or on HANG_SIGNAL) goes into the record of the case that crashed or hung."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for target_fd in (1, 2):
        os.dup2(fd, target_fd)
    os.close(fd)
    if isinstance(sys.stdout, io.TextIOWrapper):  # (a test may have replaced it with a capture)
        sys.stdout.reconfigure(line_buffering=True)  # what a loss prints before it crashes is not lost in a buffer
    faulthandler.enable(all_threads=False)
    if HANG_SIGNAL is not None:
        faulthandler.register(HANG_SIGNAL, all_threads=False)


def _worker_main(conn: Connection, factory_spec: str | None, profile: str, log: str, backend: str = "tensorflow") -> None:
    """Loop of one worker: build the target (Keras bound to ``backend``), then evaluate jobs until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _no_core_dumps()
    _first_to_go()
    _capture_output(log)
    from harness.frameworks import bind_backend, load_factory, make_target

    try:
        bind_backend(backend, threads=1)  # before anything in this fresh process (a --loss-factory) imports Keras
        target = make_target(backend, loss_factory=load_factory(factory_spec), threads=1)
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
        job_id, parts = message
        for n, part in enumerate(parts, start=1):
            sys.stdout.flush()
            os.ftruncate(1, 0)  # the log holds the current chunk's output only (appends go on at the new end)
            conn.send(("done" if n == len(parts) else "part", job_id, evaluate(part, target, profile)))


@dataclass
class _Job:
    """A list of (index, case) pairs to evaluate, and why it runs: a first try, the second run of a suspect
    (``first``: how it failed the first time; ``limit``: its escalated limit), or a sample of a class."""

    pairs: list[tuple[int, Case]]
    limit: float | None = None
    first: tuple[str, str] | None = None
    sample_of: str | None = None
    parent: int | None = None  # the split job this single case came from
    _by_index: tuple[list[tuple[int, Case]], dict[int, Case]] | None = field(default=None, repr=False)

    def case_at(self, index: int) -> Case:
        """The case with ``index`` among ``pairs`` (as they are now: holding cases back replaces the list)."""
        if self._by_index is None or self._by_index[0] is not self.pairs:
            self._by_index = (self.pairs, dict(self.pairs))
        return self._by_index[1][index]


@dataclass
class _Slot:
    process: Any
    conn: Connection
    log: str
    ready: bool = False
    job: _Job | None = None
    job_id: int = 0
    started: float = 0.0
    spawned: float = 0.0
    limit: float = 0.0
    kinds: dict[int, str] = field(default_factory=dict)
    chunks: list[list[tuple[int, Case]]] = field(default_factory=list)  # of the job: the one running first
    traced: set[Any] = field(default_factory=set)
    jobs_done: int = 0  # chunks this worker finished: 0, a crash cannot be the doing of an earlier one


class DeadlineReached(Exception):
    """The run's deadline passed: the pool stopped, its busy workers killed."""


class WorkerPool:
    """N TensorFlow worker processes with crash and hang recovery.

    ``run(jobs)`` yields a ``CaseResult`` per case as results come in (not in order).  A job that kills
    its worker or outlives its limit (``watchdog.Watchdog``: derived from what the run measured, at most
    ``timeout`` seconds) is split into single-case jobs; a single case that does either is run once more
    (a hang with a longer limit) unless it joins a class of such failures already seen (``quarantine``),
    and then becomes a ``crash`` or ``timeout`` result.  The cases of an active class are held back, a
    sample of them run, and the rest recorded as inferred (quarantine.py).  A spare worker is kept ready
    once a first worker died (``spare="after-failure"``, the default; ``"ahead"``: from the start; ``"none"``),
    so that the replacements of a class of crashes or hangs have TensorFlow imported already.  Not from the
    start: a spare's import (about 5 s of a core) would slow every clean run on a machine whose cores the
    workers already use, to save one import on the first death only.  ``findings`` collects what no
    single case's record says: a job that failed while each of its cases, run alone, did not; a case that
    failed once and not again.
    """

    def __init__(
        self,
        workers: int,
        *,
        factory: str | None = None,
        profile: str = "keras3",
        backend: str = "tensorflow",
        timeout: float = 120.0,
        quarantine: bool = True,
        retry_crashes: bool = True,
        spare: str = "after-failure",
        clock: Callable[[], float] = time.monotonic,
    ):
        self.workers = workers
        self.factory = factory
        self.profile = profile
        self.backend = backend
        self.timeout = timeout
        self.watchdog = Watchdog(ceiling=timeout)
        self.quarantine = Quarantine(enabled=quarantine)
        self.retry_crashes = retry_crashes
        self.spare = spare
        self.clock = clock
        self.versions: dict[str, Any] = {}
        self.findings: list[dict[str, Any]] = []
        self.on_finding: Callable[[dict[str, Any]], None] | None = None  # sees each finding as it is made
        self.startups: list[float] = []  # seconds from spawn to ready, per worker
        self.replacements = {"spare": 0, "cold": 0}  # how dead workers were replaced
        self.start_failures: list[str] = []  # workers that died or hung while starting, replaced
        self._starts_failed_in_a_row = 0
        self._ctx = mp.get_context("spawn")
        self._slots: list[_Slot] = []
        self._spare: _Slot | None = None
        self.renewals = 0  # times renew() replaced the workers
        self._logs: tempfile.TemporaryDirectory[str] | None = None
        self._spawned = itertools.count()
        self._ids = itertools.count(1)
        self._splits: dict[int, dict[str, Any]] = {}

    # -- lifecycle ---------------------------------------------------------------------------------------

    def _spawn(self) -> _Slot:
        if self._logs is None:
            self._logs = tempfile.TemporaryDirectory(prefix="bce-harness-workers-")
        log = os.path.join(self._logs.name, f"worker-{next(self._spawned)}.log")
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_worker_main, args=(child, self.factory, self.profile, log, self.backend), daemon=True, name="bce-harness-worker"
        )
        process.start()
        child.close()
        return _Slot(process, parent, log, spawned=self.clock())

    def _kill(self, slot: _Slot) -> None:
        if slot.process.is_alive():
            slot.process.kill()
        slot.process.join(timeout=10)
        slot.conn.close()

    def _all(self) -> list[_Slot]:
        return self._slots + ([self._spare] if self._spare is not None else [])

    def close(self) -> None:
        """Ask every idle worker to exit, wait for them together (a TensorFlow process takes a second or two to
        wind down; one after another that was seconds at the end of every run), and kill what is left."""
        slots, asked = self._all(), []
        for slot in slots:
            try:
                if slot.process.is_alive() and slot.ready and slot.job is None:
                    slot.conn.send(None)
                    asked.append(slot)
            except (OSError, BrokenPipeError):
                pass
        until = time.monotonic() + 5
        for slot in asked:  # the others (busy, or still importing TensorFlow) are killed at once
            slot.process.join(timeout=max(0.0, until - time.monotonic()))
        for slot in slots:
            self._kill(slot)
        self._slots = []
        self._spare = None
        if self._logs is not None:
            self._logs.cleanup()
            self._logs = None

    def renew(self) -> WorkerPool:
        """Replace every worker with a new one, started now (between two ``run`` calls).  A TensorFlow process
        keeps what its traced and XLA-compiled functions took (measured: a worker that ran the nightly's base
        suite holds about 250 MiB more than a new one, and clearing its caches, Keras's session and malloc
        gives back a sixth of it), so a run whose next cases trace nothing starts them on new workers.  The
        old ones are idle and hold nothing the run needs: they are stopped at once, before the new ones
        start, so that the two are never in memory together.  What the pool learned (quarantine classes,
        findings, versions) stays."""
        for slot in self._all():
            self._kill(slot)
        self._slots, self._spare = [], None
        self.renewals += 1
        return self.warm()

    def __enter__(self) -> WorkerPool:
        return self

    def warm(self) -> WorkerPool:
        """Start every worker now, so that they import TensorFlow while the caller builds its cases."""
        while len(self._slots) < self.workers:
            self._slots.append(self._spawn())
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _replacement(self) -> _Slot:
        """The spare, if one was started (it may still be importing TensorFlow), else a new worker."""
        if self._spare is not None:
            slot, self._spare = self._spare, None
            self.replacements["spare"] += 1
            return slot
        self.replacements["cold"] += 1
        return self._spawn()

    # -- the loop ----------------------------------------------------------------------------------------

    def run(self, jobs: Sequence[list[tuple[int, Case]]], *, deadline: float | None = None) -> Iterator[CaseResult]:
        """Results of ``jobs`` as workers finish them.  Ctrl-C raises KeyboardInterrupt here at the next turn of
        the loop (it waits at most half a second for workers), never inside a spawn, a pipe transfer or a
        join: an interrupt there could leave a started worker untracked, alive after the run and holding the
        run's stdout (a CI run of the Ctrl-C test showed such a worker outliving the run).  At ``deadline``
        (a time of ``clock``) it raises DeadlineReached the same way; the jobs in flight are not finished."""
        with _deferred_interrupt() as interrupted:
            yield from self._run(jobs, interrupted, deadline)

    def evaluate_one(self, case: Case) -> CaseResult:
        """One case in a worker: its result, or its ``crash`` or ``timeout`` result (for the fuzzer)."""
        results = list(self.run([[(next(self._ids), case)]]))  # an index of its own: the pool remembers by it
        return results[0]

    def _run(
        self, jobs: Sequence[list[tuple[int, Case]]], interrupted: threading.Event, deadline: float | None
    ) -> Iterator[CaseResult]:
        from harness.stacking import trace_key

        queue: deque[_Job] = deque(_Job(list(job)) for job in jobs)
        q = self.quarantine
        while len(self._slots) < min(self.workers, max(len(queue), 1)):
            self._slots.append(self._spawn())

        def dispatch(slot: _Slot) -> None:
            while slot.ready and slot.job is None and queue:
                job = queue.popleft()
                if job.sample_of is None and job.first is None:
                    job.pairs = q.hold(job.pairs)
                if not job.pairs:
                    continue
                # JAX compiles an eager call's primitives on first use, per shape and dtype: a new one is "first"
                compiles = self.backend == "jax"
                keys = {
                    i: trace_key(c) + ((c.y_pred.shape, c.true_dtype, c.pred_dtype) if compiles else ())
                    for i, c in job.pairs
                }
                slot.kinds = {
                    i: Watchdog.kind(Watchdog.mode_of(c), keys[i] not in slot.traced, eager_compiles=compiles)
                    for i, c in job.pairs
                }
                slot.traced.update(keys.values())
                slot.chunks = chunks(job.pairs, alone={i for i, k in slot.kinds.items() if k.startswith("first:")})
                slot.job, slot.job_id = job, next(self._ids)
                start_chunk(slot)
                slot.conn.send((slot.job_id, slot.chunks))

        def start_chunk(slot: _Slot) -> None:
            """The clock starts for the slot's next chunk, with that chunk's limit."""
            assert slot.job is not None
            kinds = [slot.kinds[i] for i, _ in slot.chunks[0]]
            slot.limit = slot.job.limit if slot.job.limit is not None else self.watchdog.limit(kinds)
            slot.started = self.clock()

        def busy() -> bool:
            return any(s.job is not None for s in self._slots)

        while True:
            if interrupted.is_set():
                raise KeyboardInterrupt
            if deadline is not None and self.clock() >= deadline:
                raise DeadlineReached
            if not queue and not busy():
                # nothing else to run: confirm the classes that hold cases, then record what they hold
                samples = q.sample_jobs()
                if samples:
                    queue.extend(_Job([pair], sample_of=cid) for cid, pair in samples)
                else:
                    for (index, case), evidence in q.settle():
                        yield _inferred((index, case), evidence)
                    released = q.released()
                    if released:
                        queue.extend(_Job([pair]) for pair in released)
                        continue
                    return
            for slot in self._slots:
                dispatch(slot)
            died = sum(self.replacements.values()) > 0
            wanted = self.spare == "ahead" or (self.spare == "after-failure" and died)
            # started once the first workers are up (not competing with them), and at once after a death: in a
            # run of crashes the next replacement imports TensorFlow while the last one works
            if wanted and self._spare is None and (died or all(s.ready for s in self._slots)):
                self._spare = self._spawn()
            watched = self._all()
            ready = wait([s.conn for s in watched] + [s.process.sentinel for s in watched], timeout=0.5)
            now = self.clock()
            spare = self._spare
            if spare is not None and (spare.conn in ready or spare.process.sentinel in ready):
                self._take_spare_message(spare, ready)
            for i, slot in enumerate(list(self._slots)):
                failure: str | None = None
                detail = ""
                if slot.conn in ready:
                    try:
                        message = _receive(slot.conn)
                    except (EOFError, OSError):
                        failure = "crash"
                    except Exception as exc:  # noqa: BLE001 - a garbled reply: the worker is not to be trusted
                        failure, detail = "crash", f"its reply could not be read ({type(exc).__name__}: {exc})"
                    else:
                        kind = message[0] if isinstance(message, tuple) and message else None
                        if kind == "ready":
                            self._ready(slot, message)
                        elif kind == "fatal":
                            self.close()
                            if message[1] == "TargetUnavailable":
                                raise TargetUnavailable(message[2])
                            if message[1] == "UsageError":  # a --loss-factory that imports but is not usable
                                raise UsageError(message[2])
                            raise HarnessError(f"worker could not start: {message[2]}")
                        elif kind == "part" and slot.job is not None and message[1] == slot.job_id and len(slot.chunks) > 1:
                            slot.jobs_done += 1
                            slot.chunks.pop(0)
                            start_chunk(slot)
                            job, kinds = slot.job, slot.kinds
                            for r in message[2]:
                                yield self._completed(r, job, kinds, queue)
                            continue
                        elif kind == "done" and slot.job is not None and message[1] == slot.job_id:
                            job, kinds = slot.job, slot.kinds
                            slot.jobs_done += 1
                            # the worker's next job goes out before this one's results are taken in: the
                            # caller's work on them (verdicts, the stream) would otherwise leave it idle
                            slot.job = None
                            dispatch(slot)
                            for r in message[2]:
                                yield self._completed(r, job, kinds, queue)
                            continue
                        else:
                            failure, detail = "crash", f"it sent an unexpected reply ({str(message)[:200]})"
                elif not slot.process.is_alive():
                    failure = "crash"
                elif slot.job is not None and self.watchdog.expired(slot.started, now, slot.limit):
                    failure = "timeout"
                elif not slot.ready and now - slot.spawned > self._startup_limit():
                    self._kill(slot)
                    self._start_failed(f"a worker did not start within {self._startup_limit():.0f}s", _tail(slot.log))
                    self._slots[i] = self._replacement()
                    continue
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
                lost = slot.job  # the job the worker held when it failed, if any
                if lost is not None and len(slot.chunks) > 1:
                    # the chunk that was running failed; the chunks after it never ran: back to the queue
                    queue.appendleft(_Job([p for part in slot.chunks[1:] for p in part]))
                if lost is not None and slot.chunks:
                    lost = dataclasses.replace(lost, pairs=slot.chunks[0])
                self._kill(slot)
                output = _tail(slot.log)
                if detail:
                    output = f"{detail}\n{output}".strip()
                self._slots[i] = self._replacement()
                if lost is None:
                    if not slot.ready:
                        self._start_failed(f"a worker died while starting (exit code {exitcode})", output)
                    continue
                fresh = slot.jobs_done == 0
                yield from self._failed_job(lost, failure, exitcode, slot.limit, output, queue, fresh=fresh)

    def _ready(self, slot: _Slot, message: tuple[Any, ...]) -> None:
        slot.ready = True
        self._starts_failed_in_a_row = 0
        self.versions = message[1]
        self.startups.append(self.clock() - slot.spawned)

    def _take_spare_message(self, spare: _Slot, ready: list[Any]) -> None:
        if spare.conn in ready:
            try:
                message = _receive(spare.conn)
            except (EOFError, OSError):
                message = None
            except Exception:  # noqa: BLE001 - a garbled reply: start another spare
                message = None
            if isinstance(message, tuple) and message and message[0] == "ready":
                self._ready(spare, message)
                return
            if isinstance(message, tuple) and message and message[0] == "fatal":
                self.close()
                if message[1] == "TargetUnavailable":
                    raise TargetUnavailable(message[2])
                raise HarnessError(f"worker could not start: {message[2]}")
        if not spare.process.is_alive() or spare.conn in ready:
            exitcode = spare.process.exitcode
            self._kill(spare)
            self._spare = None  # another is started at the next turn
            self._start_failed(f"a worker died while starting (exit code {exitcode})", _tail(spare.log))

    def _startup_limit(self) -> float:
        """Seconds a worker may take to start: four times the slowest start so far (at least a minute), at
        most STARTUP_SECONDS."""
        return min(STARTUP_SECONDS, max(60.0, 4 * max(self.startups))) if self.startups else STARTUP_SECONDS

    def _start_failed(self, what: str, output: str) -> None:
        """A worker died or hung while starting (importing TensorFlow and the loss factory).  It is replaced;
        after START_TRIES such failures in a row the run gives up (the records so far are in the stream)."""
        self.start_failures.append(what)
        self._starts_failed_in_a_row += 1
        if self._starts_failed_in_a_row >= START_TRIES:
            self.close()
            said = f"; its last output:\n{output}" if output else ""
            raise HarnessError(f"{what}, {START_TRIES} workers in a row{said}")

    def _completed(self, r: CaseResult, job: _Job, kinds: dict[int, str], queue: deque[_Job]) -> CaseResult:
        """Book-keeping for a case that ran to its end: timings, classes it lifts, what its job's history says."""
        out = r.outcome
        spent = (out.seconds if out is not None else 0.0) + r.seconds.get("reference", 0.0) + r.seconds.get("compare", 0.0)
        if r.index in kinds:
            self.watchdog.observe(kinds[r.index], spent)
        case = job.case_at(r.index)
        released = self.quarantine.completed(r.index, case, r.signature)
        queue.extend(_Job([pair]) for pair in released)
        if job.first is not None and job.first[0] == "crash":  # (a suspect hang that finishes was just slow)
            kind, cause = job.first
            self._finding(
                {
                    "finding": "not reproduced",
                    "kind": kind,
                    "cause": cause,
                    "cases": [case.id],
                    "message": f"{case.id} failed once ({kind}: {cause}) and completed when run again",
                }
            )
        self._split_case_done(job.parent, r.index, failed=False)
        return r

    def _finding(self, finding: dict[str, Any]) -> None:
        self.findings.append(finding)
        if self.on_finding is not None:
            self.on_finding(finding)

    def _split_case_done(self, parent: int | None, index: int, *, failed: bool) -> None:
        if parent is None:
            return
        split = self._splits.get(parent)
        if split is None:
            return
        split["left"].discard(index)
        split["failed"] |= failed
        if split["left"]:
            return
        del self._splits[parent]
        if split["failed"] or (split["kind"] == "timeout" and not split["stacked"]):
            return  # (separate calls that each complete alone and were too slow together: a busy machine)
        n = len(split["ids"])
        stacked = split["stacked"]
        what = f"a stacked call of shape {stacked[0]}" if len(stacked) == 1 else (
            f"stacked calls of shapes {', '.join(map(str, stacked))}" if stacked else "one call per case"
        )
        self._finding(
            {
                "finding": "job failed, cases pass alone",
                "kind": split["kind"],
                "cause": split["cause"],
                "stacked_shapes": stacked,
                "cases": split["ids"],
                "message": (
                    f"a job of {n} cases ({what}) ended in a {split['kind']} ({split['cause']}); "
                    "run one by one, each of its cases completed"
                ),
            }
        )

    def _failed_job(
        self,
        job: _Job,
        failure: str,
        exitcode: int | None,
        limit: float,
        output: str,
        queue: deque[_Job],
        *,
        fresh: bool = False,
    ) -> Iterator[CaseResult]:
        """A job killed or hung its worker.  Several cases: run them one by one.  One case: a suspect, run
        once more (a hang with the escalated limit; a crash only if its worker had run other jobs before, whose
        state could be the cause) unless it joins a class of such failures; else a crash or timeout result."""
        cause = _cause(failure, exitcode)
        q = self.quarantine
        if len(job.pairs) > 1:
            from harness.stacking import batch_key

            groups: dict[Any, list[Case]] = {}
            for _, c in job.pairs:
                key = batch_key(c)
                if key is not None:
                    groups.setdefault(key, []).append(c)
            stacked = [[len(g), *g[0].y_pred.shape] for g in groups.values() if len(g) > 1]
            jid = next(self._ids)
            self._splits[jid] = {
                "left": {i for i, _ in job.pairs},
                "failed": False,
                "kind": failure,
                "cause": cause,
                "ids": [c.id for _, c in job.pairs],
                "stacked": stacked,
            }
            queue.extendleft([_Job([pair], parent=jid) for pair in reversed(job.pairs)])  # retry one by one
            return
        (index, case) = job.pairs[0]
        home = None
        if job.sample_of is not None and any(c.id == job.sample_of and not c.lifted for c in q.classes):
            cls = next(c for c in q.classes if c.id == job.sample_of)
            if (cls.kind, cls.cause) == (failure, cause):
                home = q.confirmed(index, case, failure, cause, sample_of=job.sample_of)
            else:
                q.sample_failed_otherwise(index, job.sample_of)
        if home is None and job.first is None:
            again = failure == "timeout" or (self.retry_crashes and not fresh)
            joined = q.joins(index, case, failure, cause) if q.enabled else None
            if joined is None and again:
                retry_limit = self.watchdog.escalated(limit) if failure == "timeout" else None
                queue.appendleft(_Job([(index, case)], limit=retry_limit, first=(failure, cause), parent=job.parent))
                return
        if home is None:
            home = q.confirmed(index, case, failure, cause)
        self._split_case_done(job.parent, index, failed=True)
        yield _failed((index, case), failure, exitcode, limit, output, home.evidence(inferred=False))
        for released in q.released():
            queue.append(_Job([released]))


class PooledTarget:
    """A target whose every call runs in a ``WorkerPool`` (the fuzzer's): ``run(case)`` is the case's outcome
    from a worker, or, when the call killed or hung its worker, an outcome whose error starts ``crash:`` or
    ``timeout:``.  The worker is replaced and the next call goes on."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.name = pool.backend

    def run(self, case: Case) -> Outcome:
        result = self.pool.evaluate_one(case)
        assert result.outcome is not None
        return result.outcome

    def run_many(self, cases: Sequence[Case]) -> list[Outcome]:
        return [self.run(c) for c in cases]

    def versions(self) -> dict[str, Any]:
        return self.pool.versions


def process_failure(outcome: Outcome | None) -> str | None:
    """"crash" or "timeout" when ``outcome`` is a worker's death or hang (``PooledTarget``), else None."""
    if outcome is None or outcome.error is None:
        return None
    head = outcome.error.partition(":")[0]
    return head if head in ("crash", "timeout") else None


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
        for signum, handler in previous.items():
            signal.signal(signum, handler)


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


def _cause(kind: str, exitcode: int | None) -> str:
    """What a failure was: "hang", a signal's name, "exit-N", or "bad-reply" (the worker was alive, but what
    it sent could not be read or was not a reply: it was killed)."""
    if kind == "timeout":
        return "hang"
    if exitcode is None:
        return "bad-reply"
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-exitcode).name
        return f"signal-{-exitcode}"
    return f"exit-{exitcode}"


def _failed(
    pair: tuple[int, Case],
    kind: str,
    exitcode: int | None,
    timeout: float,
    output: str = "",
    evidence: dict[str, Any] | None = None,
) -> CaseResult:
    index, case = pair
    if kind == "timeout":
        what = f"TensorFlow did not return within {timeout:g}s; the worker was killed"
    elif exitcode is None:
        what = "the worker process sent something that is not a reply while TensorFlow ran this case; it was killed"
    else:
        sig = -exitcode if exitcode is not None and exitcode < 0 else None
        name = _cause(kind, exitcode) if sig else f"exit code {exitcode}"
        what = f"the worker process died ({name}) while TensorFlow ran this case"
    if output:
        what += f"\nthe worker's last output:\n{output}"
    return CaseResult(
        index,
        None,
        Outcome(error=f"{kind}: {what}"),
        Comparison(kind, f"case: {case.id}\n{what}"),
        {},
        evidence,
    )


def _inferred(pair: tuple[int, Case], evidence: dict[str, Any]) -> CaseResult:
    """The result of a held case of a confirmed class: recorded as its class's failure, not run."""
    index, case = pair
    kind = "timeout" if evidence["cause"] == "hang" else "crash"
    seen = ", ".join(evidence["confirmed"][:5]) + (" ..." if len(evidence["confirmed"]) > 5 else "")
    facets = ", ".join(f"{k}={v}" for k, v in (evidence.get("rule") or evidence["signature"]).items())
    what = (
        f"inferred, not run: this case is of class {evidence['class']} ({kind}, {evidence['cause']}), whose "
        f"{len(evidence['confirmed'])} confirmed cases ({seen}) all failed so; the class: {facets or 'every case'}"
    )
    return CaseResult(index, None, Outcome(error=f"{kind}: {what}"), Comparison(kind, f"case: {case.id}\n{what}"), {}, evidence)
