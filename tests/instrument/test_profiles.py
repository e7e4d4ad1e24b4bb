"""Profile selection from the installed packages and the environment, as TensorFlow makes the same choice."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness.case import Case, Options
from harness.errors import UsageError
from harness.judge.matching import record_facets
from harness.oracle import expected, profiles
from harness.oracle.profiles import select_profile


@pytest.fixture
def installed(monkeypatch):
    """Pretend a set of distributions is installed: ``installed({"keras": "2.15.0"})``."""

    def set_versions(versions: dict[str, str]) -> None:
        monkeypatch.setattr(profiles, "installed_version", lambda name: versions.get(name))

    return set_versions


@pytest.mark.parametrize(
    "versions, env, profile",
    [
        pytest.param({"tensorflow": "2.15.1", "keras": "2.15.0"}, {}, "keras2", id="TF 2.15 with keras 2.15: keras2"),
        pytest.param({"tensorflow": "2.21.0", "keras": "3.15.1"}, {}, "keras3", id="TF 2.21 with keras 3: keras3"),
        pytest.param(
            {"tensorflow": "2.21.0", "keras": "3.15.1", "tf-keras": "2.21.0"},
            {"TF_USE_LEGACY_KERAS": "1"},
            "keras2",
            id="TF_USE_LEGACY_KERAS=1: keras2",
        ),
        pytest.param(
            {"tensorflow": "2.21.0", "keras": "3.15.1", "tf-keras": "2.21.0"},
            {"TF_USE_LEGACY_KERAS": "True"},
            "keras2",
            id="TF_USE_LEGACY_KERAS=True: keras2",
        ),
        pytest.param(
            {"tensorflow": "2.21.0", "keras": "3.15.1"},
            {"TF_USE_LEGACY_KERAS": "yes"},
            "keras3",
            id="TF_USE_LEGACY_KERAS=yes is not one of TF's values: keras3",
        ),
        pytest.param({"tf-nightly": "2.22.0.dev20260301", "keras": "3.16.0"}, {}, "keras3", id="tf-nightly: keras3"),
        pytest.param(
            {"tf-nightly": "2.23.0.dev20261026", "keras-nightly": "3.16.0.dev2026102704"},
            {},
            "keras3",
            id="tf-nightly with keras-nightly: keras3",
        ),
        pytest.param({}, {}, "keras3", id="nothing installed: keras3"),
    ],
)
def test_auto_selection(installed, versions, env, profile):
    installed(versions)
    selection = select_profile(environ=env)
    assert selection.profile == profile
    assert selection.tensorflow == versions.get("tensorflow", versions.get("tf-nightly"))
    assert selection.reason
    if "keras-nightly" in versions:  # tf-nightly pulls in keras-nightly, which provides the keras module
        assert selection.keras == versions["keras-nightly"] and "3.16" in selection.reason


def test_a_forced_profile_wins_and_says_what_auto_would_choose(installed):
    installed({"tensorflow": "2.21.0", "keras": "3.15.1"})
    selection = select_profile("keras2", environ={})
    assert selection.profile == "keras2" and "auto would choose keras3" in selection.reason


def test_an_unknown_profile_is_a_usage_error():
    with pytest.raises(UsageError, match="profile='keras9'"):
        select_profile("keras9")


def test_record_facets_carry_the_profile_and_its_compute_dtype():
    c = Case(id="t", y_true=np.ones((1, 1)), y_pred=np.ones((1, 1)), true_dtype="float16", pred_dtype="float16",
             options=Options(reduction="none"))
    facets = record_facets(c, expected(c, profile="keras2"), "keras2")
    assert facets["profile"] == "keras2" and facets["compute_dtype"] == "float16"
    assert record_facets(c, expected(c, profile="keras3"), "keras3")["compute_dtype"] == "float32"


@pytest.mark.parametrize(
    "weight, dtype, flushed",
    [
        (1e-40, None, True),  # a float32 subnormal
        (1e-30, None, False),  # normal
        (0.0, None, False),  # zero is zero, not flushed
        (1e-40, "bfloat16", True),  # bfloat16 has float32's exponent range
        (1e-310, "float64", True),
        (1e-7, "float16", False),  # a float16 subnormal, but float16 kernels compute in float32
        (1e-40, "float64", False),  # normal in float64
    ],
)
def test_flushed_weights_facet(weight, dtype, flushed):
    # the facet the subnormal-weight registry entries key on
    c = Case(id="t", y_true=np.ones((2, 1)), y_pred=np.full((2, 1), 0.5), true_dtype="float64", pred_dtype="float64",
             options=Options(reduction="sum", dtype=dtype), sample_weight=np.array([1.0, weight]), weight_dtype="float64")
    assert record_facets(c, expected(c), "keras3")["flushed_weights"] is flushed
    assert record_facets(dataclasses.replace(c, sample_weight=None), None, "keras3")["flushed_weights"] is False


@pytest.mark.tensorflow
def test_auto_selection_agrees_with_the_imported_tf_keras(tf_target):
    versions = tf_target.versions()
    # under TF_USE_LEGACY_KERAS tf.keras is tf_keras's module, whatever the keras package's version is
    legacy = str(versions.get("tf_keras_module", "")).startswith("tf_keras")
    line = "keras2" if legacy or not str(versions["keras"]).startswith("3.") else "keras3"
    assert select_profile().profile == line, versions
