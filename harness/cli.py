"""The ``bce-harness`` command line.

Exit codes (pytest's): 0 every record passed or is a known divergence; 1 a fail, xpass or harness error
in a record; 2 a usage or input error, said in one line on stderr; 3 an internal error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Sequence

from harness import __version__
from harness.errors import EXIT_DIVERGED, EXIT_INTERNAL, EXIT_OK, HarnessError, UsageError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    from harness.generator import DEFAULT_SEED, DEFAULT_SPECIAL_CASES
    from harness.reference import PROFILES
    from harness.registry import DEFAULT_REGISTRY

    parser = _Parser(prog="bce-harness", description="Differential harness for tf.keras.losses.BinaryCrossentropy.")
    parser.add_argument("--version", action="version", version=f"bce-harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run the default suite against the installed TensorFlow")
    run.add_argument("--out", default="reports/latest", help="report folder (default: %(default)s)")
    run.add_argument("--seed", type=_seed, default=DEFAULT_SEED, help="generator seed (default: %(default)s)")
    run.add_argument("--max-cases", type=_positive, default=None, help="at most N cases, spread over the suite")
    run.add_argument("--select", default=None, metavar="GLOB", help="only cases whose id matches GLOB")
    run.add_argument("--registry", default=str(DEFAULT_REGISTRY), help="known-divergence registry (TOML)")
    run.add_argument("--special-cases", default=str(DEFAULT_SPECIAL_CASES), help="special-case table (TOML)")
    run.add_argument("--profile", default="keras3", choices=sorted(PROFILES), help="semantics (default: %(default)s)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--quiet", action="store_true", help="no summary table")

    cases = sub.add_parser("cases", help="list the ids of the default suite")
    cases.add_argument("--seed", type=_seed, default=DEFAULT_SEED)
    cases.add_argument("--select", default=None, metavar="GLOB")
    cases.add_argument("--special-cases", default=str(DEFAULT_SPECIAL_CASES))
    return parser


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


def _cmd_run(args: argparse.Namespace) -> int:
    from harness.generator import default_suite, select
    from harness.registry import load_registry
    from harness.report import meta, summary_table, write_reports
    from harness.runner import run_cases
    from harness.target import TFTarget, environment_flags

    registry = load_registry(args.registry)
    cases = select(
        default_suite(seed=args.seed, special_cases=args.special_cases), max_cases=args.max_cases, pattern=args.select
    )
    if not cases:
        raise UsageError(f"--select {args.select!r} matches no case")
    t0 = time.perf_counter()
    target = TFTarget()
    import_seconds = time.perf_counter() - t0
    result = run_cases(cases, target, registry, profile=args.profile, progress=_Progress(not args.no_progress))
    run_meta = meta(
        seed=args.seed,
        profile=args.profile,
        versions=target.versions(),
        env=environment_flags(),
        extra={
            "argv": sys.argv[1:],
            "registry": args.registry,
            "suite_size": len(cases),
            "max_cases": args.max_cases,
            "select": args.select,
            "tensorflow_import_seconds": round(import_seconds, 3),
            "wall_seconds": round(time.perf_counter() - t0, 3),
        },
    )
    paths = write_reports(result, run_meta, args.out)
    t = result.totals()
    if not args.quiet:
        print(summary_table(result.records))
        print()
    print(
        f"{t['total']} records: {t['pass']} passed, {t['fail']} failed, {t['xfail']} xfailed, {t['xpass']} xpassed, "
        f"{t['error']} errors in {time.perf_counter() - t0:.1f}s"
    )
    for r in result.records:
        if r.status in ("fail", "xpass", "error"):
            print(f"{r.status.upper()} [{r.comparison.kind}] {r.case.id}")
    print(f"report: {paths['report']}  results: {paths['results']}")
    if result.interrupted:
        print("interrupted: the report is partial", file=sys.stderr)
        return EXIT_DIVERGED
    return EXIT_OK if result.ok else EXIT_DIVERGED


def _cmd_cases(args: argparse.Namespace) -> int:
    from harness.generator import default_suite, select

    for case in select(default_suite(seed=args.seed, special_cases=args.special_cases), pattern=args.select):
        print(case.id)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "run":
            return _cmd_run(args)
        return _cmd_cases(args)
    except HarnessError as exc:
        print(f"bce-harness: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bce-harness: interrupted", file=sys.stderr)
        return EXIT_DIVERGED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the last line of defence: exit 3, one line unless asked
        if os.environ.get("BCE_HARNESS_DEBUG"):
            traceback.print_exc()
        print(
            f"bce-harness: internal error: {type(exc).__name__}: {exc} (set BCE_HARNESS_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
