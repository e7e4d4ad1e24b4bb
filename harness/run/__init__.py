"""Stage 4, run: the cases through the target and the oracle, judged.  ``runner`` orders and judges the
records, ``workers`` keeps TensorFlow in worker processes that may crash or hang, ``evaluate`` is one job's
work in a worker, and ``stream`` writes and reads the records as they complete; ``watchdog`` sets how long a
job may take, ``quarantine`` stops paying for a class of cases that crash or hang, ``findings`` keeps the
job-level findings beside the stream, ``estimate`` says how long a suite will take, and ``sandbox`` runs a
user's function in a child process with a timeout.

May import: every stage below it (``judge``, ``generate``, ``oracle``), ``harness.frameworks`` and the ground floor.
"""
