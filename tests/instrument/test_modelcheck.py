"""``explain --model``: small saved models, each with its expected diagnosis.

The models are built into a temporary folder by one fixture (seconds): a 2-unit softmax head compiled with
binary cross-entropy, a sigmoid head under mixed_float16, a sigmoid head with ``reduction="sum"`` evaluated
at two batch sizes, and a correct setup whose every route must agree.  A functional and a subclassed model go
through the Python call, and bad inputs must exit 2 with one line.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.cli import main
from harness.errors import UsageError

keras = pytest.importorskip("keras")

N = 10


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)  # the models' initial weights: the same models, so the same diagnoses, every run
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(N, 3)) * 3).astype("float32")
    y = (rng.random((N, 1)) > 0.5).astype("float32")
    files = {"x": d / "x.npy", "y": d / "y.npy", "y2": d / "y2.npy", "w": d / "w.npy"}
    np.save(files["x"], x)
    np.save(files["y"], y)
    np.save(files["y2"], np.concatenate([y, 1 - y], axis=1))
    np.save(files["w"], np.linspace(0.5, 2, N).astype("float32"))

    def head(units: int, activation: str, **kw: object) -> keras.Model:
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units, activation=activation, **kw)])

    m = head(2, "softmax")
    m.compile(loss="binary_crossentropy")
    m.save(files.setdefault("softmax", d / "softmax.keras"))
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        m = head(1, "sigmoid", kernel_initializer=keras.initializers.Constant(2.0))
        m.compile(loss="binary_crossentropy")
        m.save(files.setdefault("mixed", d / "mixed.keras"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    m = head(1, "sigmoid")
    m.compile(loss=keras.losses.BinaryCrossentropy(reduction="sum"))
    m.save(files.setdefault("sum", d / "sum.keras"))
    m = head(1, "sigmoid")
    m.compile(loss="binary_crossentropy", metrics=["binary_crossentropy"])
    m.save(files.setdefault("ok", d / "ok.keras"))
    m = head(1, "relu")
    m.compile(loss="mse")
    m.save(files.setdefault("mse", d / "mse.keras"))
    return {k: str(v) for k, v in files.items()}


def explain(saved: dict[str, str], model: str, capsys: pytest.CaptureFixture[str], *extra: str, y: str = "y") -> tuple[int, str]:
    code = main(["explain", "--model", saved[model], "--x", saved["x"], "--y", saved[y], *extra])
    return code, capsys.readouterr().out


def test_softmax_head_read_as_sigmoid_logits(saved, capsys) -> None:
    code, out = explain(saved, "softmax", capsys, y="y2")
    assert code == 1, out
    assert "loss on model.predict(x)" in out and "loss on model(x)" in out
    departs = [line.strip() for line in out.splitlines() if line.endswith("DEPARTS")]
    assert [line.split("  ")[0] for line in departs] == ["loss on model(x)", "evaluate (batch_size=32)"], out
    assert "cause: softmax-output-read-as-sigmoid-logits (registered divergence)" in out
    assert "evaluate-batch-size-dependence" not in out  # the default reduction does not depend on the batches


def test_mixed_float16_sigmoid_head(saved, capsys) -> None:
    code, out = explain(saved, "mixed", capsys)
    assert code == 1, out
    assert "policy mixed_float16" in out
    assert "the same weights in float32" in out and "cause: mixed-precision-outputs (documented behaviour)" in out
    # the routes themselves read the float16 outputs as documented: they agree with the oracle on them
    for route in ("loss on model.predict(x)", "loss on model(x)", "evaluate (batch_size=32)"):
        assert any(line.strip().startswith(route) and line.endswith("agrees") for line in out.splitlines()), (route, out)


def test_reduction_sum_depends_on_the_batch_size(saved, capsys) -> None:
    code, out = explain(saved, "sum", capsys, "--batch-size", "4")
    assert code == 1, out
    assert "evaluate (batch_size=4)" in out and "DEPARTS" in out
    assert "cause: evaluate-batch-size-dependence (documented behaviour)" in out
    code, out = explain(saved, "sum", capsys, "--batch-size", str(N))  # one batch: the documented sum
    assert code == 0, out
    assert "every route agrees" in out


def test_a_correct_setup_agrees_on_every_route(saved, capsys) -> None:
    code, out = explain(saved, "ok", capsys)
    assert code == 0, out
    assert "verdict: every route agrees" in out
    assert "compiled metric 'binary_crossentropy'" in out


def test_unweighted_metric_with_sample_weight_is_noted(saved, capsys) -> None:
    code, out = explain(saved, "ok", capsys, "--sample-weight", saved["w"], "--batch-size", str(N))
    assert code == 0, out
    assert "not weighted by sample_weight" in out


def test_json(saved, capsys) -> None:
    import json

    code, out = explain(saved, "softmax", capsys, "--json", y="y2")
    found = json.loads(out)
    assert code == 1 and found["agrees"] is False
    assert {c["id"] for r in found["routes"] for c in r["causes"]} == {"softmax-output-read-as-sigmoid-logits"}


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--model", "{d}/missing.keras", "--x", "{x}", "--y", "{y}"], "no such file"),
        (["--model", "{mse}", "--x", "{x}", "--y", "{y}"], "is not binary cross-entropy"),
        (["--model", "{ok}", "--x", "{x}", "--y", "{y2}"], "not BCE-shaped"),
        (["--model", "{ok}", "--x", "{x}", "--y", "{x}"], "not BCE-shaped"),
        (["--model", "{ok}", "--x", "{x}"], "needs --x X.npy and --y Y.npy"),
        (["--model", "{ok}", "--x", "{ok}", "--y", "{y}"], "is not a .npy array"),
    ],
    ids=["missing-file", "mse-model", "labels-of-another-shape", "x-as-labels", "no-y", "model-as-x"],
)
def test_bad_input_is_one_line_and_exit_2(saved, capsys, argv, says) -> None:
    from pathlib import Path

    fill = {**saved, "d": str(Path(saved["x"]).parent)}
    assert main(["explain", *(a.format(**fill) for a in argv)]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_functional_and_subclassed_models_through_the_python_call(saved) -> None:
    from harness.modelcheck import check_model

    x, y = np.load(saved["x"]), np.load(saved["y"])
    inputs = keras.Input((3,))
    functional = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(4)(inputs)))
    functional.compile(loss=keras.losses.BinaryCrossentropy())
    assert check_model(functional, x, y).agrees

    class Head(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.dense = keras.layers.Dense(2)
            self.softmax = keras.layers.Softmax()

        def call(self, inputs):
            return self.softmax(self.dense(inputs))

    sub = Head()
    sub.compile(loss="binary_crossentropy")
    sub(x)  # built, so its weights exist before the check
    weights_before = [w.copy() for w in sub.get_weights()]
    report = check_model(sub, x, np.load(saved["y2"]))
    assert not report.agrees
    assert {c.id for r in report.routes for c in r.causes} == {"softmax-output-read-as-sigmoid-logits"}
    assert all(np.array_equal(a, b) for a, b in zip(weights_before, sub.get_weights(), strict=True))  # never changed


def test_python_call_validates_at_the_door(saved) -> None:
    from harness.modelcheck import check_model

    with pytest.raises(UsageError, match="batch_size=0"):
        check_model(saved["ok"], np.load(saved["x"]), np.load(saved["y"]), batch_size=0)
    with pytest.raises(UsageError, match="x has 10 samples and y 3"):
        check_model(saved["ok"], np.load(saved["x"]), np.load(saved["y"])[:3])


def test_callback_checks_every_nth_batch_and_changes_nothing(saved) -> None:
    from harness.frameworks.model import load_model
    from harness.keras import BCECheck

    x, y2 = np.load(saved["x"]), np.load(saved["y2"])
    model = load_model(saved["softmax"])
    before = [w.copy() for w in model.get_weights()]
    check = BCECheck(x[:4], y2[:4], every=2)
    model.evaluate(x, y2, batch_size=2, verbose=0, callbacks=[check])  # 5 batches: checked after 2 and 4
    assert [where for where, _ in check.reports] == ["evaluate batch 2", "evaluate batch 4"]
    causes = {c.id for _, r in check.reports for route in r.routes for c in route.causes}
    assert causes == {"softmax-output-read-as-sigmoid-logits"}
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    with pytest.raises(UsageError, match="every=0"):
        BCECheck(x, y2, every=0)
