"""The run as an API (harness/engine.py): a ``RunSpec`` runs without argv, and the run's identity is checked
in one place, for ``--resume`` and for ``merge``, with a message that says what differs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.engine import IDENTITY, RunSpec, check_same_run, check_same_slices, differences, run
from harness.errors import InputError, UsageError

HEADER = {
    "seed": 0, "profile": "keras3", "suite": "abc", "shard": (1, 2), "select": None, "max_cases": 4,
    "whole_suite": "def", "size": 2, "loss_factory": None, "registry_sha": "r1", "special_cases_sha": "s1",
    "suite_name": "default", "seeds": None,
}  # fmt: skip


def test_every_identity_field_is_checked() -> None:
    """A header that differs in any one identity field is another run; the message names the field with the
    recorded and the given value."""
    for key in IDENTITY:
        other = {**HEADER, key: "changed"}
        with pytest.raises(UsageError) as info:
            check_same_run("reports/x", HEADER, other)
        text = str(info.value)
        assert f"{key}: {HEADER.get(key, 'tensorflow')!r} -> 'changed'" in text, text
        assert text.startswith("--resume reports/x: not the run recorded there (recorded -> given: ") and "\n" not in text


def test_what_is_not_identity_resumes() -> None:
    """An edited registry is no other run (every record is judged again when read); a list read back from
    JSON is the tuple it was; a header from before suite_name, seeds and backend existed is the default."""
    check_same_run("x", HEADER, {**HEADER, "registry_sha": "r2"})
    check_same_run("x", json.loads(json.dumps(HEADER)), HEADER)
    old = {k: v for k, v in HEADER.items() if k not in ("suite_name", "seeds")}
    check_same_run("x", old, {**HEADER, "backend": "tensorflow"})
    with pytest.raises(UsageError, match="backend: 'tensorflow' -> 'jax'"):
        check_same_run("x", old, {**HEADER, "backend": "jax"})


def test_slices_share_all_but_their_own() -> None:
    """merge: two slices differ in their shard, cases and size, never in the rest (the registry included)."""
    other = {**HEADER, "shard": (2, 2), "suite": "xyz", "size": 3}
    check_same_slices(["a", "b"], [HEADER, other])
    assert differences(HEADER, other) == ["suite: 'abc' -> 'xyz'", "shard: (1, 2) -> (2, 2)", "size: 2 -> 3"]
    with pytest.raises(InputError, match=r"^b: not a slice of the run in a \(registry_sha: 'r1' -> 'r2'\)"):
        check_same_slices(["a", "b"], [HEADER, {**other, "registry_sha": "r2"}])


def test_spec_refuses_what_cannot_run() -> None:
    with pytest.raises(UsageError, match="give one"):
        RunSpec(resume=True, force=True)
    with pytest.raises(UsageError, match="default suite only"):
        RunSpec(backend="jax", suite="nightly")
    spec = RunSpec()
    assert spec.registry.endswith("known_divergences.toml") and spec.special_cases.endswith(".toml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seed = 1  # type: ignore[misc]


@pytest.mark.tensorflow
def test_the_api_runs_and_the_resume_message_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``run(RunSpec(...))`` is the command's run, without argv; resuming it with another seed is refused by
    the one identity check, and the command line prints that check's one line, exit 2."""
    pytest.importorskip("tensorflow")
    out = str(tmp_path / "run")
    said: list[str] = []
    output = run(RunSpec(out=out, max_cases=4, workers=0), say=said.append)
    assert len(output.result.records) == 4 and output.bulk is None
    assert said[0].startswith("profile: ") and output.meta["suite_size"] == 4
    assert (Path(out) / "records.jsonl").is_file()
    code = main(["run", "--out", out, "--max-cases", "4", "--workers", "0", "--seed", "7", "--resume", "--quiet", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"bce-harness: error: --resume {out}: not the run recorded there (recorded -> given: seed: 0 -> 7"), err
    assert "{k:" not in err[0]  # the message is the values, not the text of the code that formats them
    # the same options resume: nothing left to run, the four records read back
    again = run(RunSpec(out=out, max_cases=4, workers=0, resume=True))
    assert [r.case.id for r in again.result.records] == [r.case.id for r in output.result.records]
    assert again.meta["resumed_records"] == 4
