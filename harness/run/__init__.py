"""Stage 4, run: the cases through the target and the oracle, judged.  ``runner`` orders and judges the
records, ``workers`` keeps TensorFlow in worker processes that may crash or hang, ``evaluate`` is one job's
work in a worker, and ``stream`` writes and reads the records as they complete.

May import: every stage below it (``judge``, ``generate``, ``oracle``), ``harness.target`` and the ground floor.
"""
