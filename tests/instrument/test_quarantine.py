"""Quarantine by class, without workers: classes grow only over cases not known to be fine, hold what matches
them once confirmed, sample it, and are lifted by any matching case that completes."""

from __future__ import annotations

import numpy as np

from harness.case import Case, Options
from harness.run.quarantine import Quarantine, generalize, signature


def case(i: int, *, values=(0.25, 0.75), dtype="float32", reduction="none", mode="eager", shape=(2, 1)) -> Case:
    p = np.resize(np.array(values, dtype=np.float64), shape) if np.prod(shape) else np.zeros(shape)
    return Case(
        id=f"c{i}",
        y_true=np.zeros(shape),
        y_pred=p,
        true_dtype="float32",
        pred_dtype=dtype,
        options=Options(reduction=reduction),
        mode=mode,
    )


def test_signature_reads_the_arrays_not_the_tags():
    s = signature(case(0, values=(np.inf, 0.5)))
    assert s["inf"] == "True" and s["nan"] == "False" and s["empty"] == "False"
    assert signature(case(1, shape=(0, 1)))["empty"] == "True"
    assert signature(case(2, dtype="float16"))["pred_dtype"] == "float16"


def test_a_class_grows_by_what_its_members_share_and_never_over_a_completed_case():
    q = Quarantine(confirm=2, samples=1)
    fine = case(0, values=(0.5,), reduction="sum")
    q.completed(0, fine)
    a = q.confirmed(1, case(1, values=(np.inf,), reduction="sum"), "timeout", "hang")
    b_case = case(2, values=(np.inf,), reduction="none", dtype="float64")
    assert q.joins(2, b_case, "timeout", "hang") is a
    b = q.confirmed(2, b_case, "timeout", "hang")
    assert b is a and a.conj["inf"] == "True" and "reduction" not in a.conj and "pred_dtype" not in a.conj
    # a crash is not a hang: another class
    assert q.joins(3, case(3, values=(np.inf,)), "crash", "SIGSEGV") is None
    # a member whose shared facets would cover the completed case cannot join
    assert q.joins(4, case(4, values=(0.5,), reduction="sum", dtype="float64"), "timeout", "hang") is None


def test_an_active_class_holds_samples_and_infers_only_after_its_samples_fail():
    q = Quarantine(confirm=2, samples=2)
    q.completed(0, case(0))
    q.confirmed(1, case(1, shape=(0, 1)), "crash", "SIGSEGV")
    cls = q.confirmed(2, case(2, shape=(0, 2)), "crash", "SIGSEGV")
    pending = [(i, case(i, shape=(0, 1 + i % 3))) for i in range(3, 13)]
    other, unlike = (13, case(13)), (14, case(14, shape=(0, 1), dtype="float64"))
    kept = q.hold([*pending, other, unlike])
    # held by the class's rule (emptiness alone sets its members apart from the completed case): the empty
    # cases, also of a dtype no member had; not the non-empty one
    assert cls.rule == {"empty": "True"} and cls.conj["pred_dtype"] == "float32"
    assert kept == [other] and len(cls.held) == 11
    assert q.settle() == []  # not sampled yet: nothing inferred
    samples = q.sample_jobs()
    assert [cid for cid, _ in samples] == [cls.id, cls.id] and len(cls.held) == 9
    assert samples[0][1][0] == 14  # the sample least like the members first: the other dtype
    assert q.sample_jobs() == []  # the samples are out
    for _, (i, c) in samples:
        q.confirmed(i, c, "crash", "SIGSEGV", sample_of=cls.id)
    settled = q.settle()
    assert len(settled) == 9
    assert all(ev["inferred"] and ev["class"] == cls.id and "c1" in ev["confirmed"] for _, ev in settled)


def test_a_sample_that_completes_lifts_the_class_and_releases_what_it_held():
    q = Quarantine(confirm=2, samples=2)
    q.confirmed(1, case(1, values=(np.nan,)), "timeout", "hang")
    cls = q.confirmed(2, case(2, values=(np.nan,), dtype="float64"), "timeout", "hang")
    q.hold([(i, case(i, values=(np.nan,), dtype="float16")) for i in range(3, 8)])
    (_, (i, c)), *_ = q.sample_jobs()
    released = q.completed(i, c)  # the sample ran fine: the class was wrong
    assert cls.lifted and not q.active(cls) and len(released) == 3
    assert q.settle() == []
    job = [(9, case(9, values=(np.nan,)))]
    assert q.hold(job) == job


def test_a_case_that_matches_the_rule_and_completes_narrows_it_and_releases_what_it_no_longer_matches():
    q = Quarantine(confirm=2, samples=2)
    q.completed(0, case(0))
    q.confirmed(1, case(1, values=(np.inf,)), "timeout", "hang")
    cls = q.confirmed(2, case(2, values=(np.inf, 0.5)), "timeout", "hang")
    assert cls.rule == {"inf": "True"}
    traced = [(i, case(i, values=(np.inf,), mode="function", dtype="float64")) for i in (3, 4)]
    eager = [(i, case(i, values=(np.inf,), dtype="float64")) for i in (5, 6)]
    assert q.hold([*traced, *eager]) == [] and len(cls.held) == 4
    (_, (i, c)), (_, (k, _)) = q.sample_jobs()
    assert c.mode == "function" and k in (5, 6)  # least like the members (traced), then least like both
    released = q.completed(i, c)  # a traced case with an infinity completed: the rule takes the mode
    assert cls.rule == {"inf": "True", "mode": "eager"} and not cls.lifted
    assert [j for j, _ in released] == [j for j, _ in traced if j != i]
    assert set(cls.held) | cls.sampling == {5, 6}


def test_held_cases_unlike_every_member_are_sampled_before_any_is_inferred():
    """A rule wider than the members (any infinity) holds a case of another entry point: it is sampled, and
    when it completes the rule narrows and releases it; nothing of another entry point is ever inferred."""
    from dataclasses import replace

    q = Quarantine(confirm=2, samples=2)
    q.completed(0, case(0))
    q.confirmed(1, case(1, values=(np.inf,)), "timeout", "hang")
    cls = q.confirmed(2, case(2, values=(np.inf, 0.5)), "timeout", "hang")
    alike = [(i, case(i, values=(np.inf, i / 16))) for i in range(3, 8)]
    other = (8, replace(case(8, values=(np.inf,)), api="ops.binary_crossentropy"))
    assert q.hold([*alike, other]) == [] and len(cls.held) == 6
    first = q.sample_jobs()
    assert first[0][1][0] == 8  # the one that differs from every member where none has been seen to fail
    released = q.completed(*first[0][1])
    assert cls.rule.get("api") == "BinaryCrossentropy" and released == []  # (it was the sample, not held)
    for _, (i, c) in first[1:]:
        q.confirmed(i, c, "timeout", "hang", sample_of=cls.id)
    while samples := q.sample_jobs():
        for _, (i, c) in samples:
            q.confirmed(i, c, "timeout", "hang", sample_of=cls.id)
    settled = q.settle()
    assert settled and all(c.api == "BinaryCrossentropy" for (_, c), _ in settled) and not cls.held


def test_generalize_takes_the_facet_that_sets_apart_most_completed_cases_first():
    conj = {"inf": "True", "mode": "eager", "dtype": "float32"}
    done = [{"inf": "False", "mode": "eager", "dtype": "float32"}, {"inf": "True", "mode": "function", "dtype": "float32"},
            {"inf": "False", "mode": "function", "dtype": "float64"}]  # fmt: skip
    assert generalize(conj, done) == {"inf": "True", "mode": "eager"}
    assert generalize(conj, []) == {}
    assert generalize(conj, [*done, dict(conj)]) is None


def test_disabled_holds_nothing():
    q = Quarantine(enabled=False)
    q.confirmed(1, case(1, shape=(0, 1)), "crash", "SIGSEGV")
    q.confirmed(2, case(2, shape=(0, 1)), "crash", "SIGSEGV")
    job = [(3, case(3, shape=(0, 1)))]
    assert q.hold(job) == job and q.sample_jobs() == [] and q.settle() == []


def test_an_index_used_again_for_another_case_means_that_case():
    """A streamed run numbers each chunk's cases from 0 again through one pool: at the same index the second
    chunk has another case, and the quarantine must read that case, not remember the first chunk's.  (It
    once did: a finite case completing at an index where an infinite one had been was taken for the infinite
    one, and a class confirmed in one chunk took a new case's failure at a known index for an old member's.)"""
    q = Quarantine(confirm=2, samples=1)
    finite, infinite = case(0, values=(0.5,)), case(100, values=(np.inf,))
    assert q.signature(0, finite)["inf"] == "False"
    assert q.signature(0, infinite)["inf"] == "True"  # the second chunk's case at index 0
    c = q.confirmed(1, case(1, values=(np.inf,)), "crash", "SIGSEGV")
    q.confirmed(1, case(101, values=(np.inf,), dtype="float64"), "crash", "SIGSEGV")  # next chunk, same index
    assert c.member_ids == ["c1", "c101"] and q.active(c)
    q.completed(2, finite)  # a finite case completes at an index an infinite case will have next
    assert not c.lifted
    assert q.hold([(2, case(102, values=(np.inf,)))]) == [] and 2 in c.held
