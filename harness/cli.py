"""The ``bce-harness`` command line.

Exit codes (this project's own, not pytest's): 0 every record passed or is a known divergence; 1 a fail, xpass or harness error
in a record; 2 a usage or input error, said in one line on stderr; 3 an internal error.
"""

from __future__ import annotations

import argparse
import contextlib
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
    UsageError,
)
from harness.report.inert import term, term_lines

__all__ = ["main"]


class _StoreOnce(argparse._StoreAction):
    """argparse's ``store``, but an option given twice is an error, not the last one silently kept."""

    def __call__(self, parser, namespace, values, option_string=None):
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
    """What run, fuzz, explain and replay do first (engine.prepare): choose the profile (``args.profile``
    becomes the chosen one, so every later use sees it) and load the registry entries that hold for the
    installed TensorFlow and Keras.  Returns the profile selection and the registry."""
    from harness.engine import RunSpec, prepare

    spec = RunSpec(registry=args.registry, profile=args.profile, loss_factory=args.loss_factory, backend=getattr(args, "backend", "tensorflow"))
    spec, selection, registry = prepare(spec, say=print if announce else lambda _: None)
    args.profile = spec.profile
    return selection, registry


def _cmd_run(args: argparse.Namespace) -> int:
    from harness.engine import RunSpec, run

    t0 = time.perf_counter()
    spec = RunSpec.from_namespace(args)
    output = run(spec, say=print, progress=_Progress(not args.no_progress))
    again = _again(args, add=["--resume"], drop=["--force"])
    code = _finish(output.result, output.meta, args.out, quiet=args.quiet, started=t0, again=again, bulk=output.bulk)
    r = output.result
    if args.suite == "exhaustive" and not (r.interrupted or r.deadline is not None):
        _audit_into(args.out, output.profile)
    return code


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


def _cmd_merge(args: argparse.Namespace) -> int:
    from harness.engine import merge

    t0 = time.perf_counter()
    output = merge(args.dirs, args.out, registry_path=args.registry, argv=args.argv)
    return _finish(output.result, output.meta, args.out, quiet=args.quiet, started=t0, bulk=output.bulk)


def _cmd_fuzz(args: argparse.Namespace) -> int:
    import datetime
    import random

    from harness.engine import check_backend, out_folder
    from harness.frameworks import load_factory, make_target
    from harness.fuzz import fuzz, require_hypothesis, save_finding, shard_seed
    from harness.run.workers import PooledTarget, WorkerPool

    require_hypothesis()
    selection, registry = _prepare(args)
    check_backend(args.backend)
    if selection.profile != "keras3":
        raise UsageError(f"fuzz draws Keras 3 options; profile {selection.profile!r} is not supported ({selection.reason})")
    out_folder(args.out)  # before the search: its findings are written only at the end
    out_folder(args.regressions, "--regressions")
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
    from harness.engine import replay

    t0 = time.perf_counter()
    output = replay(
        args.files, args.out, registry_path=args.registry, profile=args.profile, loss_factory=args.loss_factory,
        max_case_bytes=args.max_case_bytes, argv=args.argv,
    )  # fmt: skip
    return _finish(output.result, output.meta, args.out, quiet=args.quiet, started=t0)


def _cmd_compare(args: argparse.Namespace) -> int:
    from harness.engine import out_folder
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
        out_folder(args.out)
        if columns is not None:  # the HTML and JUnit reports list every record of NEW: read a batch at a time
            new = columns.summaries()
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
    accuracy moved; each audit.json read against its schema (audit.read_audit)."""
    from harness.audit import audit_drift, read_audit

    def audit_of(where: str) -> dict | None:
        folder = Path(where) if Path(where).is_dir() else Path(where).parent
        return read_audit(folder / "audit.json")

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
    from harness.audit import AUDIT_FORMATS, render_audit, render_audit_html, run_audit, write_audit
    from harness.frameworks import TFTarget
    from harness.jsonio import atomic_write_text

    target = TFTarget()
    found = run_audit(target, formats=formats or AUDIT_FORMATS, profile=profile)
    versions = target.versions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = render_audit(found, versions=versions)
    write_audit(out / "audit.json", found, versions=versions, profile=profile)
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
