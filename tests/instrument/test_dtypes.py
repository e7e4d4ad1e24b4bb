"""The format helpers: rounding to each dtype and the ULP distance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.dtypes import float_format, round_to, ulp_distance


@pytest.mark.parametrize(
    "x, dtype, want",
    [
        (1e-7, "float32", float(np.float32(1e-7))),
        (1 - 1e-7, "float32", 1 - 2.0**-23),
        (1e-7, "float16", 2.0**-23),
        (1 - 1e-7, "float16", 1.0),
        (1 - 1e-7, "bfloat16", 1.0),
        (1e-7, "bfloat16", 215 / 128 * 2.0**-24),
        (1 + 2.0**-8, "bfloat16", 1.0),  # a tie rounds to even
        (1 + 3 * 2.0**-8, "bfloat16", 1 + 2.0**-6),  # a tie rounds to even, upward
        (1 + 2.0**-8 + 2.0**-40, "bfloat16", 1 + 2.0**-7),  # just past the tie: no double rounding
        (70000.0, "float16", math.inf),
        (-0.0, "bfloat16", -0.0),
        (2.0, "bool", 1.0),
        (-1.7, "int32", -1.0),
    ],
)
def test_round_to(x, dtype, want):
    got = float(round_to(x, dtype))
    assert got == want and math.copysign(1, got) == math.copysign(1, want)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_round_to_keeps_nan_and_shape(dtype):
    got = round_to(np.array([[np.nan, 1.0]]), dtype)
    assert got.shape == (1, 2) and math.isnan(got[0, 0]) and got[0, 1] == 1.0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_ulp_distance_counts_representable_values(dtype):
    fmt = float_format(dtype)
    below_one = 1 - 2.0 ** -(fmt.mant_bits + 1)
    assert ulp_distance(1.0, below_one, dtype) == 1
    assert ulp_distance(1.0, 1.0 + 2.0 ** -fmt.mant_bits * 3, dtype) == 3
    assert ulp_distance(0.0, -0.0, dtype) == 0  # +0 and -0 are the same point
    assert ulp_distance(fmt.smallest_subnormal, -fmt.smallest_subnormal, dtype) == 2  # across zero
    assert ulp_distance(np.nan, 1.0, dtype) == -1  # NaN is reported separately
    assert ulp_distance(math.inf, fmt.max, dtype) == 1


def test_ulp_distance_is_elementwise_int64():
    d = ulp_distance(np.array([[1.0, 2.0]]), np.array([[1.0, 2.0 + 2.0**-22]]), "float32")
    assert d.dtype == np.int64 and d.tolist() == [[0, 1]]


def test_ulp_distance_float64_saturates_instead_of_overflowing():
    assert ulp_distance(-1e308, 1e308, "float64") == 2**62


def test_representable_is_rounding_leaves_it_alone() -> None:
    """``representable`` (the generator's and Case's check, without rounding for bfloat16) says exactly
    where ``round_to`` leaves a value unchanged, NaN where it rounds to NaN: on every bfloat16 pattern's
    neighbours, values beyond the ranges, subnormals, zeros, infinities and NaN, for every input dtype."""
    from harness.dtypes import INPUT_DTYPES, representable

    bits = np.arange(0, 1 << 16, dtype=np.uint32) << np.uint32(16)
    with np.errstate(invalid="ignore"):
        exact = bits.view(np.float32).astype(np.float64)
    exact = exact[np.isfinite(exact)]
    probes = np.concatenate([
        exact, np.nextafter(exact, np.inf), np.nextafter(exact, -np.inf), exact * (1 + 2.0**-20),
        [0.0, -0.0, np.inf, -np.inf, np.nan, 1e300, -1e300, 5e-324, 2.0**-149, 2.0**-133, 65504.0, 65520.0, 0.5, 2.5],
    ])  # fmt: skip
    for dtype in INPUT_DTYPES:
        with np.errstate(all="ignore"):
            rounded = round_to(probes, dtype)
        want = (rounded == probes) | (np.isnan(rounded) & np.isnan(probes))
        np.testing.assert_array_equal(representable(probes, dtype), want, err_msg=dtype)
