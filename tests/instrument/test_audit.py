"""The exhaustive low-precision audit: every finite 16-bit value, measured; a planted ULP error moves the table."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from harness.audit import audit_groups, every_finite, render_audit, run_audit

pytestmark = pytest.mark.tensorflow


def test_every_finite_value_of_each_format_once() -> None:
    f16, bf16 = every_finite("float16"), every_finite("bfloat16")
    assert f16.size == 65536 - 2048 and bf16.size == 65536 - 256  # the inf and NaN patterns left out
    assert np.isfinite(f16).all() and np.unique(f16.view(np.uint64)).size == f16.size


def test_the_audit_measures_each_group_and_notices_a_planted_ulp(tf_target) -> None:
    found = run_audit(tf_target, formats=("bfloat16",))
    rows = {r["group"]: r for r in found["rows"]}
    assert len(rows) == len([g for g in audit_groups(("bfloat16",))])
    soft = rows["bfloat16 logits, y=soft 0.25, ops.binary_crossentropy, dtype=bfloat16"]
    assert soft["n"] == 65280 and soft["max_ulp"] <= 2

    class OneUlpOff:
        """A target whose every finite nonzero result is one ULP further from zero."""

        def run(self, case):
            out = tf_target.run(case)
            if out.value is None:
                return out
            v = np.asarray(out.value)
            bumped = np.where(np.isfinite(v) & (v != 0), np.nextafter(v.astype(np.float32), np.sign(v) * np.inf), v)
            if case.options.dtype == "bfloat16" or (case.options.dtype is None and case.pred_dtype == "bfloat16"):
                bits = bumped.astype(np.float32).view(np.uint32)
                step = np.where(v != 0, np.uint32(1 << 16), np.uint32(0)).astype(np.uint32)
                bumped = ((bits + step) & np.uint32(0xFFFF0000)).view(np.float32)  # one bfloat16 step
            return replace(out, value=np.asarray(bumped, dtype=np.float64))

    planted = {r["group"]: r for r in run_audit(OneUlpOff(), formats=("bfloat16",))["rows"]}
    moved = planted["bfloat16 logits, y=soft 0.25, ops.binary_crossentropy, dtype=bfloat16"]
    assert moved["ulp_0"] < soft["ulp_0"]
    assert "| bfloat16 logits, y=soft 0.25" in render_audit(found)
    from harness.audit import render_audit_html

    assert "<td>bfloat16 logits, y=soft 0.25, ops.binary_crossentropy, dtype=bfloat16</td>" in render_audit_html(found)


def test_compare_shows_the_groups_whose_accuracy_moved() -> None:
    from harness.audit import audit_drift

    row = {"group": "g", "ulp_0": 10, "ulp_1": 0, "ulp_2": 0, "ulp_3_plus": 0, "max_ulp": 0, "zeros_where_normal": 0, "nan_mismatch": 0}
    assert audit_drift({"rows": [row]}, {"rows": [row]}) == []
    moved = audit_drift({"rows": [row]}, {"rows": [{**row, "ulp_0": 9, "ulp_1": 1, "max_ulp": 1}]})
    assert moved == ["g: ulp_0 10 -> 9, ulp_1 0 -> 1, max_ulp 0 -> 1"]
