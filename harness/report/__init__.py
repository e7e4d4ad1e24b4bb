"""Stage 5, report: ``summary`` writes a run's terminal table, ``results.json`` and ``report.md``; ``columns``
writes and reads ``results.parquet``, the same records as columns, and compares two of them out of core;
``html`` and ``junit`` the other views; ``repro`` the standalone reproductions; ``crossmode`` the calls whose
modes disagree; ``drift`` compares two runs and ``issue`` writes what ``compare`` files upstream; ``bulk``
holds a large run's records in bounded memory; ``literal`` (generated code) and ``inert`` (Markdown, terminals
and CI logs) are the escaping rules every sink goes through.

May import: every stage below it and the ground floor; never ``harness.frameworks``, so reports are written
without TensorFlow.
"""
