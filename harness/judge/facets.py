"""The facets of a record that the registry matches: the case's own, the profile it was judged against, the
compute dtype that profile says the loss uses (Keras 2 computes in ``y_pred``'s dtype, Keras 3 in the
loss's ``dtype``), so an entry can be keyed to one line's semantics, and facts about the values as that
dtype holds them.

May import: the ground floor and the oracle (the compute dtype's error model).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.case import Case, Expected
from harness.dtypes import FLOAT_DTYPES, round_to
from harness.oracle.tolerance import error_model, flushable

__all__ = ["record_facets"]


def record_facets(case: Case, expected: Expected | None, profile: str) -> dict[str, Any]:
    """The facets the registry matches: the case's, the profile, the profile's compute dtype, and
    ``flushed_weights``: whether a sample weight, as the compute dtype holds it, is one the kernels read
    as 0 (nonzero and subnormal: ``tolerance.flushable``)."""
    facets = {**case.facets, "profile": profile}
    if expected is not None and expected.dtype is not None:
        facets["compute_dtype"] = expected.dtype
    facets["flushed_weights"] = _flushed_weights(case, facets["compute_dtype"])
    return facets


def _flushed_weights(case: Case, compute_dtype: str) -> bool:
    if case.sample_weight is None or compute_dtype not in FLOAT_DTYPES:
        return False
    w = round_to(case.sample_weight, compute_dtype)  # as the reference reads it (oracle/keras3.py)
    return bool(np.any(flushable(w, error_model(compute_dtype))))
