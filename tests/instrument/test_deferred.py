"""Deferred cases: the sweep's cases named by their recipe, made by the worker that evaluates them.

A deferred case plans, stacks and times as the case it stands for (its template's api, options, dtypes
and shapes); made, it is that case exactly; a recipe that breaks its promise (another id, other shapes)
or fails becomes that case's error record, and the job's other cases run.
"""

from __future__ import annotations

import importlib.util
import pickle

import numpy as np
import pytest

from harness.case import Deferred, realize, template_of
from harness.generate.grid import SWEEP_SHAPES, Suite, _value_case, _value_specs
from harness.judge.registry import load_registry
from harness.run.estimate import kinds
from harness.stacking import batch_key, trace_key


def _suite() -> Suite:
    return Suite("default", seeds=(5, 6), special_cases=None)


def test_a_deferred_case_is_the_case_it_names_and_plans_as_it_does() -> None:
    suite = _suite()
    nb = len(suite.base)
    positions = list(range(nb, len(suite), 37))
    made = list(suite.cases_at(positions))
    deferred = list(suite.cases_at(positions, deferred=True))
    assert all(isinstance(d, Deferred) for d in deferred)
    assert [d.id for d in deferred] == [c.id for c in made]
    assert [batch_key(d) for d in deferred] == [batch_key(c) for c in made]
    assert [trace_key(d) for d in deferred] == [trace_key(c) for c in made]
    assert kinds(deferred) == kinds(made)
    for d, c in zip(deferred, made, strict=True):
        # (no array made for the plan: a deferred case's arrays are made where it is evaluated)
        assert d._made is None
        again = pickle.loads(pickle.dumps(d))
        got = realize(again)
        assert got.id == c.id and got.options == c.options and got.tags == c.tags
        assert np.array_equal(got.y_true, c.y_true) and np.array_equal(got.y_pred, c.y_pred, equal_nan=True)
        assert template_of(d) is d.template and template_of(c) is c


def test_a_recipe_that_breaks_its_promise_is_refused() -> None:
    suite = _suite()
    specs = list(_value_specs(5, SWEEP_SHAPES, True))
    other = next(i for i, s in enumerate(specs) if s[7] != specs[0][7])  # a case of another shape
    wrong_id = Deferred(specs[0][0], suite.templates[0], _value_case, (5, specs[1]))
    wrong_shape = Deferred(specs[other][0], suite.templates[0], _value_case, (5, specs[other]))
    for d in (wrong_id, wrong_shape):
        with pytest.raises(ValueError, match="not its template's kind"):
            realize(d)


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="TensorFlow is not installed")
def test_in_workers_a_case_that_cannot_be_made_is_its_own_error_record_and_the_rest_run() -> None:
    from harness.frameworks import TFTarget
    from harness.run.runner import run_cases, run_parallel

    suite = _suite()
    nb = len(suite.base)
    specs = list(_value_specs(5, SWEEP_SHAPES, True))
    good = list(suite.cases_at(range(nb, nb + 6), deferred=True))
    broken = Deferred(specs[0][0] + "/broken", suite.templates[0], _value_case, (5, specs[0]))
    registry = load_registry()
    result, _ = run_parallel([*good, broken], registry, workers=1)
    by_id = {r.case.id: r for r in result.records}
    assert by_id[broken.id].status == "error" and "internal error making the case" in by_id[broken.id].comparison.message
    alone = run_cases(list(suite.cases_at(range(nb, nb + 6))), TFTarget(), registry)
    assert [(r.case.id, r.status, r.comparison.kind) for r in alone.records] == [
        (by_id[c.id].case.id, by_id[c.id].status, by_id[c.id].comparison.kind) for c in good
    ]
    for r in alone.records:  # each made by the worker exactly as here
        assert np.array_equal(by_id[r.case.id].case.y_pred, r.case.y_pred, equal_nan=True)
