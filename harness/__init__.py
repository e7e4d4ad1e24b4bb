"""bce-harness: a differential harness for TensorFlow's binary cross-entropy.

The pipeline is a package per stage: ``generate`` (the cases) -> ``oracle`` (what the documentation says
each yields, with an error bound) and ``frameworks`` (what TensorFlow yields) -> ``judge`` (the comparison and
the registry's verdict) -> ``run`` (workers, the record stream) -> ``report``.  Below them the ground floor:
``case`` (the records), ``dtypes``, ``jsonio``, ``jsonl`` (the one JSON-lines appender and reader), ``errors``, ``stacking``, ``families``, ``packagedata`` (the
data files the package carries), ``schema`` (the checked schemas of the files it reads) and ``backends`` (the Keras backends and what each can express).  Above them the
commands' own modules, ``engine`` (what a run is: its spec, its identity, the chunked engine, merge and
replay), ``fuzz``, ``audit``, ``explain`` and ``modelcheck``; then ``cli`` (the command line,
``__main__`` for ``python -m harness``), ``pytest_plugin`` (the pytest plugin) and ``keras`` (the Keras
callback).  A stage imports only floors below its own, and only ``frameworks`` imports a framework
(tests/instrument/test_layout.py).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
