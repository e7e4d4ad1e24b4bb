"""The watchdog's rule: a job's limit derives from what the run measured, with a floor, a first-trace budget,
the --timeout ceiling, and an escalated second chance for a single slow case.  Made-up times, no clock."""

from __future__ import annotations

import pytest

from harness.run.watchdog import ESCALATED_FLOOR, FLOOR, MULTIPLE, PRIORS, Watchdog


def test_unmeasured_kinds_take_their_priors_and_the_floor():
    w = Watchdog(ceiling=120)
    mean, slowest = PRIORS["eager"]
    assert w.limit(["eager"]) == max(FLOOR, MULTIPLE * (mean + slowest))
    assert w.limit(["eager"] * 1000) == pytest.approx(min(120, MULTIPLE * (1000 * mean + slowest)))


def test_the_limit_follows_what_was_measured():
    w = Watchdog(ceiling=120)
    for t in (0.01, 0.02, 0.03):
        w.observe("eager", t)
    assert w.mean("eager") == pytest.approx(0.02) and w.slowest("eager") == 0.03
    # 100 cases: ten times (100 means + the slowest case)
    assert w.limit(["eager"] * 100) == pytest.approx(MULTIPLE * (100 * 0.02 + 0.03))
    # one case: the floor, not 10 * 0.05 s
    assert w.limit(["eager"]) == FLOOR
    # a slow case measured later raises the limit of what follows
    w.observe("eager", 4.0)
    assert w.limit(["eager"]) > MULTIPLE * 4.0


def test_a_first_trace_has_its_own_larger_budget():
    w = Watchdog(ceiling=600)
    w.observe("function", 0.01)
    w.observe("first:function", 3.0)
    assert w.limit(["function"] * 10) == FLOOR
    assert w.limit(["first:function"] + ["function"] * 9) == pytest.approx(MULTIPLE * (3.0 + 9 * 0.01 + 3.0))
    # an XLA compile not measured yet gets its prior, far above an eager case's
    assert w.limit(["first:xla"]) > w.limit(["eager"])


def test_timeout_is_the_ceiling():
    w = Watchdog(ceiling=7)
    w.observe("eager", 30.0)
    assert w.limit(["eager"]) == 7
    assert w.escalated(5) == 7


def test_a_suspect_gets_an_escalated_second_limit():
    w = Watchdog(ceiling=120)
    assert w.escalated(FLOOR) == ESCALATED_FLOOR
    assert w.escalated(20) == 80


def test_expiry_on_a_fake_clock():
    w = Watchdog(ceiling=120)
    w.observe("eager", 0.1)
    limit = w.limit(["eager"] * 10)  # 10 * (10 * 0.1 + 0.1) = 11 s
    assert limit == pytest.approx(11.0)
    started = 1000.0
    assert not w.expired(started, started + 10.9, limit)
    assert w.expired(started, started + 11.1, limit)
