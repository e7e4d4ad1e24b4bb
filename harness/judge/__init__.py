"""Stage 3, judge: an outcome against its expectation.  ``compare`` checks in phases (raised, shape, dtype,
NaN/inf locations, then the values against the bound), ``registry`` holds the known divergences and
``matching`` the record facets the registry matches on.

May import: the ground floor, ``harness.oracle``, ``harness.generate``.  Never TensorFlow.
"""
