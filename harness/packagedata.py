"""The files the package carries: the default suite's special cases, the known-divergence registry and the
catalogue of hand-written BCE variants, in ``harness/data/``.

They are package data (pyproject.toml ``[tool.setuptools.package-data]``), found through
``importlib.resources``, so a built wheel installed from an index runs the default suite from any folder.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["data_path"]


def data_path(name: str) -> Path:
    """The path of ``harness/data/<name>`` as installed.  pip installs wheels unpacked on disk, so the
    resource is a real file; a zipped install (zipimport) has none, and says so."""
    resource = resources.files("harness").joinpath("data", name)
    path = Path(str(resource))
    if not path.is_file():
        raise FileNotFoundError(f"harness/data/{name} is not a file on disk ({resource!r}); install the package unzipped")
    return path
