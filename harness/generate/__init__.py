"""Stage 1, generate: the cases.  ``grid`` builds the seeded default suite and reads the special-case table,
``strategies`` draws cases with Hypothesis, ``regimes`` names the value regime and shape kind of a case,
``space`` the case space: the facets a case varies, which pairs are feasible, and their 2-way coverage, ``training`` the training and replicas families,
and ``saved`` reads the cases ``fuzz`` saved.

May import: the ground floor (``harness.case``, ``dtypes``, ``jsonio``, ``errors``) and ``harness.oracle``
(for the clip bounds and rank rules the values are aimed at).  Never TensorFlow.
"""
