"""bce-harness: a differential harness for TensorFlow's binary cross-entropy.

The pipeline is generate (generator.py) -> run (reference.py, target.py) -> compare (compare.py, with the
error bounds of tolerance.py and the registry.py verdicts) -> report (report.py, repro.py).  Only
target.py imports TensorFlow.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
