"""The ``bce-harness`` command line.

Exit codes (this project's own, not pytest's): 0 every record passed or is a known divergence; 1 a fail, xpass or harness error
in a record; 2 a usage or input error, said in one line on stderr; 3 an internal error.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import os
import shlex
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from harness import __version__
from harness.errors import (
    EXIT_DIVERGED,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
    HarnessError,
    InputError,
    TargetUnavailable,
    UsageError,
)
from harness.report.inert import term, term_lines

__all__ = ["main"]


class _StoreOnce(argparse._StoreAction):
    """argparse's ``store``, but an option given twice is an error, not the last one silently kept."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        given = namespace.__dict__.setdefault("_given", set())
        if option_string is not None and self.dest in given:
            parser.error(f"{option_string} given twice ({getattr(namespace, self.dest)!r} and {values!r}); give it once")
        given.add(self.dest)
        super().__call__(parser, namespace, values, option_string)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2, and an option is given at most once."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _integer(minimum: int, what: str):
    """An argparse type: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is {what}")
        return value

    return parse


_positive = _integer(1, "not a positive integer")
_seed = _integer(0, "negative")
_worker_count = _integer(0, "negative")


def _workers(text: str) -> int:
    """At most 4 per core: each worker is a process with its own TensorFlow (about half a GB), and one core's
    worth of work, so more only oversubscribe the cores and exhaust memory."""
    value = _worker_count(text)
    most = 4 * (os.cpu_count() or 1)
    if value > most:
        raise argparse.ArgumentTypeError(f"{text!r} is more than 4 per core ({most} here): each is a TensorFlow process")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _shard(text: str) -> tuple[int, int]:
    k, sep, n = text.partition("/")
    try:
        index, count = int(k), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not of the form K/N") from None
    if not sep or count < 1 or not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"{text!r} is not of the form K/N with 1 <= K <= N")
    return index, count


def _seeds(text: str) -> tuple[int, int]:
    from harness.generate.grid import parse_seeds

    try:
        return parse_seeds(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _option_specs() -> dict[str, dict]:
    """Every option that more than one command takes, defined once: its flags' keyword arguments for
    ``add_argument``.  A command adds it with ``_add(parser, "--name", default=...)`` where its default differs."""
    from harness.backends import BACKENDS
    from harness.generate.grid import DEFAULT_SEED, DEFAULT_SPECIAL_CASES, SUITES
    from harness.judge.registry import DEFAULT_REGISTRY
    from harness.oracle import PROFILES

    return {
        "--out": {"metavar": "DIR", "help": "report folder (default: %(default)s)"},
        "--seed": {"type": _seed, "default": DEFAULT_SEED, "help": "generator seed (default: %(default)s)"},
        "--select": {"default": None, "metavar": "GLOB", "help": "only cases whose id matches GLOB"},
        "--special-cases": {"default": str(DEFAULT_SPECIAL_CASES), "help": "special-case table (TOML)"},
        "--registry": {"default": str(DEFAULT_REGISTRY), "help": "known-divergence registry (TOML)"},
        "--profile": {
            "default": "auto",
            "choices": ["auto", *sorted(PROFILES)],
            "help": "semantics to judge against (default: %(default)s, from the installed TensorFlow and Keras)",
        },
        "--loss-factory": {
            "default": None, "metavar": "MODULE:FUNCTION", "help": "put this loss constructor under test instead of Keras's",
        },  # fmt: skip
        "--shard": {"type": _shard, "default": None, "metavar": "K/N", "help": "only the K-th of N slices of the work"},
        "--quiet": {"action": "store_true", "help": "no summary table"},
        "--backend": {
            "default": "tensorflow", "choices": list(BACKENDS),
            "help": "the Keras 3 backend the workers run (KERAS_BACKEND; default: %(default)s); cases a backend "
                    "cannot express are skipped and counted in the report",
        },
        "--suite": {
            "default": "default", "choices": list(SUITES),
            "help": "default (about 3,000 records), nightly (the covering array's largest sizes and a value sweep over "
            "1,350 seeds: about a million records) or exhaustive (the nightly, then the low-precision audit) "
            "(default: %(default)s)",
        },  # fmt: skip
    }


def _add(parser: argparse.ArgumentParser, specs: dict[str, dict], *names: str, **overrides) -> None:
    """Add the shared options ``names`` to ``parser``; an override (by dest) replaces one option's default
    (``out="reports/x"``) or, given as a dict, any of its keyword arguments."""
    for name in names:
        spec = dict(specs[name])
        dest = name.lstrip("-").replace("-", "_")
        if dest in overrides:
            override = overrides.pop(dest)
            spec.update(override if isinstance(override, dict) else {"default": override})
        parser.add_argument(name, **spec)
    if overrides:
        raise TypeError(f"no such shared option among {names}: {sorted(overrides)}")


def build_parser() -> argparse.ArgumentParser:
    from harness.fuzz import DEFAULT_EXAMPLES
    from harness.generate.saved import DEFAULT_REGRESSIONS, MAX_CASE_BYTES

    specs = _option_specs()
    parser = _Parser(prog="bce-harness", description="Differential harness for tf.keras.losses.BinaryCrossentropy.")
    parser.add_argument("--version", action="version", version=f"bce-harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run the default suite against the installed TensorFlow")
    _add(run, specs, "--out", "--seed", "--select", "--registry", "--special-cases", "--profile", "--quiet",
         "--loss-factory", "--shard", "--suite", "--backend", out="reports/latest")  # fmt: skip
    run.add_argument("--max-cases", type=_positive, default=None, help="at most N cases, spread over the suite")
    run.add_argument(
        "--seeds", type=_seeds, default=None, metavar="A..B",
        help="repeat the value grid (unreduced, stacked) over seeds A..B; ids end in /seed=S (nightly: 1..1350)",
    )  # fmt: skip
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--workers", type=_workers, default=None, help="TensorFlow worker processes (default: the cores; 0: in this process)"
    )
    run.add_argument("--timeout", type=_seconds, default=120.0, help="seconds a job may take before its worker is killed")
    run.add_argument("--resume", action="store_true", help="continue the interrupted run whose stream is in --out")
    run.add_argument(
        "--deadline", type=_seconds, default=None, metavar="SECONDS",
        help="stop after SECONDS (from the start), report what ran and what did not, exit 1; --resume does the rest",
    )  # fmt: skip
    run.add_argument("--force", action="store_true", help="replace the record stream of another run in --out")

    merge = sub.add_parser("merge", help="join the record streams of shard runs into one report")
    merge.add_argument("dirs", nargs="+", metavar="DIR", help="report folders of the shards (their records.jsonl)")
    _add(merge, specs, "--out", "--registry", "--quiet", out="reports/merged")

    compare = sub.add_parser("compare", help="what changed between two runs' results.json (same suite and seed)")
    compare.add_argument("base", metavar="BASE", help="results.json (or its folder) of the earlier version")
    compare.add_argument("new", metavar="NEW", help="results.json (or its folder) of the later version")
    compare.add_argument("--exact", action="store_true", help="count any change of value as drift, not only beyond the bound")
    compare.add_argument("--max-rows", type=_positive, default=5, help="cases shown per option family (default: %(default)s)")
    compare.add_argument(
        "--out", default=None, metavar="DIR", help="also write DIR/report.html, DIR/junit.xml, DIR/drift.json, DIR/regressions/*.md"
    )
    compare.add_argument("--allow-subset", action="store_true", help="compare the common cases when the runs cover different ones")
    _add(compare, specs, "--loss-factory", loss_factory={
        "help": "the factory NEW's results name (meta.loss_factory), said again so its reproductions import it; "
                "without it they print the name and call Keras's loss"})  # fmt: skip

    cases = sub.add_parser("cases", help="list the ids of the default suite")
    _add(cases, specs, "--seed", "--select", "--special-cases", "--suite")
    cases.add_argument("--seeds", type=_seeds, default=None, metavar="A..B", help="with the value sweep over seeds A..B")

    cover = sub.add_parser("coverage", help="how much of the case space a suite exercises: facet values and pairs")
    _add(cover, specs, "--seed", "--special-cases", "--suite")
    cover.add_argument("--json", action="store_true", help="the figures as JSON")
    cover.add_argument("--max-rows", type=_positive, default=20, help="missing pairs listed (default: %(default)s)")

    fuzz = sub.add_parser("fuzz", help="search the whole case space with Hypothesis; shrink and save each new divergence")
    fuzz.add_argument(
        "--examples", type=_positive, default=DEFAULT_EXAMPLES, help="cases a search round tries (default: %(default)s)"
    )
    _add(
        fuzz, specs, "--seed", "--out", "--registry", "--profile", "--loss-factory", "--shard", "--backend",
        seed={"default": None, "help": "Hypothesis seed (default: a random one, printed)"},
        out={"default": "reports/fuzz", "help": "folder for repro_<fingerprint>.py (default: %(default)s)"},
        shard={"help": "the K-th of N searches of one seed, each drawing other cases (a CI matrix of N jobs)"},
    )  # fmt: skip
    fuzz.add_argument(
        "--regressions", default=str(DEFAULT_REGRESSIONS), help="folder for <fingerprint>.json (default: %(default)s)"
    )
    fuzz.add_argument(
        "--workers", type=_workers, default=1,
        help="TensorFlow worker processes the draws run in, so a draw that aborts or hangs is a finding "
        "(default: %(default)s; 0: in this process)",
    )  # fmt: skip
    fuzz.add_argument("--timeout", type=_seconds, default=120.0, help="the most seconds a draw may take (default: %(default)s)")

    audit = sub.add_parser("audit", help="every finite float16 and bfloat16 value through the loss: an accuracy table")
    _add(audit, specs, "--out", "--profile", out="reports/audit")
    audit.add_argument(
        "--formats", default="float16,bfloat16", help="comma-separated 16-bit formats (default: %(default)s)"
    )
    _add_explain(sub, specs)

    replay = sub.add_parser("replay", help="re-run saved cases (JSON files, or folders of them) and report them as run does")
    replay.add_argument("files", nargs="+", metavar="FILE", help="case files, or folders whose *.json files are cases")
    _add(replay, specs, "--out", "--registry", "--profile", "--loss-factory", "--quiet", out="reports/replay")
    replay.add_argument(
        "--max-case-bytes", type=_positive, default=MAX_CASE_BYTES, metavar="N",
        help="refuse a case file larger than N bytes (default: %(default)s)",
    )  # fmt: skip
    return parser


def _add_explain(sub, specs: dict[str, dict]) -> None:
    from harness.case import APIS, MODES
    from harness.dtypes import FLOAT_DTYPES, INPUT_DTYPES

    ex = sub.add_parser("explain", help="the steps Keras takes on your inputs; with --manual, where your own BCE departs")
    ex.add_argument("--y-true", metavar="VALUES", help="labels: 1,0,1 or a JSON list, or a .npy/.json file")
    ex.add_argument("--y-pred", metavar="VALUES", help="predictions (probabilities, or logits with --from-logits)")
    ex.add_argument("--sample-weight", default=None, metavar="VALUES", help="sample_weight, in the same forms")
    ex.add_argument("--from-logits", action="store_true", help="y_pred are logits")
    ex.add_argument("--label-smoothing", type=float, default=0.0, help="label_smoothing (default: %(default)s)")
    ex.add_argument("--axis", type=int, default=-1, help="axis (default: %(default)s)")
    ex.add_argument("--reduction", default="sum_over_batch_size", help="reduction (default: %(default)s)")
    ex.add_argument("--dtype", default=None, choices=FLOAT_DTYPES, help="the loss's dtype (default: floatx, float32)")
    for side, default in (("true", "float32"), ("pred", "float32"), ("weight", "float32")):
        kinds = INPUT_DTYPES if side == "true" else FLOAT_DTYPES
        ex.add_argument(f"--{side}-dtype", default=default, choices=kinds, help=f"dtype of the {side} tensor (default: %(default)s)")
    ex.add_argument("--api", default="BinaryCrossentropy", choices=[a for a in APIS if not a.startswith("metrics.")])
    ex.add_argument("--mode", default="eager", choices=MODES, help="how TensorFlow is called (default: %(default)s)")
    ex.add_argument("--manual", default=None, metavar="MODULE:FUNCTION", help="your BCE (or FILE.py:FUNCTION), run on the same inputs")
    ex.add_argument("--manual-timeout", type=float, default=60.0, metavar="SECONDS",
                    help="seconds the --manual function gets, its import included (default: %(default)s)")
    ex.add_argument("--json", action="store_true", help="print the explanation as JSON")
    ex.add_argument("--no-tensorflow", action="store_true", help="the reference's steps (and --manual) only")
    _add(ex, specs, "--profile", "--registry")
    ex.add_argument("--model", default=None, metavar="PATH.keras", help="your saved model: every route of its loss on --x/--y (harness.modelcheck)")
    ex.add_argument("--x", default=None, metavar="X.npy", help="with --model: the inputs")
    ex.add_argument("--y", default=None, metavar="Y.npy", help="with --model: the labels")
    ex.add_argument("--batch-size", type=_positive, default=None, metavar="N", help="with --model: evaluate's batch_size (default: Keras's 32)")
    ex.set_defaults(loss_factory=None)  # _prepare checks it; explain runs Keras's own loss


class _Progress:
    """A one-line progress bar on a terminal; quarter marks otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.start = time.perf_counter()
        self.last_quarter = 0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total == 0:
            return
        if self.tty:
            if done == total or done % 25 == 0:
                width = 30
                filled = width * done // total
                rate = done / max(time.perf_counter() - self.start, 1e-9)
                sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {rate:.0f}/s")
                if done == total:
                    sys.stderr.write("\n")
                sys.stderr.flush()
        else:
            quarter = 4 * done // total
            if quarter > self.last_quarter:
                self.last_quarter = quarter
                sys.stderr.write(f"{done}/{total} cases\n")


def _prepare(args: argparse.Namespace, *, announce: bool = False):
    """What run, fuzz and replay do first: choose the profile (``args.profile`` becomes the chosen one, so every
    later use sees it), load the registry entries that hold for the installed TensorFlow, and fail fast on a
    --loss-factory that cannot be found.  Returns the profile selection and the registry."""
    from harness.judge.registry import load_registry
    from harness.oracle.profiles import select_profile

    registry = load_registry(args.registry)
    selection = select_profile(args.profile)
    if announce:
        print(f"profile: {selection.profile} ({selection.reason})")
    args.profile = selection.profile
    backend = getattr(args, "backend", "tensorflow")
    if backend != "tensorflow" and selection.profile != "keras3":
        raise UsageError(f"--backend {backend} runs Keras 3; profile {selection.profile!r} is Keras 2 ({selection.reason})")
    _check_factory(args.loss_factory)
    return selection, registry.for_versions(selection.tensorflow, selection.keras)


def _suite(args: argparse.Namespace, profile: str) -> tuple[list, list]:
    """The cases ``run`` runs: the default suite, selected, capped and sliced as the options say; and the
    selection before slicing (the whole run the shards are slices of)."""
    from harness.generate.grid import default_suite, select

    whole = cases = select(
        default_suite(seed=args.seed, special_cases=args.special_cases, suite=args.suite, profile=profile),
        max_cases=args.max_cases,
        pattern=args.select,
    )
    if args.shard is not None:
        k, n = args.shard
        cases = cases[k - 1 :: n]
    if not cases:
        raise UsageError(f"--select {args.select!r} matches no case")
    return cases, whole


def _resumed(args: argparse.Namespace, header: dict, registry, cases: list) -> tuple[list, list]:
    """With --resume: the records the interrupted run in --out finished, and the cases it did not."""
    from harness.run.stream import load_stream

    if not args.resume:
        return [], cases
    old_meta, done = load_stream(args.out, registry)
    # the run's identity; a registry edited meanwhile is fine (every record is judged again when read)
    keys = [k for k in header if k != "registry_sha"]
    old = {k: old_meta.get(k) for k in keys}
    old["shard"] = tuple(old["shard"]) if isinstance(old["shard"], list) else old["shard"]
    header = {k: header[k] for k in keys}
    if old != header:
        raise UsageError(f"--resume {args.out}: that run had {old}, this one {header}")
    finished = {r.case.id for r in done}
    return done, [c for c in cases if c.id not in finished]


def _cmd_run(args: argparse.Namespace) -> int:
    from harness.run.workers import default_workers

    t0 = time.perf_counter()
    if args.resume and args.force:
        raise UsageError("--resume continues the run in --out and --force replaces it: give one")
    selection, registry = _prepare(args, announce=True)
    if args.backend != "tensorflow":
        _check_backend(args.backend)
        if args.suite != "default" or args.seeds is not None:
            raise UsageError(f"--backend {args.backend} runs the default suite only (no --suite {args.suite}, no --seeds)")
    if args.suite != "default" or args.seeds is not None:
        return _cmd_run_streamed(args, selection, registry, t0)
    _check_backend(args.backend)
    workers = default_workers() if args.workers is None else args.workers
    with contextlib.ExitStack() as stack:
        pool = None
        if workers:  # started first: the workers import TensorFlow (seconds) while this process builds the suite
            from harness.run.workers import WorkerPool

            pool = stack.enter_context(WorkerPool(
                workers, factory=args.loss_factory, profile=args.profile, backend=args.backend, timeout=args.timeout,
            )).warm()  # fmt: skip
        return _run_default(args, selection, registry, workers, pool, t0)


def _claim_out(args: argparse.Namespace) -> None:
    """``--out`` for a run: a folder (made if missing) that holds no other run's record stream unless
    ``--resume`` continues it or ``--force`` replaces it."""
    from harness.run.stream import recorded

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out!r} is a file, not a folder")
    if not (args.resume or args.force) and (n := recorded(args.out)):
        raise UsageError(
            f"--out {args.out}: holds the record stream of another run ({n} records); "
            "continue it with --resume or replace it with --force"
        )
    if not args.resume:
        _out_folder(args.out)


def _run_default(args: argparse.Namespace, selection, registry, workers: int, pool, t0: float) -> int:
    """``run`` of the default suite (held in memory), in ``pool`` (None: in this process)."""
    from harness.backends import split
    from harness.frameworks import environment_flags
    from harness.generate.space import coverage, space_for
    from harness.report.summary import meta
    from harness.run.findings import FindingsLog, load_findings
    from harness.run.stream import RecordStream, file_fingerprint, suite_fingerprint

    cases, whole = _suite(args, selection.profile)
    # what the backend cannot express is skipped by construction, counted by reason in meta.backend
    cases, skipped = split(cases, args.backend)
    whole, _ = split(whole, args.backend)
    if not cases:
        raise UsageError(f"--backend {args.backend}: none of the {sum(skipped.values())} selected cases can run on it")
    for reason, n in sorted(skipped.items()):
        print(f"backend {args.backend}: {n} cases skipped ({reason})")
    suite = list(cases)  # what this run covers, before --resume drops the finished ones
    _claim_out(args)  # the inputs are good; now the output folder, before any work
    fingerprint = suite_fingerprint(cases)
    header = {
        "seed": args.seed, "profile": args.profile, "suite": fingerprint, "shard": args.shard, "select": args.select,
        "max_cases": args.max_cases, "whole_suite": suite_fingerprint(whole), "size": len(cases),
        "loss_factory": args.loss_factory, "registry_sha": file_fingerprint(args.registry),
        "special_cases_sha": file_fingerprint(args.special_cases),
    }  # fmt: skip
    if args.backend != "tensorflow":  # (a stream written before --backend existed resumes under TensorFlow)
        header["backend"] = args.backend
    done, cases = _resumed(args, header, registry, cases)
    from harness.run.estimate import kinds, render

    print(render(args.suite, kinds(cases), workers))
    found = load_findings(args.out) if args.resume else []  # the job-level findings of the run resumed

    with RecordStream(args.out, header, append=args.resume) as stream, FindingsLog(args.out, append=args.resume) as log:
        result, versions = _execute(args, cases, registry, workers, stream.append, started=t0, on_finding=log, pool=pool)
    if pool is not None:
        pool.close()  # before the reports: the workers wind down while nothing else waits on them
    if result.deadline is not None:
        result = dataclasses.replace(result, deadline=args.deadline)
    if found:
        result = dataclasses.replace(result, findings=(*found, *result.findings))
    if done:
        result = dataclasses.replace(result, records=tuple(sorted(done + list(result.records), key=_suite_order(args))))
    run_meta = meta(
        seed=args.seed,
        profile=args.profile,
        versions=versions,
        env=environment_flags(),
        extra={
            "argv": args.argv,
            "registry": args.registry,
            "suite": fingerprint,
            "suite_size": len(cases) + len(done),
            "max_cases": args.max_cases,
            "select": args.select,
            "shard": list(args.shard) if args.shard else None,
            "workers": workers,
            "resumed_records": len(done),
            "loss_factory": args.loss_factory,
            "wall_seconds": round(time.perf_counter() - t0, 3),
            "suite_name": args.suite,
            "backend": {
                "name": args.backend,
                "version": versions.get("backend_version"),
                "keras": versions.get("keras"),
                "skipped": dict(sorted(skipped.items())),
            },
            "coverage": coverage(suite, space_for(args.suite)).as_dict(),
        },
    )
    again = _again(args, add=["--resume"], drop=["--force"])
    return _finish(result, run_meta, args.out, quiet=args.quiet, started=t0, again=again)


_CHUNK = 20_000  # cases a streamed run plans and runs at once: a few MB of cases, jobs and records


def _cmd_run_streamed(args: argparse.Namespace, selection, registry, t0: float) -> int:
    """``run`` of a suite with a value sweep (nightly, exhaustive, --seeds): the cases are generated and run
    in chunks through one worker pool, every record streamed to records.jsonl, and only what the reports
    need kept in memory (report/bulk.py), so a million records run in bounded memory."""
    import itertools

    from harness.frameworks import TFTarget, environment_flags, load_factory
    from harness.generate.grid import Suite
    from harness.generate.space import coverage, space_for
    from harness.report.bulk import Bulk
    from harness.report.summary import meta
    from harness.run.estimate import kinds, render
    from harness.run.findings import FindingsLog, load_findings
    from harness.run.runner import RunResult, run_cases, run_parallel
    from harness.run.stream import RecordStream, file_fingerprint, iter_stream, suite_fingerprint
    from harness.run.workers import WorkerPool, default_workers

    suite = Suite(args.suite, seed=args.seed, special_cases=args.special_cases, paths=selection.profile == "keras3", seeds=args.seeds)
    whole = suite.chosen(max_cases=args.max_cases, pattern=args.select)
    positions = whole if args.shard is None else whole[args.shard[0] - 1 :: args.shard[1]]
    if not positions:
        raise UsageError(f"--select {args.select!r} matches no case")
    _claim_out(args)
    if importlib.util.find_spec("tensorflow") is None:
        raise TargetUnavailable("TensorFlow is not installed; install the extra: pip install 'bce-harness[tf]'")
    workers = default_workers() if args.workers is None else args.workers
    ids = list(suite.ids())
    fingerprint = suite_fingerprint([_Id(ids[p]) for p in positions])
    header = {
        "seed": args.seed, "profile": args.profile, "suite": fingerprint, "shard": args.shard, "select": args.select,
        "max_cases": args.max_cases, "whole_suite": suite_fingerprint([_Id(ids[p]) for p in whole]), "size": len(positions),
        "loss_factory": args.loss_factory, "registry_sha": file_fingerprint(args.registry),
        "special_cases_sha": file_fingerprint(args.special_cases), "suite_name": args.suite,
        "seeds": [suite.seeds.start, suite.seeds.stop - 1] if suite.seeds else None,
    }  # fmt: skip
    bulk = Bulk(args.out, keep=_in_base)
    done: set[str] = set()
    if args.resume:
        old_meta, old = iter_stream(args.out, registry)
        keys = [k for k in header if k != "registry_sha"]
        theirs = {k: (tuple(old_meta[k]) if k == "shard" and isinstance(old_meta.get(k), list) else old_meta.get(k)) for k in keys}
        if theirs != {k: header[k] for k in keys}:
            raise UsageError(f"--resume {args.out}: that run had {theirs}, this one {{k: header[k] for k in keys}}")
        for r in old:
            done.add(r.case.id)
            bulk.add(r)
    todo = [p for p in positions if ids[p] not in done]
    nb = len(suite.base)
    counts = kinds(suite.base[p] for p in todo if p < nb)
    sweep = sum(1 for p in todo if p >= nb)
    if sweep:  # every sweep case is of one kind per seed position; one seed's kinds scaled
        per = kinds(suite.cases_at(range(nb, nb + suite.per_seed)))
        for k, v in per.items():
            counts[k] += round(v * sweep / suite.per_seed)
    print(render(args.suite, counts, workers))
    progress = _Progress(not args.no_progress)
    total = len(todo)
    deadline_at = None if args.deadline is None else t0 + args.deadline
    records_seconds: dict[str, float] = {}
    findings: list = load_findings(args.out) if args.resume else []  # the job-level findings of the run resumed
    pool_info: dict = {}
    versions: dict = {}
    interrupted, stopped, not_run = False, None, ()
    finished = 0
    with contextlib.ExitStack() as stack:
        stream = stack.enter_context(RecordStream(args.out, header, append=args.resume))
        log = stack.enter_context(FindingsLog(args.out, append=args.resume))  # job-level findings, for --resume
        if workers:
            pool = stack.enter_context(
                WorkerPool(workers, factory=args.loss_factory, profile=args.profile, timeout=args.timeout)
            ).warm()  # the workers import TensorFlow while this process generates the first chunk
            pool.on_finding = log
        else:
            target = TFTarget(loss_factory=load_factory(args.loss_factory))
        generated = suite.cases_at(todo)
        chunks = iter(lambda: list(itertools.islice(generated, _CHUNK)), [])
        first = 0  # where in todo the chunk at hand begins
        try:
            for chunk in chunks:
                left = None if deadline_at is None else max(0.0, deadline_at - time.perf_counter())
                offset = finished

                def step(done_now: int, _total: int, offset: int = offset) -> None:
                    progress(offset + done_now, total)

                if workers:
                    result, versions = run_parallel(
                        chunk, registry, workers=workers, profile=args.profile, progress=step, on_record=stream.append,
                        pool=pool, deadline=left,
                    )  # fmt: skip
                else:
                    result = run_cases(chunk, target, registry, profile=args.profile, progress=step, on_record=stream.append, deadline=left)
                    versions = target.versions()
                hit = _file_all(bulk, result.records)  # every record the stream holds is in the report too
                finished += len(result.records)
                for k, v in result.seconds.items():
                    records_seconds[k] = records_seconds.get(k, 0.0) + v
                findings += list(result.findings)
                pool_info = dict(result.pool)
                if result.interrupted or hit or result.deadline is not None:
                    interrupted, stopped = result.interrupted or hit, None if result.deadline is None else args.deadline
                    ran = {r.case.id for r in result.records}
                    not_run = tuple(ids[p] for p in todo[first:] if ids[p] not in ran)
                    break
                first += len(chunk)
        except KeyboardInterrupt:  # while the next chunk was generated: what ran stands, the rest did not run
            interrupted = True
            not_run = tuple(ids[p] for p in todo[first:])
    kept_ids = {r.case.id for r in bulk.kept}
    order = {ids[p]: i for i, p in enumerate(positions) if ids[p] in kept_ids}
    kept = tuple(sorted(bulk.kept, key=lambda r: order.get(r.case.id, len(order))))
    result = RunResult(kept, records_seconds, interrupted, stopped, not_run, tuple(findings), pool_info)
    run_meta = meta(
        seed=args.seed,
        profile=args.profile,
        versions=versions,
        env=environment_flags(),
        extra={
            "argv": args.argv, "registry": args.registry, "suite": fingerprint, "suite_size": len(positions),
            "max_cases": args.max_cases, "select": args.select, "shard": list(args.shard) if args.shard else None,
            "workers": workers, "resumed_records": len(done), "loss_factory": args.loss_factory,
            "wall_seconds": round(time.perf_counter() - t0, 3), "suite_name": args.suite, "seeds": header["seeds"],
            # the sweep repeats the value grid's facets: the base suite's coverage is the run's
            "coverage": coverage(suite.base, space_for(args.suite)).as_dict(),
        },
    )  # fmt: skip
    again = _again(args, add=["--resume"], drop=["--force"])
    code = _finish(result, run_meta, args.out, quiet=args.quiet, started=t0, again=again, bulk=bulk)
    if args.suite == "exhaustive" and not (interrupted or stopped is not None):
        _audit_into(args.out, args.profile)
    return code


def _file_all(bulk, records) -> bool:
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


def _in_base(record) -> bool:
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


def _execute(
    args: argparse.Namespace, cases: list, registry, workers: int, on_record, *, started: float, on_finding=None, pool=None
):
    """Run ``cases`` in this process (``--workers 0``) or in worker processes; the result and the versions."""
    from harness.frameworks import load_factory, make_target
    from harness.run.runner import run_cases, run_parallel

    progress = _Progress(not args.no_progress)
    # --deadline counts from the start of the command: what is left of it when the cases start
    deadline = None if args.deadline is None else max(0.0, args.deadline - (time.perf_counter() - started))
    if workers == 0:
        target = make_target(args.backend, loss_factory=load_factory(args.loss_factory))
        result = run_cases(
            cases, target, registry, profile=args.profile, progress=progress, on_record=on_record, deadline=deadline
        )
        return result, target.versions()
    if pool is not None:
        pool.on_finding = on_finding
    return run_parallel(
        cases,
        registry,
        pool=pool,
        workers=workers,
        factory=args.loss_factory,
        profile=args.profile,
        backend=args.backend,
        timeout=args.timeout,
        progress=progress,
        on_record=on_record,
        deadline=deadline,
        on_finding=on_finding,
    )


def _suite_order(args: argparse.Namespace):
    """Sort key putting records back in suite order after a resume."""
    from harness.generate.grid import default_suite

    order = {c.id: i for i, c in enumerate(default_suite(seed=args.seed, special_cases=args.special_cases, suite=args.suite, profile=args.profile))}
    return lambda r: order.get(r.case.id, len(order))


def _check_backend(backend: str) -> None:
    """Fail fast, in one line, when the packages ``backend`` needs are not installed (without importing them)."""
    if backend == "tensorflow":
        if importlib.util.find_spec("tensorflow") is None:
            raise TargetUnavailable("TensorFlow is not installed; install the extra: pip install 'bce-harness[tf]'")
        return
    needs = {"jax": ("keras", "jax", "jaxlib"), "torch": ("keras", "torch"), "numpy": ("keras", "scipy")}
    for package in needs[backend]:
        if importlib.util.find_spec(package) is None:
            raise TargetUnavailable(f"{package} is not installed (--backend {backend}); install the extra: pip install 'bce-harness[{backend}]'")


def _check_factory(spec: str | None) -> None:
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


def _out_folder(path: str, option: str = "--out", *, reports_of: str | None = None) -> None:
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


def _again(args: argparse.Namespace, *, add: Sequence[str] = (), drop: Sequence[str] = ()) -> str:
    """The command line that repeats this run exactly, ``drop`` left out and ``add`` put in, shell-quoted."""
    argv = [a for a in args.argv if a not in drop]
    return "bce-harness " + shlex.join(argv + [a for a in add if a not in argv])


def _finish(result, run_meta: dict, out: str, *, quiet: bool, started: float, again: str = "", bulk=None) -> int:
    """Write the reports, print the summary, and choose the exit code."""
    from harness.report.summary import summary_table, totals, write_reports

    t = totals(result, bulk)
    if not quiet:
        print(term_lines(summary_table(result.records, bulk)))
    paths = write_reports(result, run_meta, out, bulk)
    if not quiet:
        print()
    print(
        f"{t['total']} records: {t['pass']} passed, {t['fail']} failed, {t['xfail']} xfailed, {t['xpass']} xpassed, "
        f"{t['error']} errors"
        + "".join(f", {t[s]} {s}" for s in ("outside", "unsupported") if t.get(s))
        + f" in {time.perf_counter() - started:.1f}s"
    )
    inferred: dict[str, int] = {}
    for r in sorted(result.records, key=lambda r: r.comparison.kind not in ("crash", "timeout")):
        if r.evidence is not None and r.evidence.get("inferred"):
            inferred[r.evidence["class"]] = inferred.get(r.evidence["class"], 0) + 1
        elif r.status in ("fail", "xpass", "error"):
            print(f"{r.status.upper()} [{term(r.comparison.kind)}] {term(r.case.id)}")
    for cls, n in inferred.items():
        print(f"FAIL [{term(cls)}] {n} more records of this class, inferred (report.md lists them)")
    for f in getattr(result, "findings", ()):
        print(f"FAIL [{term(f['kind'])}] {term(f['message'])}")
    print(f"report: {paths['report']}  results: {paths['results']}")
    if result.interrupted:
        print(f"bce-harness: interrupted; the report is partial (continue with: {again or '--resume --out ' + shlex.quote(out)})", file=sys.stderr)
        return EXIT_USAGE
    if getattr(result, "deadline", None) is not None:
        print(
            f"bce-harness: deadline of {result.deadline:g}s reached: {t['total']} records written, {len(result.not_run)} "
            f"cases did not run (report.md lists them); continue with: --resume --out {out}",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    return EXIT_OK if result.ok else EXIT_DIVERGED


def _pep440(version: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        Version(version)
    except InvalidVersion:
        return False
    return True


def _cmd_merge(args: argparse.Namespace) -> int:
    from harness.judge.registry import load_registry
    from harness.report.bulk import Bulk
    from harness.report.summary import meta
    from harness.run.runner import RunResult
    from harness.run.stream import check_merge_out, check_shards, iter_stream, merge_records, read_provenance

    t0 = time.perf_counter()
    check_merge_out(args.out, args.dirs)
    provenance = read_provenance(args.dirs)  # before the streams are read: the shards' versions must agree
    # the entries whose ranges hold for the TensorFlow and Keras the shards ran on
    # (a version that is not PEP 440, as a planted target's, places no ranged entry: it counts as unknown)
    shard_versions = [v if isinstance(v, str) and _pep440(v) else None for v in (provenance.get("tensorflow"), provenance.get("keras"))]
    registry = load_registry(args.registry).for_versions(*shard_versions)
    metas, groups = [], []
    bulk = None
    for d in args.dirs:
        m, records = iter_stream(d, registry)
        if m.get("suite_name") is not None:  # a streamed suite's shard: read in bounded memory (report/bulk.py)
            if bulk is None:
                _out_folder(args.out, reports_of="merge")
                bulk = Bulk(args.out, keep=_in_base)
            ids = []
            for r in records:
                ids.append(_Id(r.case.id))
                bulk.add(r)
            groups.append(ids)
        else:
            groups.append(list(records))
        metas.append(m)
    try:
        check_shards(args.dirs, metas, groups)
    except InputError:
        if bulk is not None:
            bulk.discard()
        raise
    backends = {m.get("backend", "tensorflow") for m in metas}
    if len(backends) > 1:
        if bulk is not None:
            bulk.discard()
        raise UsageError(f"the shards ran under different Keras backends ({', '.join(sorted(backends))}); compare them instead")
    _out_folder(args.out, reports_of="merge")
    records = merge_records(groups) if bulk is None else bulk.kept
    run_meta = meta(
        seed=metas[0].get("seed"),
        profile=metas[0].get("profile", "keras3"),
        versions=provenance["target"] or {},
        env=provenance["environment"],
        extra={
            **provenance,  # the shards' versions, platform and CPU flags, not this machine's
            "merged_from": [str(Path(d)) for d in args.dirs],
            "shards": [m.get("shard") for m in metas],
            "loss_factory": metas[0].get("loss_factory"),
            "argv": args.argv,
            "backend": {"name": backends.pop()},
        },
    )
    return _finish(RunResult(tuple(records)), run_meta, args.out, quiet=args.quiet, started=t0, bulk=bulk)


def _cmd_fuzz(args: argparse.Namespace) -> int:
    import datetime
    import random

    from harness.frameworks import load_factory, make_target
    from harness.fuzz import fuzz, require_hypothesis, save_finding, shard_seed
    from harness.run.workers import PooledTarget, WorkerPool

    require_hypothesis()
    selection, registry = _prepare(args)
    _check_backend(args.backend)
    if selection.profile != "keras3":
        raise UsageError(f"fuzz draws Keras 3 options; profile {selection.profile!r} is not supported ({selection.reason})")
    _out_folder(args.out)  # before the search: its findings are written only at the end
    _out_folder(args.regressions, "--regressions")
    # with shards, the seed named (or drawn) is the search's, and each shard derives its own from it
    seed = args.seed if args.seed is not None or args.shard is None else random.SystemRandom().randrange(2**32)
    with contextlib.ExitStack() as stack:
        if args.workers == 0:
            target = make_target(args.backend, loss_factory=load_factory(args.loss_factory))
        else:  # each draw is its own job: no quarantine, and a crash is the draw's (Hypothesis shrinks it)
            pool = WorkerPool(
                args.workers, factory=args.loss_factory, profile=selection.profile, timeout=args.timeout,
                quarantine=False, retry_crashes=False, spare="after-failure", backend=args.backend,
            )  # fmt: skip
            target = PooledTarget(stack.enter_context(pool))
        result = fuzz(
            target, registry, examples=args.examples, seed=None if seed is None else shard_seed(seed, args.shard),
            profile=selection.profile, backend=args.backend,
        )  # fmt: skip
        versions = target.versions()
    seed = result.seed if seed is None else seed
    shard = "" if args.shard is None else f" --shard {args.shard[0]}/{args.shard[1]}"
    provenance = {
        "found_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": seed,
        "shard": None if args.shard is None else list(args.shard),
        "examples": args.examples,
        "profile": selection.profile,
        "tensorflow": versions.get("tensorflow"),
        "keras": versions.get("keras"),
        "backend": args.backend,
        "backend_version": versions.get("backend_version"),
        "loss_factory": args.loss_factory,
    }
    print(f"fuzz: {result.calls} cases in {result.seconds:.1f}s, seed {seed}{shard}, {args.examples} examples a round")
    if result.known:
        print("known divergences met: " + ", ".join(f"{k} x{n}" for k, n in result.known.items()))
    for finding in result.findings:
        saved = save_finding(finding, out=args.out, regressions=args.regressions, provenance=provenance)
        print(f"{'NEW' if saved.new else 'SEEN'} [{finding.comparison.kind}] {finding.case.id}")
        print("  " + finding.comparison.message.replace("\n", "\n  "))
        print(f"  reproduction: {saved.repro}")
        print(f"  case: {saved.regression}" + ("" if saved.new else " (saved before, left as it was)"))
    if not result.findings:
        print("no unregistered divergence")
        return EXIT_OK
    again = ["fuzz", "--seed", str(seed), *(["--shard", f"{args.shard[0]}/{args.shard[1]}"] if args.shard else []),
             "--examples", str(args.examples), "--out", args.out, "--regressions", args.regressions,
             "--registry", args.registry, "--profile", args.profile,
             *(["--backend", args.backend] if args.backend != "tensorflow" else []),
             *(["--loss-factory", args.loss_factory] if args.loss_factory else [])]  # fmt: skip
    print(f"{len(result.findings)} unregistered divergence(s); again: bce-harness {shlex.join(again)}")
    return EXIT_DIVERGED


def _cmd_replay(args: argparse.Namespace) -> int:
    from harness.frameworks import TFTarget, environment_flags, load_factory
    from harness.generate.saved import case_files, load_case
    from harness.report.summary import meta
    from harness.run.runner import run_cases

    t0 = time.perf_counter()
    selection, registry = _prepare(args)
    files = case_files(args.files)
    if not files:
        raise UsageError(f"no case file (*.json) in {' '.join(args.files)}")
    cases = [load_case(f, max_bytes=args.max_case_bytes) for f in files]
    _out_folder(args.out, reports_of="replay")
    target = TFTarget(loss_factory=load_factory(args.loss_factory))
    result = run_cases(cases, target, registry, profile=selection.profile)
    run_meta = meta(
        seed=None,
        profile=selection.profile,
        versions=target.versions(),
        env=environment_flags(),
        extra={
            "argv": args.argv,
            "registry": args.registry,
            "replayed": [str(f) for f in files],
            "loss_factory": args.loss_factory,
        },
    )
    return _finish(result, run_meta, args.out, quiet=args.quiet, started=t0)


def _cmd_compare(args: argparse.Namespace) -> int:
    from harness.report.columns import ColumnsFile, columns_path, compare_columns
    from harness.report.drift import compare_results, coverage_text, load_results, render_text
    from harness.report.issue import render_issues, write_compare_reports
    from harness.run.stream import recorded

    base_columns, new_columns = columns_path(args.base), columns_path(args.new)
    columns = None
    if base_columns is not None and new_columns is not None:
        # both runs wrote results.parquet: compared out of core (report/columns.py), two million-record runs
        # in well under the memory of one results.json; NEW's records are read whole only for --out's reports
        columns = ColumnsFile(new_columns)
        base_file = ColumnsFile(base_columns)
        new, base = {"meta": columns.meta}, {"meta": base_file.meta}
    else:
        new = load_results(args.new)
        base = load_results(args.base)
    try:
        drift = compare_results(base, new, exact=args.exact) if columns is None else compare_columns(base_file, columns, exact=args.exact)
    except UsageError as exc:  # an array of one of the files that does not decode
        raise InputError(f"{base['meta']['source']} or {new['meta']['source']}: {exc}") from None
    if (drift.only_base or drift.only_new) and not args.allow_subset:
        raise UsageError(f"{coverage_text(drift)}; compare the {drift.compared} common cases with --allow-subset")
    # every input read and every reproduction built before the first line is printed: a bad record or audit
    # is one error line, with nothing half printed and no regressions/ left empty
    audit_lines = _audit_drift(args.base, args.new)
    issues = None
    if args.out is not None:
        if (Path(args.out) / "results.json").exists() or recorded(args.out):
            raise UsageError(f"--out {args.out}: holds a run's reports, whose report.html and junit.xml compare would replace; choose another")
        _out_folder(args.out)
        if columns is not None:  # the HTML and JUnit reports list every record of NEW
            new = columns.results()
        named = new["meta"].get("loss_factory")
        if args.loss_factory is not None and args.loss_factory != named:
            raise UsageError(f"--loss-factory {args.loss_factory}: {new['meta']['source']} was run with {named!r}; name that one, or none")
        issues = render_issues(drift, loss_factory=args.loss_factory)
    print(term_lines(render_text(drift, max_rows=args.max_rows)))
    for line in audit_lines:
        print(line)
    if args.out is not None:
        paths = write_compare_reports(drift, new, args.out, loss_factory=args.loss_factory, issues=issues)
        print(f"report: {paths['html']}  junit: {paths['junit']}  regressions: {len(paths['regressions'])} in {paths['regressions_dir']}")
    return EXIT_DIVERGED if drift.regressed else EXIT_OK


def _audit_drift(base: str, new: str) -> list[str]:
    """Where both runs' folders hold an audit.json (bce-harness audit --out), the lines that say which groups'
    accuracy moved; each audit.json read against its schema (audit.AUDIT)."""
    from harness.audit import audit_drift, load_audit

    def audit_of(where: str) -> dict | None:
        folder = Path(where) if Path(where).is_dir() else Path(where).parent
        return load_audit(folder / "audit.json")

    a, b = audit_of(base), audit_of(new)
    if a is None or b is None:
        return []
    moved = audit_drift(a, b)
    return [f"low-precision audit: {len(moved)} group(s) moved" + (":" if moved else ""), *(f"  {term(line)}" for line in moved)]


def _cmd_explain(args: argparse.Namespace) -> int:
    import json

    from harness.case import Options
    from harness.explain import build_case, explain, parse_array, render_text

    selection, registry = _prepare(args)
    if args.model is not None:
        return _explain_model(args, selection.profile, registry)
    if args.y_true is None or args.y_pred is None:
        raise UsageError("explain needs --y-true and --y-pred (or --model with --x and --y)")
    case = build_case(
        parse_array(args.y_true, "--y-true"), parse_array(args.y_pred, "--y-pred"),
        sample_weight=None if args.sample_weight is None else parse_array(args.sample_weight, "--sample-weight"),
        options=Options(from_logits=args.from_logits, label_smoothing=args.label_smoothing, axis=args.axis,
                        reduction=None if args.reduction == "None" else args.reduction, dtype=args.dtype),
        true_dtype=args.true_dtype, pred_dtype=args.pred_dtype, weight_dtype=args.weight_dtype, api=args.api, mode=args.mode,
    )  # fmt: skip
    target = None
    if not args.no_tensorflow:
        from harness.frameworks import TFTarget

        target = TFTarget()
    if not args.manual_timeout > 0:
        raise UsageError(f"--manual-timeout={args.manual_timeout!r} is not a positive number of seconds")
    result = explain(case, profile=selection.profile, target=target, manual=args.manual, registry=registry,
                     timeout=args.manual_timeout)
    print(json.dumps(result.as_dict(), indent=1) if args.json else render_text(result))
    tf_ok = result.verdict is None or not result.verdict.startswith("fail")
    manual_ok = result.diagnosis is None or result.diagnosis.verdict == "agrees"
    return EXIT_OK if tf_ok and manual_ok else EXIT_DIVERGED


def _explain_model(args: argparse.Namespace, profile: str, registry) -> int:
    from harness.modelcheck import as_json, check_model, load_array, render_text

    if args.x is None or args.y is None:
        raise UsageError("explain --model needs --x X.npy and --y Y.npy")
    sw = None if args.sample_weight is None else load_array(args.sample_weight, "--sample-weight")
    report = check_model(args.model, load_array(args.x, "--x"), load_array(args.y, "--y"), sample_weight=sw,
                         batch_size=args.batch_size, registry=registry, profile=profile)  # fmt: skip
    print(as_json(report) if args.json else render_text(report))
    return report.exit_code


def _cmd_cases(args: argparse.Namespace) -> int:
    import fnmatch

    from harness.generate.grid import Suite

    # the ids alone (a streamed suite's sweep ids need no arrays): the nightly's million list in seconds
    suite = Suite(args.suite, seed=args.seed, special_cases=args.special_cases, seeds=args.seeds)
    found = 0
    for cid in suite.ids():
        if args.select is None or fnmatch.fnmatchcase(cid, args.select):
            print(cid)
            found += 1
    if not found:
        raise UsageError(f"--select {args.select!r} matches no case")
    return EXIT_OK


def _cmd_coverage(args: argparse.Namespace) -> int:
    import json

    from harness.generate.grid import default_suite
    from harness.generate.space import coverage, space_for
    from harness.report.summary import render_coverage

    cases = default_suite(seed=args.seed, special_cases=args.special_cases, suite=args.suite)
    found = coverage(cases, space_for(args.suite)).as_dict(listed=args.max_rows)
    if args.json:
        print(json.dumps(found, indent=1))
        return EXIT_OK
    print(render_coverage(found, suite=args.suite, cases=len(cases)))
    return EXIT_OK


def _cmd_audit(args: argparse.Namespace) -> int:
    from harness.audit import AUDIT_FORMATS
    from harness.oracle.profiles import select_profile

    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    unknown = [f for f in formats if f not in AUDIT_FORMATS]
    if not formats or unknown:
        raise UsageError(f"--formats {args.formats!r}: each must be one of {', '.join(AUDIT_FORMATS)}")
    selection = select_profile(args.profile)
    _audit_into(args.out, selection.profile, formats)
    return EXIT_OK


def _audit_into(out_dir: str, profile: str, formats: tuple[str, ...] | None = None) -> None:
    """The low-precision audit into ``out_dir`` (audit.json, audit.md, audit.html), its text printed: the
    ``audit`` command, and the last part of ``run --suite exhaustive``."""
    import json

    from harness.audit import AUDIT_FORMATS, render_audit, render_audit_html, run_audit
    from harness.frameworks import TFTarget
    from harness.jsonio import atomic_write_text

    target = TFTarget()
    found = run_audit(target, formats=formats or AUDIT_FORMATS, profile=profile)
    versions = target.versions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = render_audit(found, versions=versions)
    atomic_write_text(out / "audit.json", json.dumps({"versions": versions, "profile": profile, **found}, indent=1))
    atomic_write_text(out / "audit.md", text)
    atomic_write_text(out / "audit.html", render_audit_html(found, versions=versions))
    print(text)
    print(f"audit: {sum(r.get('n', 0) for r in found['rows'])} values in {found['seconds']['total']}s; {out / 'audit.md'}")


_COMMANDS = {
    "run": _cmd_run,
    "merge": _cmd_merge,
    "compare": _cmd_compare,
    "fuzz": _cmd_fuzz,
    "replay": _cmd_replay,
    "cases": _cmd_cases,
    "coverage": _cmd_coverage,
    "audit": _cmd_audit,
    "explain": _cmd_explain,
}


_ERROR_CAP = 2000  # characters of an error message: a 10 MB value from a file is cut, not printed


def main(argv: Sequence[str] | None = None) -> int:
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = build_parser().parse_args(argv)
        args.argv = argv
        return _COMMANDS[args.command](args)
    except HarnessError as exc:
        print(f"bce-harness: error: {term(exc, _ERROR_CAP)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # before the run started or while reports were written: as pytest, exit 2
        print("bce-harness: interrupted", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:  # a path or the environment (read-only, full, not a folder, /proc): the user's to fix
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        print(f"bce-harness: error: {term(where + ': ' if where else '', _ERROR_CAP)}{term(exc.strerror or exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - the last line of defence: exit 3, one line unless asked
        if os.environ.get("BCE_HARNESS_DEBUG"):
            traceback.print_exc()
        print(
            f"bce-harness: internal error: {type(exc).__name__}: {term(exc, _ERROR_CAP)} (set BCE_HARNESS_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
