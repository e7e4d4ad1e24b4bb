"""The project's exception family and the exit codes the command line maps them to.

Exit codes, this project's own (not pytest's, whose 2 means interrupted): 0 every record agrees (known
divergences allowed), 1 unexpected divergences, 2 usage or input error (one line on stderr, no traceback),
3 internal error.
"""

from __future__ import annotations

__all__ = [
    "EXIT_DIVERGED",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_USAGE",
    "HarnessError",
    "InputError",
    "TargetUnavailable",
    "UsageError",
]

EXIT_OK = 0
EXIT_DIVERGED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class HarnessError(Exception):
    """Base of every error the harness raises on purpose.  Its message is one line for a person."""

    exit_code = EXIT_INTERNAL


class UsageError(HarnessError, ValueError):
    """A bad argument: the message names the argument and the value."""

    exit_code = EXIT_USAGE


class InputError(HarnessError):
    """A bad input file (registry, special cases, a saved case): the message names the file and field."""

    exit_code = EXIT_USAGE


class TargetUnavailable(HarnessError):
    """The library under test cannot be imported (TensorFlow is an optional extra)."""

    exit_code = EXIT_USAGE
