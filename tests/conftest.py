"""Shared fixtures.  Tests that need TensorFlow take the ``tf_target`` fixture and are skipped without it."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="session")
def tf_target():
    """The real target; skips the test where TensorFlow is not installed."""
    from harness.errors import TargetUnavailable
    from harness.target import TFTarget

    try:
        return TFTarget()
    except TargetUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def default_cases():
    from harness.generator import default_suite

    return default_suite()


@pytest.fixture(scope="session")
def registry():
    from harness.registry import load_registry

    return load_registry()
