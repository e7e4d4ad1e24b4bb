"""Other Keras backends: ``run --backend jax|torch|numpy``.

What needs no framework runs everywhere: which cases a backend can express (the rest skipped by construction,
with a reason), the registry's ``backend`` match key, the one-line refusal when a backend's package is missing.
What runs Keras under a backend runs in a subprocess (Keras binds its backend once per process) and is skipped,
with the reason, where the backend's packages are not installed (the CI environment has TensorFlow only):
a fault planted in that backend's kernel (``tests.planted.backend_kernel_scaled``) makes the run exit 1 with
tolerance failures recorded under that backend, and the same selection without the fault exits 0.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.backends import BACKENDS, backend_of, split, unsupported
from harness.case import Case
from harness.errors import InputError
from harness.judge.compare import Comparison
from harness.judge.registry import Divergence, Registry, load_registry
from harness.run.runner import judged

REPO = Path(__file__).resolve().parents[2]
NEEDS = {"jax": ("keras", "jax", "jaxlib"), "torch": ("keras", "torch"), "numpy": ("keras", "scipy")}


def installed(backend: str) -> bool:
    return all(importlib.util.find_spec(p) is not None for p in NEEDS[backend])


def needs(backend: str):
    missing = [p for p in NEEDS[backend] if importlib.util.find_spec(p) is None]
    return pytest.mark.skipif(bool(missing), reason=f"the {backend} backend needs {', '.join(missing)} (pip install 'bce-harness[{backend}]')")


def _case(**kw) -> Case:
    base = {"id": "t/x", "y_true": np.array([[1.0, 0.0]]), "y_pred": np.array([[0.75, 0.25]]), "true_dtype": "float32",
            "pred_dtype": "float32"}  # fmt: skip
    return Case(**{**base, **kw})


def test_tensorflow_keeps_every_case_untagged():
    cases = [_case(api="nn.sigmoid_cross_entropy_with_logits", mode="xla"), _case(producer="tf.sigmoid", grad="y_pred")]
    kept, skipped = split(cases, "tensorflow")
    assert kept == cases and skipped == {}
    assert backend_of(kept[0]) == "tensorflow"


@pytest.mark.parametrize(
    ("backend", "case", "reason"),
    [
        ("jax", _case(api="nn.sigmoid_cross_entropy_with_logits"), "TensorFlow's own entry point"),
        ("torch", _case(producer="tf.sigmoid"), "TensorFlow's own op"),
        ("torch", _case(mode="function"), "torch.compile"),
        ("numpy", _case(mode="xla"), "no tracer"),
        ("numpy", _case(grad="y_pred"), "no automatic differentiation"),
        ("jax", _case(api="metrics.BinaryCrossentropy", y_true=np.array([[[1.0]]]), y_pred=np.array([[[0.5]]]), mode="xla"), "jax.jit"),
    ],
)
def test_what_a_backend_cannot_express_is_skipped_with_its_reason(backend, case, reason):
    found = unsupported(case, backend)
    assert found is not None and reason in found
    kept, skipped = split([case, _case(id="t/plain")], backend)
    assert [c.id for c in kept] == ["t/plain"] and skipped == {found: 1}
    assert backend_of(kept[0]) == backend  # the record carries its backend: registry, report and compare see it


def test_training_and_replica_cases_stay_on_tensorflow():
    from harness.generate.grid import default_suite

    routed = [c for c in default_suite() if getattr(c, "training", None) is not None][:3]
    if not routed:
        pytest.skip("this suite has no training family")
    for backend in ("jax", "torch", "numpy"):
        assert all("TensorFlow target only" in (unsupported(c, backend) or "") for c in routed)
    assert all(unsupported(c, "tensorflow") is None for c in routed)


def test_jax_maps_traced_modes_and_gradients():
    assert unsupported(_case(mode="xla", grad="y_pred", producer="keras.ops.sigmoid"), "jax") is None
    assert unsupported(_case(grad="sample_weight", sample_weight=np.array([1.0])), "torch") is None


def test_split_refuses_an_unknown_backend():
    with pytest.raises(ValueError, match="mxnet"):
        split([_case()], "mxnet")


def test_registry_matches_the_backend_facet():
    entry = Divergence(
        id="jax-only", title="t", reason="r", evidence=("e",), kinds=frozenset({"tolerance"}), match={"backend": "jax"}
    )
    registry = Registry((entry,))
    failing = Comparison("tolerance", "planted")
    (on_jax,), _ = split([_case()], "jax")
    (on_torch,), _ = split([_case()], "torch")
    assert judged(on_jax, failing, None, None, registry, "keras3").status == "xfail"
    # the same failure under another backend, or under TensorFlow, is not explained by a jax entry
    assert judged(on_torch, failing, None, None, registry, "keras3").status == "fail"
    assert judged(_case(), failing, None, None, registry, "keras3").status == "fail"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
    )


def test_unknown_backend_is_a_usage_error():
    proc = run_cli("run", "--backend", "mxnet", "--out", "unused")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "tensorflow"])
def test_missing_backend_package_is_one_line(backend, tmp_path):
    if installed(backend):
        pytest.skip(f"the {backend} backend is installed here")
    proc = run_cli("run", "--backend", backend, "--out", str(tmp_path / "r"), "--max-cases", "5")
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and f"bce-harness[{backend}]" in proc.stderr


HEAVY = bool(os.environ.get("BCE_HARNESS_HEAVY"))


def _installed_backends() -> list:
    """NumPy always (where installed: a worker starts in seconds); JAX and PyTorch in the nightly (their
    workers take minutes to start and compile on a busy machine)."""
    heavy = pytest.mark.skipif(not HEAVY, reason="a worker of this backend takes minutes here: set BCE_HARNESS_HEAVY=1")
    return [pytest.param(b, marks=[needs(b)] + ([] if b == "numpy" else [heavy])) for b in ("numpy", "jax", "torch")]


# the values family's probabilities: every case reaches the backend's kernel, and a 1e-3 relative error is far
# outside any float32 or float64 bound there
PLANTED_SELECT = "values/probs/typical/*"


@pytest.mark.parametrize("backend", _installed_backends())
def test_fault_planted_in_one_backend_is_caught(backend, tmp_path):
    planted = run_cli(
        "run", "--backend", backend, "--select", PLANTED_SELECT, "--max-cases", "6", "--workers", "1", "--quiet",
        "--no-progress", "--loss-factory", "tests.planted:backend_kernel_scaled", "--out", str(tmp_path / "planted"),
    )  # fmt: skip
    assert planted.returncode == 1, planted.stdout + planted.stderr
    results = json.loads((tmp_path / "planted" / "results.json").read_text())
    assert results["meta"]["backend"]["name"] == backend and results["meta"]["backend"]["version"]
    failed = [r for r in results["records"] if r["status"] == "fail"]
    assert failed and all(r["kind"] == "tolerance" and r["tags"]["backend"] == backend for r in failed)
    stock = run_cli(
        "run", "--backend", backend, "--select", PLANTED_SELECT, "--max-cases", "6", "--workers", "1", "--quiet",
        "--no-progress", "--out", str(tmp_path / "stock"),
    )  # fmt: skip
    assert stock.returncode == 0, stock.stdout + stock.stderr


def test_intermittent_entry_passes_an_agreeing_record_and_still_explains_a_failure():
    strict = Divergence(id="s", title="t", reason="r", evidence=("e",), kinds=frozenset({"tolerance"}), match={"backend": "torch"})
    loose = dataclasses.replace(strict, id="i", intermittent=True)
    (case,), _ = split([_case()], "torch")
    agrees, fails = Comparison(None, ""), Comparison("tolerance", "planted")
    assert judged(case, agrees, None, None, Registry((strict,)), "keras3").status == "xpass"
    record = judged(case, agrees, None, None, Registry((loose,)), "keras3")
    assert record.status == "pass" and "some values" in record.note
    assert judged(case, fails, None, None, Registry((loose,)), "keras3").status == "xfail"


def test_intermittent_must_be_a_boolean(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(
        '[[divergence]]\nid = "x"\ntitle = "t"\nreason = "r"\nevidence = ["e"]\nkinds = ["tolerance"]\n'
        'intermittent = "yes"\n[divergence.match]\nbackend = "jax"\n'
    )
    with pytest.raises(InputError, match="intermittent"):
        load_registry(path)


def test_the_registry_places_backend_entries_on_their_backends():
    """Each entry read off one backend's kernel names it; the TensorFlow kernel's findings do not reach another
    backend, where the same records agree (they would be xpass there)."""
    entries = {e.id: e for e in load_registry().entries}
    assert entries["saturated-sigmoid-logits-recovered"].match["backend"] == "tensorflow"
    assert entries["infinite-logits-nan"].match["backend"] == "tensorflow"
    for entry in entries.values():
        named = entry.match.get("backend")
        if entry.id.startswith(("numpy-", "jax-", "torch-")):
            assert named == entry.id.split("-")[0], entry.id


def test_compare_labels_a_side_by_its_backend():
    from harness.report.drift import _version_line

    tf_side = {"tensorflow": "2.21.0", "keras": "3.15.1", "profile": "keras3", "backend": {"name": "tensorflow"}}
    jax_side = {"tensorflow": None, "keras": "3.15.1", "profile": "keras3", "backend": {"name": "jax", "version": "0.10.2"}}
    assert _version_line(tf_side).startswith("TensorFlow 2.21.0")
    assert _version_line(jax_side) == "Keras 3.15.1 on jax 0.10.2, profile keras3"
    assert _version_line({"tensorflow": "2.15.1", "keras": "2.15.0", "profile": "keras2"}).startswith("TensorFlow 2.15.1")
