"""Shared fixtures.  Tests that need TensorFlow take the ``tf_target`` fixture and are skipped without it."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Hypothesis profiles.  "quick" is the default pytest's (the property tests add well under a minute);
# "ci" is quick, derandomized, so a CI run repeats exactly; "nightly" is thorough.  The environment picks:
# BCE_HYPOTHESIS_PROFILE=nightly (or pytest --hypothesis-profile nightly), else "ci" where CI is set, else
# "quick".  print_blob: a failure prints the @reproduce_failure line that replays it.
settings.register_profile(
    "quick", max_examples=40, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("ci", settings.get_profile("quick"), derandomize=True)
settings.register_profile(
    "nightly", max_examples=2000, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("BCE_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "quick"))


# Heavy tests (whole-suite runs, the wheel, exhaustive fault sweeps) run only with BCE_HARNESS_HEAVY=1, as the
# nightly job sets it; the default run keeps a cheap version of each check that still shows it can fail.
HEAVY = bool(os.environ.get("BCE_HARNESS_HEAVY"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.heavy`` tests are skipped unless BCE_HARNESS_HEAVY is set."""
    if HEAVY:
        return
    skip = pytest.mark.skip(reason="heavy (the nightly runs it): set BCE_HARNESS_HEAVY=1")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """One Hypothesis seed for the whole session, printed, unless given or derandomized: a failure of a
    random run can then be repeated with --hypothesis-seed.  An xdist worker takes the controller's."""
    config.addinivalue_line("markers", "heavy: minutes of work; runs only with BCE_HARNESS_HEAVY=1 (the nightly)")
    worker = getattr(config, "workerinput", {})
    if "hypothesis_seed" in worker:
        config.option.hypothesis_seed = worker["hypothesis_seed"]
        return
    profile = config.getoption("hypothesis_profile", None) or settings.get_current_profile_name()
    if config.getoption("hypothesis_seed", None) is None and not settings.get_profile(profile).derandomize:
        config.option.hypothesis_seed = str(random.SystemRandom().randrange(2**32))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist: hand the session's Hypothesis seed to each worker."""
    node.workerinput["hypothesis_seed"] = node.config.getoption("hypothesis_seed", None)


def _hypothesis_seed_line(config: pytest.Config) -> str:
    seed = config.getoption("hypothesis_seed", None)
    if seed is None:
        return "hypothesis: derandomized (each test's seed is fixed by its name)"
    return f"hypothesis seed: {seed} (repeat with --hypothesis-seed={seed})"


def pytest_report_header(config: pytest.Config) -> str:
    return _hypothesis_seed_line(config)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if exitstatus != 0:
        terminalreporter.write_line(_hypothesis_seed_line(config))


@pytest.fixture(scope="session")
def tf_target():
    """The real target; skips the test where TensorFlow is not installed."""
    from harness.errors import TargetUnavailable
    from harness.frameworks import TFTarget

    try:
        return TFTarget()
    except TargetUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def default_cases():
    from harness.generate.grid import default_suite

    return default_suite()


@pytest.fixture(scope="session")
def registry():
    """The registry's entries that hold for the installed TensorFlow and Keras, as a run loads them."""
    from harness.judge.registry import load_registry
    from harness.oracle.profiles import select_profile

    installed = select_profile("auto")
    return load_registry().for_versions(installed.tensorflow, installed.keras)
