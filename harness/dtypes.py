"""Floating-point formats the harness reasons about, in NumPy alone.

TensorFlow computes BinaryCrossentropy in float16, bfloat16, float32 or float64.  The reference and the
comparator need three things about each format without importing TensorFlow or ml_dtypes: its constants
(unit roundoff, smallest normal, ...), rounding a float64 value to it (round to nearest, ties to even, as
IEEE 754 and TensorFlow's casts do), and the distance in ULPs between two values of it.  bfloat16 is handled
through float32 bit patterns: a bfloat16 is the upper half of a float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.errors import UsageError

__all__ = [
    "FLOAT_DTYPES",
    "INPUT_DTYPES",
    "LABEL_ONLY_DTYPES",
    "WORK",
    "WORK_UNIT_ROUNDOFF",
    "FloatFormat",
    "float_format",
    "representable",
    "round_to",
    "ulp_distance",
]

FLOAT_DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")
LABEL_ONLY_DTYPES: tuple[str, ...] = ("int32", "int64", "bool")
INPUT_DTYPES: tuple[str, ...] = FLOAT_DTYPES + LABEL_ONLY_DTYPES

# The reference's working precision.  float64 is not enough to check a float64 loss (its own rounding
# would be as large as TensorFlow's), so the reference works in the widest float NumPy offers: x87 80-bit
# extended on x86-64 Linux (64-bit significand).  Where long double is just double (some ARM platforms),
# WORK falls back to float64 and the tolerance grows by the reference's own error bound, which is always
# added (see tolerance.py), so the comparison stays sound, only less sharp.
# (typed as the one class float64 and long double share: the two branches' types would join to np.generic)
WORK: type[np.floating] = np.longdouble if np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant else np.float64
WORK_UNIT_ROUNDOFF: float = float(np.finfo(WORK).epsneg)  # 2**-p for a p-bit significand


@dataclass(frozen=True)
class FloatFormat:
    """Constants of one binary floating-point format."""

    name: str
    mant_bits: int  # stored significand bits (precision p = mant_bits + 1)
    exp_bits: int
    smallest_normal: float
    smallest_subnormal: float
    max: float

    @property
    def unit_roundoff(self) -> float:
        """u = 2**-p: the largest relative error of one correctly rounded operation."""
        return 2.0 ** -(self.mant_bits + 1)

    @property
    def bits(self) -> int:
        return 1 + self.exp_bits + self.mant_bits


_FORMATS = {
    "float16": FloatFormat("float16", 10, 5, 2.0**-14, 2.0**-24, 65504.0),
    "bfloat16": FloatFormat("bfloat16", 7, 8, 2.0**-126, 2.0**-133, float.fromhex("0x1.fep127")),
    "float32": FloatFormat("float32", 23, 8, 2.0**-126, 2.0**-149, float(np.finfo(np.float32).max)),
    "float64": FloatFormat("float64", 52, 11, 2.0**-1022, 2.0**-1074, float(np.finfo(np.float64).max)),
}


def float_format(dtype: str) -> FloatFormat:
    """The constants of ``dtype``, one of FLOAT_DTYPES."""
    try:
        return _FORMATS[dtype]
    except KeyError:
        raise UsageError(f"dtype={dtype!r} is not one of {', '.join(FLOAT_DTYPES)}") from None


def _bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """Round float64 values to bfloat16; return the 16-bit patterns as uint16.

    Rounds float64 -> float32 with round-to-odd first (so the second rounding cannot double-round), then
    float32 -> bfloat16 to nearest even on the upper 16 bits.  NaN stays NaN (quiet).
    """
    shape = np.shape(x)
    x64 = np.atleast_1d(np.asarray(x, dtype=np.float64))
    f32 = x64.astype(np.float32)
    # round-to-odd: if float32 rounding was inexact, force the last bit to 1 and truncate toward zero
    with np.errstate(invalid="ignore", over="ignore"):
        inexact = (f32.astype(np.float64) != x64) & np.isfinite(x64) & np.isfinite(f32)
    bits = f32.view(np.uint32).copy()
    # truncate toward zero: if |f32| > |x|, step one ULP toward zero
    too_big = inexact & (np.abs(f32.astype(np.float64)) > np.abs(x64))
    bits[too_big] -= np.uint32(1)
    bits[inexact] |= np.uint32(1)
    nan = np.isnan(x64)
    lsb = (bits >> np.uint32(16)) & np.uint32(1)
    rounded = (bits + np.uint32(0x7FFF) + lsb) >> np.uint32(16)
    rounded = rounded.astype(np.uint16)
    rounded[nan] = np.uint16(0x7FC0) | ((bits[nan] >> np.uint32(16)).astype(np.uint16) & np.uint16(0x8000))
    return rounded.reshape(shape)


def _bfloat16_value(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)


def representable(a: np.ndarray, dtype: str) -> np.ndarray:
    """Where float64 ``a`` holds a value of ``dtype`` exactly: ``round_to(a, dtype) == a``, NaN where it rounds to NaN.

    For bfloat16 without rounding: a value is one exactly when it is a float32 whose low 16 bits are 0
    (bfloat16 is float32's upper half, with float32's exponent range), which is a fraction of the cost of
    rounding every element (the generator checks every array it makes)."""
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        if dtype == "bfloat16":  # (NaN rounds to NaN)
            f32 = a.astype(np.float32)
            return ((f32.astype(np.float64) == a) & ((f32.view(np.uint32) & np.uint32(0xFFFF)) == 0)) | np.isnan(a)
        rounded = round_to(a, dtype)
        return (rounded == a) | (np.isnan(rounded) & np.isnan(a))


def round_to(x: np.ndarray | float, dtype: str) -> np.ndarray:
    """Round ``x`` to the nearest value of ``dtype`` (ties to even); return it as float64 (or WORK).

    For float64 the input is returned in the working precision unchanged if it already is float64.
    Integer and boolean dtypes round to integers as a cast would (booleans: nonzero -> 1).
    """
    a = np.asarray(x)
    if dtype == "float64":
        return a.astype(np.float64)
    if dtype == "float32":
        return a.astype(np.float32).astype(np.float64)
    if dtype == "float16":
        with np.errstate(over="ignore"):
            return a.astype(np.float16).astype(np.float64)
    if dtype == "bfloat16":
        return _bfloat16_value(_bfloat16_bits(a.astype(np.float64)))
    if dtype == "bool":
        return (a != 0).astype(np.float64)
    if dtype in ("int32", "int64"):
        return np.trunc(a.astype(np.float64))
    raise UsageError(f"dtype={dtype!r} is not one of {', '.join(INPUT_DTYPES)}")


def _ordered(x: np.ndarray, dtype: str) -> np.ndarray:
    """Map values of ``dtype`` to integers whose order and differences are those of the floats.

    +0 and -0 both map to 0.  Works on int64 for every format (float64 patterns fit in int64 too).
    """
    if dtype == "float64":
        bits = np.asarray(x, dtype=np.float64).view(np.int64)
        sign_mask = np.int64(-(2**63))
    elif dtype == "float32":
        bits = np.asarray(x, dtype=np.float64).astype(np.float32).view(np.int32).astype(np.int64)
        sign_mask = np.int64(-(2**31))
    elif dtype == "float16":
        bits = np.asarray(x, dtype=np.float64).astype(np.float16).view(np.int16).astype(np.int64)
        sign_mask = np.int64(-(2**15))
    elif dtype == "bfloat16":
        bits = _bfloat16_bits(np.asarray(x, dtype=np.float64)).view(np.int16).astype(np.int64)
        sign_mask = np.int64(-(2**15))
    else:
        raise UsageError(f"dtype={dtype!r} is not one of {', '.join(FLOAT_DTYPES)}")
    # Negative floats have the sign bit set; their magnitude bits grow away from zero.  Reflect them.
    return np.where(bits < 0, sign_mask - bits, bits)


def ulp_distance(actual: np.ndarray, expected: np.ndarray, dtype: str) -> np.ndarray:
    """Number of ``dtype`` values between ``actual`` and ``expected`` after rounding both to ``dtype``.

    Returns int64 in the broadcast shape.  +0 and -0 are 0 ULP apart.  Where either side is NaN the
    result is -1 (NaN has no place on the number line; callers check NaN locations separately).
    Infinities are one step past the largest finite value, as in the bit patterns.  For float64 the
    distance saturates at 2**62 instead of overflowing.
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    a, e = np.broadcast_arrays(a, e)
    oa = _ordered(a, dtype)
    oe = _ordered(e, dtype)
    if dtype == "float64":
        # Differences of float64 patterns can exceed int64; compute on floats, then saturate.
        diff = np.abs(oa.astype(np.float64) - oe.astype(np.float64))
        small = diff < 2.0**62
        dist = np.where(small, np.abs(np.where(small, oa - oe, 0)), np.int64(2**62))
    else:
        dist = np.abs(oa - oe)
    nan = np.isnan(a) | np.isnan(e)
    return np.where(nan, np.int64(-1), dist).astype(np.int64)
