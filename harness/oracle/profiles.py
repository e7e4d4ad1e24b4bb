"""Which line's semantics a run is judged against: the profile, chosen from what is installed.

``tf.keras`` is not one library.  TensorFlow up to 2.15 ships Keras 2 (the ``keras`` 2.x package); from
2.16 on ``tf.keras`` is whatever ``import keras`` gives (Keras 3), unless ``TF_USE_LEGACY_KERAS`` routes it
to the ``tf_keras`` package (Keras 2 again).  ``select_profile`` mirrors TensorFlow's own choice
(``tensorflow/python/util/lazy_loader.py``, ``KerasLazyLoader._initialize``, TF 2.15 to 2.21):

1. ``TF_USE_LEGACY_KERAS`` is one of ``"true"``, ``"True"``, ``"1"``: ``tf_keras`` -> profile ``keras2``;
2. otherwise ``keras.__version__`` starts with ``"3."`` -> ``keras3``, else ``keras2``.

It reads package metadata (``importlib.metadata``) and the environment only, so choosing a profile never
imports TensorFlow (tests/instrument/test_profiles.py checks the choice against the imported ``tf.keras``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from harness.errors import UsageError
from harness.oracle import PROFILES

__all__ = [
    "AUTO",
    "LEGACY_KERAS_VALUES",
    "TENSORFLOW_DISTRIBUTIONS",
    "Selection",
    "installed_version",
    "installed_tensorflow",
    "select_profile",
]

AUTO = "auto"
# lazy_loader.py: os.environ.get("TF_USE_LEGACY_KERAS", None) in ("true", "True", "1")
LEGACY_KERAS_VALUES = ("true", "True", "1")
# The distributions that install the ``tensorflow`` module, the release first.
TENSORFLOW_DISTRIBUTIONS = (
    "tensorflow",
    "tensorflow-cpu",
    "tf-nightly",
    "tf-nightly-cpu",
    "tensorflow-intel",
    "tensorflow-macos",
    "tensorflow-aarch64",
)


@dataclass(frozen=True)
class Selection:
    """The profile a run uses, why, and the versions the choice was made from."""

    profile: str
    reason: str
    tensorflow: str | None
    keras_package: str | None  # "keras" or "tf_keras": the package behind tf.keras
    keras: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "reason": self.reason,
            "tensorflow": self.tensorflow,
            "keras_package": self.keras_package,
            "keras": self.keras,
        }


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def installed_tensorflow() -> str | None:
    """The version of whichever TensorFlow distribution is installed (nightly versions included)."""
    for name in TENSORFLOW_DISTRIBUTIONS:
        version = installed_version(name)
        if version is not None:
            return version
    return None


def select_profile(requested: str = AUTO, *, environ: Mapping[str, str] | None = None) -> Selection:
    """The profile to use: ``requested`` when it names one, else the one the installed packages imply."""
    if requested != AUTO and requested not in PROFILES:
        raise UsageError(f"profile={requested!r} is not {AUTO!r} or one of {', '.join(sorted(PROFILES))}")
    env = os.environ if environ is None else environ
    tensorflow = installed_tensorflow()
    legacy = env.get("TF_USE_LEGACY_KERAS")
    if legacy in LEGACY_KERAS_VALUES:
        package, keras = "tf_keras", installed_version("tf-keras")
        profile = "keras2"
        reason = f"TF_USE_LEGACY_KERAS={legacy} routes tf.keras to tf_keras {keras or '(not installed)'}"
    else:
        # the keras module comes from the "keras" distribution, or "keras-nightly" beside tf-nightly
        package, keras = "keras", installed_version("keras") or installed_version("keras-nightly")
        profile = "keras3" if keras is None or keras.startswith("3.") else "keras2"
        reason = f"tf.keras is the keras package {keras}" if keras else "keras is not installed; assuming Keras 3"
    if requested != AUTO:
        return Selection(requested, f"--profile {requested} (auto would choose {profile}: {reason})", tensorflow, package, keras)
    return Selection(profile, reason, tensorflow, package, keras)
