"""Coverage as a measured number: the facets of the case space, the covering array, and what the figures say.

No TensorFlow: the suite is built and measured, not run.
"""

from __future__ import annotations

import pytest

from harness.generate import grid
from harness.generate import space as facets
from harness.generate.space import FACETS, coverage, covering_rows, facets_of, infeasible, realize, space_for


@pytest.fixture(scope="module")
def default_cases():
    return grid.default_suite()


def test_the_default_suite_covers_every_feasible_pair(default_cases) -> None:
    found = coverage(default_cases)
    assert found.missing_singles == () and found.missing_pairs == ()
    assert found.pair_share == 1.0 and found.pairs_feasible > 1500
    assert all(why for *_, why in found.infeasible)  # every impossible pair says why


@pytest.mark.parametrize("suite", ["default", "nightly"])
def test_each_covering_row_is_realised_as_the_case_it_stands_for(suite: str) -> None:
    rows = covering_rows(space_for(suite))
    for i, row in enumerate(rows):
        case = realize(row, seed=7, index=i)
        got = facets_of(case)
        assert {k: got[k] for k in row} == row, case.id


def test_the_nightly_suite_adds_the_largest_sizes() -> None:
    nightly = grid.default_suite(suite="nightly", special_cases=None)
    sizes = {facets_of(c)["size"] for c in nightly}
    assert "huge" in sizes and max(c.y_pred.size for c in nightly) >= 65536
    assert "huge" not in {facets_of(c)["size"] for c in grid.default_suite(special_cases=None)}


def test_removing_a_facet_value_from_the_generator_drops_the_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Label outside [0, 1] are drawn by the covering array alone: take the value out of the generator's space
    and the measured coverage (against the full space) loses the value and every pair holding it."""
    full = coverage(grid.default_suite(special_cases=None))
    narrowed = {k: tuple(v for v in vs if (k, v) != ("labels", "outside")) for k, vs in space_for().items()}
    monkeypatch.setattr(grid, "_covering_rows", lambda suite: tuple(covering_rows(narrowed)))
    less = coverage(grid.default_suite(special_cases=None))
    assert ("labels", "outside") in less.missing_singles
    assert less.pairs < full.pairs and less.pair_share < 1.0
    assert any("labels=outside" in p for p in less.as_dict(listed=10_000)["missing_pairs"])


def test_a_pair_the_rules_forbid_is_never_generated() -> None:
    rows = covering_rows(space_for())
    names = list(FACETS)
    for row in rows:
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                assert infeasible(a, row[a], b, row[b]) is None, (a, row[a], b, row[b])


def test_size_buckets_respect_the_bound_of_the_compute_dtype() -> None:
    """The worst-case sum bound says little once (n - 1) u > 1/4: the rules keep low precision off large sizes."""
    assert infeasible("size", "large", "pred_dtype", "float16")
    assert infeasible("size", "medium", "loss_dtype", "bfloat16")
    assert infeasible("size", "medium", "pred_dtype", "float16") is None
    assert infeasible("size", "huge", "pred_dtype", "float32") is None
    assert facets.size_bucket(0) == "0" and facets.size_bucket(1) == "1" and facets.size_bucket(65537) == "huge"


def test_the_cli_prints_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    assert main(["coverage", "--max-rows", "3"]) == 0
    out = capsys.readouterr().out
    assert "pairs of values (2-way):" in out and "(100.0%)" in out and "impossible by construction" in out
