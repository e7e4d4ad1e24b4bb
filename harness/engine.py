"""What a run is, as an API: ``RunSpec`` (every run option, frozen), the run's identity (one header, one check
for ``--resume`` and ``merge``), and one chunked engine (``run``; the default suite is one chunk) with ``merge``
and ``replay`` beside it.

The command line (``harness.cli``) parses argv into a ``RunSpec``, calls ``run``, and prints what comes back;
the pytest plugin, the benchmarks and the tests call the same functions.  Nothing here prints: what a run has
to say before it starts (the profile chosen, the cases a backend skips, the estimate) goes to ``say``, and its
progress to ``progress``.

May import: every floor below the commands (run, report, judge, generate, oracle, frameworks, ground).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import itertools
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import InputError, TargetUnavailable, UsageError

__all__ = [
    "CHUNK",
    "IDENTITY",
    "RunOutput",
    "RunSpec",
    "check_backend",
    "check_factory",
    "check_same_run",
    "in_base",
    "merge",
    "out_folder",
    "prepare",
    "replay",
    "run",
]

CHUNK = 20_000  # cases the engine plans and runs at once: a few MB of cases, jobs and records


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Every option of a run, as ``bce-harness run`` takes them (the defaults are the command line's).

    ``profile`` "auto" is resolved by ``prepare`` from the installed TensorFlow and Keras; ``workers`` None
    means one per core and 0 runs in this process; ``deadline`` counts seconds from the start of ``run``."""

    out: str = "reports/latest"
    seed: int = 0
    suite: str = "default"
    seeds: tuple[int, int] | None = None
    select: str | None = None
    max_cases: int | None = None
    shard: tuple[int, int] | None = None
    registry: str = ""  # "" is the shipped registry
    special_cases: str = ""  # "" is the shipped special-case table
    profile: str = "auto"
    loss_factory: str | None = None
    backend: str = "tensorflow"
    workers: int | None = None
    timeout: float = 120.0
    deadline: float | None = None
    resume: bool = False
    force: bool = False
    argv: tuple[str, ...] = ()  # the command line that made it, recorded in the results' meta

    def __post_init__(self) -> None:
        from harness.generate.grid import DEFAULT_SPECIAL_CASES
        from harness.judge.registry import DEFAULT_REGISTRY

        if not self.registry:
            object.__setattr__(self, "registry", str(DEFAULT_REGISTRY))
        if not self.special_cases:
            object.__setattr__(self, "special_cases", str(DEFAULT_SPECIAL_CASES))
        if self.resume and self.force:
            raise UsageError("--resume continues the run in --out and --force replaces it: give one")
        streamed = self.suite != "default" or self.seeds is not None
        if self.backend != "tensorflow" and streamed:
            raise UsageError(f"--backend {self.backend} runs the default suite only (no --suite {self.suite}, no --seeds)")

    @classmethod
    def from_namespace(cls, args: Any) -> RunSpec:
        """The spec of a parsed ``run`` command line (argparse's namespace)."""
        names = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in vars(args).items() if k in names}
        given["argv"] = tuple(getattr(args, "argv", ()) or ())
        return cls(**given)


@dataclasses.dataclass
class RunOutput:
    """What ``run``, ``merge`` and ``replay`` hand back to be reported: the result, the meta of results.json,
    the bulk of a large run's passes (report/bulk.py, or None), and the profile the run was judged under."""

    result: Any
    meta: dict[str, Any]
    bulk: Any = None
    profile: str = "keras3"


def _silent(_: str) -> None:
    return None


# -- the run's identity ------------------------------------------------------------------------------------

# The header fields that make two streams one run (a --resume continues it, a merge joins its slices); what
# a header holds besides them is recorded, not compared.  registry_sha is left out on purpose: a registry
# edited meanwhile is fine, since every record is judged again when it is read.
IDENTITY = (
    "seed", "profile", "suite_name", "seeds", "suite", "whole_suite", "shard", "size", "select", "max_cases",
    "loss_factory", "special_cases_sha", "backend",
)  # fmt: skip
# A header written before a field existed meant this by its absence.
_ABSENT = {"suite_name": "default", "seeds": None, "backend": "tensorflow"}
# What the slices of one run share (every identity field but the slice's own: which slice, its cases, their
# count); a merge of slices judged under different registries would mix two judgements.
SLICE_IDENTITY = tuple(k for k in IDENTITY if k not in ("shard", "suite", "size")) + ("registry_sha",)


def _field(header: Mapping[str, Any], key: str) -> Any:
    value = header.get(key, _ABSENT.get(key))
    return tuple(value) if isinstance(value, list) else value


def differences(theirs: Mapping[str, Any], ours: Mapping[str, Any], keys: Sequence[str] = IDENTITY) -> list[str]:
    """The identity fields in which two headers differ, each as ``key: THEIRS -> OURS``."""
    return [f"{k}: {_field(theirs, k)!r} -> {_field(ours, k)!r}" for k in keys if _field(theirs, k) != _field(ours, k)]


def check_same_run(out: str, theirs: Mapping[str, Any], ours: Mapping[str, Any]) -> None:
    """Refuse, in one line, a ``--resume`` whose options make another run than the one in ``out``."""
    diff = differences(theirs, ours)
    if diff:
        raise UsageError(
            f"--resume {out}: not the run recorded there (recorded -> given: {'; '.join(diff)}); "
            "give the options it was run with, or replace it with --force"
        )


def check_same_slices(dirs: Sequence[str | Path], metas: Sequence[Mapping[str, Any]]) -> None:
    """Refuse, naming the folder, shards that are not slices of one run (``merge``)."""
    first = metas[0]
    for d, m in zip(dirs, metas, strict=True):
        diff = differences(first, m, SLICE_IDENTITY)
        if diff:
            raise InputError(f"{d}: not a slice of the run in {dirs[0]} ({'; '.join(diff)}); the shards of one merge share these")


def _header(spec: RunSpec, *, fingerprint: str, whole: str, size: int) -> dict[str, Any]:
    """The run's identity as its stream's first line records it (``IDENTITY``, plus the registry's hash)."""
    from harness.run.stream import file_fingerprint

    header: dict[str, Any] = {
        "seed": spec.seed, "profile": spec.profile, "suite": fingerprint, "shard": spec.shard, "select": spec.select,
        "max_cases": spec.max_cases, "whole_suite": whole, "size": size, "loss_factory": spec.loss_factory,
        "registry_sha": file_fingerprint(spec.registry), "special_cases_sha": file_fingerprint(spec.special_cases),
        "suite_name": spec.suite, "seeds": None if spec.seeds is None else list(spec.seeds),
    }  # fmt: skip
    if spec.backend != "tensorflow":  # (a stream written before --backend existed resumes under TensorFlow)
        header["backend"] = spec.backend
    return header


# -- checks made before any work ----------------------------------------------------------------------------


def prepare(spec: RunSpec, *, say: Callable[[str], None] = _silent) -> tuple[RunSpec, Any, Any]:
    """The spec with its profile chosen (from the installed TensorFlow and Keras when "auto"), the profile
    selection, and the registry's entries that hold for those versions; a --loss-factory that cannot be
    found fails here, before anything imports TensorFlow."""
    from harness.judge.registry import load_registry
    from harness.oracle.profiles import select_profile

    registry = load_registry(spec.registry)
    selection = select_profile(spec.profile)
    say(f"profile: {selection.profile} ({selection.reason})")
    if spec.backend != "tensorflow" and selection.profile != "keras3":
        raise UsageError(f"--backend {spec.backend} runs Keras 3; profile {selection.profile!r} is Keras 2 ({selection.reason})")
    check_factory(spec.loss_factory)
    spec = dataclasses.replace(spec, profile=selection.profile)
    return spec, selection, registry.for_versions(selection.tensorflow, selection.keras)


def check_backend(backend: str) -> None:
    """Fail fast, in one line, when the packages ``backend`` needs are not installed (without importing them)."""
    if backend == "tensorflow":
        if importlib.util.find_spec("tensorflow") is None:
            raise TargetUnavailable("TensorFlow is not installed; install the extra: pip install 'bce-harness[tf]'")
        return
    needs = {"jax": ("keras", "jax", "jaxlib"), "torch": ("keras", "torch"), "numpy": ("keras", "scipy")}
    for package in needs[backend]:
        if importlib.util.find_spec(package) is None:
            raise TargetUnavailable(f"{package} is not installed (--backend {backend}); install the extra: pip install 'bce-harness[{backend}]'")


def check_factory(spec: str | None) -> None:
    """Fail fast on a --loss-factory that cannot be found, without importing it (it may import TF)."""
    if spec is None:
        return
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise UsageError(f"--loss-factory={spec!r} is not of the form MODULE:FUNCTION")
    try:
        found = importlib.util.find_spec(module)
    except Exception:  # noqa: BLE001 - a parent package that fails to import, a bad name: all the user's
        found = None
    if found is None:
        raise UsageError(f"--loss-factory={spec!r}: module {module!r} not found")


def out_folder(path: str, option: str = "--out", *, reports_of: str | None = None) -> None:
    """Make the output folder ``path`` now, before any work, or say in one line why it cannot be; with
    ``reports_of`` (the command), also refuse a folder holding another run's records, whose reports the
    command would replace."""
    from harness.run.stream import recorded

    if reports_of is not None and (n := recorded(path)):
        raise UsageError(f"{option} {path}: holds a run's record stream ({n} records) whose reports {reports_of} would replace; choose another")
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: the folder is not writable")


def _claim_out(spec: RunSpec) -> None:
    """``--out`` for a run: a folder (made if missing) that holds no other run's record stream unless
    ``--resume`` continues it or ``--force`` replaces it."""
    from harness.run.stream import recorded

    if Path(spec.out).exists() and not Path(spec.out).is_dir():
        raise UsageError(f"--out {spec.out!r} is a file, not a folder")
    if not (spec.resume or spec.force) and (n := recorded(spec.out)):
        raise UsageError(
            f"--out {spec.out}: holds the record stream of another run ({n} records); "
            "continue it with --resume or replace it with --force"
        )
    if not spec.resume:
        out_folder(spec.out)


def in_base(record: Any) -> bool:
    """Whether a record is of a suite's base (kept in full) rather than its value sweep (ids end in /seed=S)."""
    return "/seed=" not in record.case.id


class _Id:
    """A case or record by its id alone, for what reads only that: suite_fingerprint (``.id``) and
    check_shards (``.case.id``), so a streamed suite or shard is counted without its records in memory."""

    __slots__ = ("id",)

    def __init__(self, cid: str) -> None:
        self.id = cid

    @property
    def case(self) -> _Id:
        return self


# -- the plan: which cases, in which order -----------------------------------------------------------------


@dataclasses.dataclass
class _Plan:
    """The cases a run takes, by position in ``ids``: the ``positions`` this run (its shard) takes, the
    fingerprint of the ``whole`` selection the shards are slices of, ``cases_at`` to build them, ``counts``
    of their kinds for the estimate, what the run's coverage is measured on, and the cases a backend cannot
    express (by reason)."""

    ids: Sequence[str]
    positions: Sequence[int]
    whole: str
    cases_at: Callable[[Sequence[int]], Iterator[Any]]
    counts: Callable[[Sequence[int]], dict[str, int]]
    covered: Callable[[], list[Any]]
    skipped: dict[str, int]
    # positions from here on are the value sweep's: stacked calls only, nothing traced or compiled
    sweep_from: int | None = None


def _default_plan(spec: RunSpec) -> _Plan:
    """The default suite, built in memory (a few thousand cases): selected, capped and sliced, then split by
    what the backend can express."""
    from harness.backends import split
    from harness.generate.grid import default_suite, select
    from harness.run.estimate import kinds
    from harness.run.stream import suite_fingerprint

    whole = select(
        default_suite(seed=spec.seed, special_cases=spec.special_cases, suite=spec.suite, profile=spec.profile),
        max_cases=spec.max_cases,
        pattern=spec.select,
    )
    cases = whole if spec.shard is None else whole[spec.shard[0] - 1 :: spec.shard[1]]
    if not cases:
        raise UsageError(f"--select {spec.select!r} matches no case")
    # what the backend cannot express is skipped by construction, counted by reason in meta.backend
    cases, skipped = split(cases, spec.backend)
    whole, _ = split(whole, spec.backend)
    if not cases:
        raise UsageError(f"--backend {spec.backend}: none of the {sum(skipped.values())} selected cases can run on it")
    return _Plan(
        ids=[c.id for c in cases],
        positions=list(range(len(cases))),
        whole=suite_fingerprint(whole),
        cases_at=lambda positions: (cases[p] for p in positions),
        counts=lambda positions: kinds(cases[p] for p in positions),
        covered=lambda: list(cases),
        skipped=skipped,
    )


def _suite_plan(spec: RunSpec, *, deferred: bool = False) -> _Plan:
    """A suite with a value sweep (nightly, exhaustive, --seeds): generated chunk by chunk, never whole.
    ``deferred``: the sweep's cases are made by the workers that evaluate them (``case.Deferred``), not here."""
    from harness.generate.grid import Suite
    from harness.run.estimate import kinds
    from harness.run.stream import ids_fingerprint

    suite = Suite(spec.suite, seed=spec.seed, special_cases=spec.special_cases, paths=spec.profile == "keras3", seeds=spec.seeds)
    whole = suite.chosen(max_cases=spec.max_cases, pattern=spec.select)
    positions = whole if spec.shard is None else whole[spec.shard[0] - 1 :: spec.shard[1]]
    if not positions:
        raise UsageError(f"--select {spec.select!r} matches no case")
    nb = len(suite.base)

    def counts(todo: Sequence[int]) -> dict[str, int]:
        found = kinds(suite.base[p] for p in todo if p < nb)
        sweep = sum(1 for p in todo if p >= nb)
        if sweep:  # every sweep case is of one kind per seed position; one seed's kinds scaled
            per = kinds(suite.templates)
            for k, v in per.items():
                found[k] += round(v * sweep / suite.per_seed)
        return found

    ids = suite.id_view()  # each id made when read: a million of them are never held at once
    return _Plan(
        ids=ids,
        positions=positions,
        whole=ids_fingerprint(ids.take(whole)),
        cases_at=(lambda positions: suite.cases_at(positions, deferred=True)) if deferred else suite.cases_at,
        counts=counts,
        # the sweep repeats the value grid's facets: the base suite's coverage is the run's
        covered=lambda: suite.base,
        skipped={},
        sweep_from=nb,
    )


# -- the engine --------------------------------------------------------------------------------------------


def run(
    spec: RunSpec,
    *,
    say: Callable[[str], None] = _silent,
    progress: Callable[[int, int], None] | None = None,
    pool: Any = None,
) -> RunOutput:
    """Run ``spec``: plan the cases, check ``--out`` and the run's identity, then run them chunk by chunk
    (the default suite is one chunk) in worker processes or in this process, every record appended to the
    stream the moment it completes, and hand back what the reports need.

    ``pool``: an open ``WorkerPool`` to run in (its own settings apply, and the caller closes it), so that
    several runs share one pool's workers, or a benchmark times the pool's start-up apart from the run."""
    from harness.frameworks import environment_flags, load_factory, make_target
    from harness.generate.space import coverage, space_for
    from harness.report.bulk import RESULTS_JSON_MAX, Bulk
    from harness.report.summary import meta
    from harness.run.estimate import render
    from harness.run.findings import FindingsLog, load_findings
    from harness.run.runner import RunResult, run_cases, run_parallel
    from harness.run.stream import RecordStream, ids_fingerprint, iter_stream
    from harness.run.workers import WorkerPool, default_workers

    t0 = time.perf_counter()
    spec, _selection, registry = prepare(spec, say=say)
    check_backend(spec.backend)
    workers = pool.workers if pool is not None else default_workers() if spec.workers is None else spec.workers
    streamed = spec.suite != "default" or spec.seeds is not None
    own_pool = pool is None
    with contextlib.ExitStack() as stack:
        if own_pool and workers:  # started first: the workers import TensorFlow (seconds) while this process plans the suite
            pool = stack.enter_context(WorkerPool(
                workers, factory=spec.loss_factory, profile=spec.profile, backend=spec.backend, timeout=spec.timeout,
            )).warm()  # fmt: skip
        # with workers, the sweep's arrays are made by them, on the cores this process does not keep busy
        plan = _suite_plan(spec, deferred=bool(workers)) if streamed else _default_plan(spec)
        for reason, n in sorted(plan.skipped.items()):
            say(f"backend {spec.backend}: {n} cases skipped ({reason})")
        _claim_out(spec)  # the inputs are good; now the output folder, before any work
        ids = plan.ids
        header = _header(
            spec,
            fingerprint=ids_fingerprint(_take(ids, plan.positions)),
            whole=plan.whole,
            size=len(plan.positions),
        )
        bulk = Bulk(spec.out, keep=in_base, json=len(plan.positions) <= RESULTS_JSON_MAX)
        done: set[str] = set()
        if spec.resume:
            old_meta, old = iter_stream(spec.out, registry)
            check_same_run(spec.out, old_meta, header)
            for r in old:
                done.add(r.case.id)
                bulk.add(r)
        todo = [p for p, cid in zip(plan.positions, _take(ids, plan.positions), strict=True) if cid not in done] if done else plan.positions
        say(render(spec.suite, plan.counts(todo), workers))
        deadline_at = None if spec.deadline is None else t0 + spec.deadline
        seconds: dict[str, float] = {}
        findings: list = load_findings(spec.out) if spec.resume else []  # the job-level findings of the run resumed
        pool_info: dict = {}
        versions: dict = {}
        interrupted, stopped = False, None
        not_run: tuple[str, ...] = ()
        finished = 0
        stream = stack.enter_context(RecordStream(spec.out, header, append=spec.resume))
        log = stack.enter_context(FindingsLog(spec.out, append=spec.resume))  # job-level findings, for --resume
        target = None
        if pool is not None:
            pool.on_finding = log
        else:
            target = make_target(spec.backend, loss_factory=load_factory(spec.loss_factory))
        generated = plan.cases_at(todo)
        chunks = iter(lambda: list(itertools.islice(generated, CHUNK)), [])
        first = 0  # where in todo the chunk at hand begins
        # the base suite's traced and compiled calls stay in a worker's memory: the sweep after them starts on
        # new workers (WorkerPool.renew: a few seconds of imports; the whole nightly's peak PSS 1,764 -> 1,626 MiB, measured)
        renew_at = plan.sweep_from if pool is not None and todo and todo[0] < (plan.sweep_from or 0) else None
        try:
            for chunk in chunks:
                left = None if deadline_at is None else max(0.0, deadline_at - time.perf_counter())
                step = None if progress is None else _offset(progress, finished, len(todo))
                if target is None:
                    result, versions = run_parallel(
                        chunk, registry, workers=workers, profile=spec.profile, progress=step, on_record=stream.append,
                        pool=pool, deadline=left,
                    )  # fmt: skip
                else:
                    result = run_cases(chunk, target, registry, profile=spec.profile, progress=step, on_record=stream.append, deadline=left)
                    versions = target.versions()
                hit = _file_all(bulk, result.records)  # every record the stream holds is in the report too
                finished += len(result.records)
                for k, v in result.seconds.items():
                    seconds[k] = seconds.get(k, 0.0) + v
                findings += list(result.findings)
                pool_info = dict(result.pool)
                if result.interrupted or hit or result.deadline is not None:
                    interrupted, stopped = result.interrupted or hit, None if result.deadline is None else spec.deadline
                    ran = {r.case.id for r in result.records}
                    not_run = tuple(cid for cid in _take(ids, todo[first:]) if cid not in ran)
                    break
                first += len(chunk)
                if renew_at is not None and first < len(todo) and todo[first] >= renew_at:
                    pool.renew()
                    renew_at = None
        except KeyboardInterrupt:  # while the next chunk was generated: what ran stands, the rest did not run
            interrupted = True
            not_run = tuple(_take(ids, todo[first:]))
        if own_pool and pool is not None:
            pool.close()  # before the reports: the workers wind down while nothing else waits on them
        elif pool is not None:
            pool.on_finding = None  # the caller's pool outlives this run's findings log
    kept_ids = {r.case.id for r in bulk.kept}  # (a few thousand: the order of a million ids is not built)
    order = {cid: i for i, cid in enumerate(_take(ids, plan.positions)) if cid in kept_ids}
    kept = tuple(sorted(bulk.kept, key=lambda r: order.get(r.case.id, len(order))))
    result = RunResult(kept, seconds, interrupted, stopped, not_run, tuple(findings), pool_info)
    run_meta = meta(
        seed=spec.seed,
        profile=spec.profile,
        versions=versions,
        env=environment_flags(),
        extra={
            "argv": list(spec.argv), "registry": spec.registry, "suite": header["suite"], "suite_size": len(plan.positions),
            "max_cases": spec.max_cases, "select": spec.select, "shard": list(spec.shard) if spec.shard else None,
            "workers": workers, "resumed_records": len(done), "loss_factory": spec.loss_factory,
            "wall_seconds": round(time.perf_counter() - t0, 3), "suite_name": spec.suite, "seeds": header["seeds"],
            "backend": {
                "name": spec.backend, "version": versions.get("backend_version"), "keras": versions.get("keras"),
                "skipped": dict(sorted(plan.skipped.items())),
            },
            "coverage": coverage(plan.covered(), space_for(spec.suite)).as_dict(),
        },
    )  # fmt: skip
    if not bulk.summarised:  # every record is kept: the reports are a small run's, with no bulk section
        bulk.discard()
        return RunOutput(result, run_meta, None, spec.profile)
    return RunOutput(result, run_meta, bulk, spec.profile)


def _offset(progress: Callable[[int, int], None], offset: int, total: int) -> Callable[[int, int], None]:
    """A chunk's progress as the run's: ``done`` counted from the records before the chunk."""

    def step(done: int, _total: int) -> None:
        progress(offset + done, total)

    return step


def _take(ids: Sequence[str], positions: Sequence[int]) -> Iterator[str]:
    """The ids at ``positions``, in order (a suite's ``SuiteIds.take``, which reads a range of them fast)."""
    take = getattr(ids, "take", None)
    return take(positions) if take is not None else (ids[p] for p in positions)


def _file_all(bulk: Any, records: Sequence[Any]) -> bool:
    """``bulk.add`` every record, even when Ctrl-C comes meanwhile (the stream has them all already); whether
    it came."""
    pending, hit = iter(records), False
    while True:
        try:
            for r in pending:
                bulk.add(r)
            return hit
        except KeyboardInterrupt:
            hit = True


# -- merge and replay ---------------------------------------------------------------------------------------


def _pep440(version: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        Version(version)
    except InvalidVersion:
        return False
    return True


def merge(dirs: Sequence[str], out: str, *, registry_path: str | None = None, argv: Sequence[str] = ()) -> RunOutput:
    """The record streams of a run's shards in ``dirs`` joined into one run for ``out``'s reports."""
    from harness.judge.registry import DEFAULT_REGISTRY, load_registry
    from harness.report.bulk import RESULTS_JSON_MAX, Bulk
    from harness.report.summary import meta
    from harness.run.runner import RunResult
    from harness.run.stream import check_merge_out, check_shards, iter_stream, merge_records, read_provenance

    check_merge_out(out, dirs)
    provenance = read_provenance(dirs)  # before the streams are read: the shards' versions must agree
    # the entries whose ranges hold for the TensorFlow and Keras the shards ran on
    # (a version that is not PEP 440, as a planted target's, places no ranged entry: it counts as unknown)
    shard_versions = [v if isinstance(v, str) and _pep440(v) else None for v in (provenance.get("tensorflow"), provenance.get("keras"))]
    registry = load_registry(registry_path or str(DEFAULT_REGISTRY)).for_versions(*shard_versions)
    metas: list[dict[str, Any]] = []
    groups: list[Sequence[Any]] = []
    bulk = None
    streams = [iter_stream(d, registry) for d in dirs]  # every header first: the merged run's size
    size = sum(m.get("size") or 0 for m, _ in streams)
    for m, records in streams:
        if m.get("suite_name", "default") != "default" or m.get("seeds") is not None:
            # a streamed suite's shard: read in bounded memory (report/bulk.py)
            if bulk is None:
                out_folder(out, reports_of="merge")
                bulk = Bulk(out, keep=in_base, json=size <= RESULTS_JSON_MAX)
            ids: list[_Id] = []
            for r in records:
                ids.append(_Id(r.case.id))
                bulk.add(r)
            groups.append(ids)
        else:
            groups.append(list(records))
        metas.append(m)
    try:
        check_same_slices(dirs, metas)
        check_shards(dirs, metas, groups)
    except InputError:
        if bulk is not None:
            bulk.discard()
        raise
    backends = {m.get("backend", "tensorflow") for m in metas}
    if len(backends) > 1:
        if bulk is not None:
            bulk.discard()
        raise UsageError(f"the shards ran under different Keras backends ({', '.join(sorted(backends))}); compare them instead")
    out_folder(out, reports_of="merge")
    merged = merge_records(groups) if bulk is None else bulk.kept
    run_meta = meta(
        seed=metas[0].get("seed"),
        profile=metas[0].get("profile", "keras3"),
        versions=provenance["target"] or {},
        env=provenance["environment"],
        extra={
            **provenance,  # the shards' versions, platform and CPU flags, not this machine's
            "merged_from": [str(Path(d)) for d in dirs],
            "shards": [m.get("shard") for m in metas],
            "loss_factory": metas[0].get("loss_factory"),
            "argv": list(argv),
            "backend": {"name": backends.pop()},
        },
    )
    return RunOutput(RunResult(tuple(merged)), run_meta, bulk, metas[0].get("profile", "keras3"))


def replay(
    files: Sequence[str],
    out: str,
    *,
    registry_path: str | None = None,
    profile: str = "auto",
    loss_factory: str | None = None,
    max_case_bytes: int | None = None,
    argv: Sequence[str] = (),
) -> RunOutput:
    """The saved cases in ``files`` (case files or folders of them) run again, for ``out``'s reports."""
    from harness.frameworks import TFTarget, environment_flags, load_factory
    from harness.generate.saved import MAX_CASE_BYTES, case_files, load_case
    from harness.report.summary import meta
    from harness.run.runner import run_cases

    spec, selection, registry = prepare(RunSpec(out=out, registry=registry_path or "", profile=profile, loss_factory=loss_factory))
    found = case_files(files)
    if not found:
        raise UsageError(f"no case file (*.json) in {' '.join(files)}")
    cases = [load_case(f, max_bytes=MAX_CASE_BYTES if max_case_bytes is None else max_case_bytes) for f in found]
    out_folder(out, reports_of="replay")
    target = TFTarget(loss_factory=load_factory(loss_factory))
    result = run_cases(cases, target, registry, profile=selection.profile)
    run_meta = meta(
        seed=None,
        profile=selection.profile,
        versions=target.versions(),
        env=environment_flags(),
        extra={"argv": list(argv), "registry": spec.registry, "replayed": [str(f) for f in found], "loss_factory": loss_factory},
    )
    return RunOutput(result, run_meta, None, selection.profile)
