"""A case the installed Keras cannot express is 'unsupported': recorded with the reason, not run, not a
failure; what decides it is a probe of the installed Keras, which can never take a run down."""

from __future__ import annotations

import functools

import pytest

from harness.generate.grid import default_suite

pytestmark = pytest.mark.tensorflow


@functools.cache
def _suite():
    return tuple(default_suite())


def _target(lacks):
    from harness.frameworks import TFTarget

    class Older(TFTarget):
        """The installed Keras, as an older one that lacks ``lacks``."""

        @functools.cached_property
        def _lacks(self):
            if isinstance(lacks, Exception):
                raise lacks
            return lacks

    return Older()


def test_the_installed_keras_lacks_nothing_the_suite_needs(tf_target):
    assert not any(tf_target.unsupported(c) for c in _suite())


def test_a_case_needing_what_keras_lacks_is_unsupported_and_not_run(tf_target, registry, monkeypatch):
    from harness.run.runner import run_cases

    older = _target({"reduction_mean": "the Keras loss has no reduction='mean' (Keras 3.7 and later do)"})
    cases = [c for c in _suite() if c.id.startswith("dtype_reductions/")][:24]
    ran = []
    run_many = older.run_many
    monkeypatch.setattr(older, "run_many", lambda cs, **kw: ran.extend(c.id for c in cs) or run_many(cs, **kw))
    records = run_cases(cases, older, registry).records
    mean = {r.case.id for r in records if r.case.options.reduction == "mean" and r.case.api == "BinaryCrossentropy"}
    assert mean, "the slice holds reduction='mean' cases"
    assert {r.case.id for r in records if r.status == "unsupported"} == mean
    assert not mean & set(ran)  # never called
    assert all("reduction='mean'" in r.note for r in records if r.status == "unsupported")
    assert all(r.status in ("pass", "xfail") for r in records if r.case.id not in mean)


def test_a_probe_that_fails_claims_nothing():
    older = _target(RuntimeError("a Keras the probe does not know"))
    assert older.unsupported(_suite()[0]) is None
