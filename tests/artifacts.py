"""Files as other jobs hand them over, made without TensorFlow: record streams (shards), results.json, case
files.  The records are judged against the reference with made-up outcomes, so they are real records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from harness.case import Case, Options, Outcome
from harness.jsonio import dumps
from harness.judge.compare import compare
from harness.judge.registry import DEFAULT_REGISTRY, Registry
from harness.oracle import expected
from harness.report.summary import build_results
from harness.run.runner import Record, RunResult, judged
from harness.run.stream import RecordStream, file_fingerprint, suite_fingerprint, write_provenance

CASE = {
    "id": "saved/x",
    "options": {"from_logits": False, "label_smoothing": 0.0, "axis": -1, "reduction": "none", "dtype": None},
    "true_dtype": "float32",
    "pred_dtype": "float32",
    "y_true": {"shape": [1, 2], "data": [0.0, 1.0]},
    "y_pred": {"shape": [1, 2], "data": [0.25, 0.5]},
}


def case(case_id: str = "special/artifact") -> Case:
    return Case(
        id=case_id,
        y_true=np.array([[0.0, 1.0], [1.0, 0.0]]),
        y_pred=np.array([[0.25, 0.5], [1.0, 0.0]]),
        true_dtype="float32",
        pred_dtype="float32",
        options=Options(reduction="none"),
        tags={"family": "special", "regime": "special", "shape": "BC"},
    )


def record(case_id: str, *, error: str | None = None, agrees: bool = True) -> Record:
    """A judged record of ``case(case_id)``: TensorFlow agreed, raised ``error``, or returned zeros."""
    c = case(case_id)
    exp = expected(c)
    if error is not None:
        out = Outcome(error=error)
    elif agrees:
        out = Outcome(value=np.asarray(exp.value, dtype=np.float64).astype(np.float32).astype(np.float64), dtype="float32")
    else:
        out = Outcome(value=np.zeros(2), dtype="float32")
    return judged(c, compare(c, exp, out), exp, out, Registry(), "keras3")

# where the shards of write_shards ran: what a run's results.json meta says of it
PROVENANCE_META = {
    "tensorflow": "2.x", "keras": "3.x", "target": {"tensorflow": "2.x", "keras": "3.x"}, "python": "3.11.9",
    "numpy": "2.1.0", "platform": "Linux-x86_64", "cpu_flags": ["avx2", "fma"], "environment": {"TF_ENABLE_ONEDNN_OPTS": None},
}  # fmt: skip


def write_shards(root: Path, n: int, *, ids_per_shard: int = 2, seed: int = 1, **header: Any) -> list[Path]:
    """``n`` shard folders of one run, each with its complete stream; ``header`` overrides header keys."""
    ids = [f"special/c{i}" for i in range(n * ids_per_shard)]
    dirs = []
    for k in range(1, n + 1):
        mine = ids[k - 1 :: n]
        d = root / f"shard{k}"
        head = {
            "seed": seed, "profile": "keras3", "suite": suite_fingerprint([case(i) for i in mine]), "shard": [k, n],
            "select": None, "max_cases": None, "whole_suite": suite_fingerprint([case(i) for i in ids]), "size": len(mine),
            "loss_factory": None, "registry_sha": file_fingerprint(DEFAULT_REGISTRY), "special_cases_sha": "x",
        }  # fmt: skip
        head.update(header)
        with RecordStream(d, head) as stream:
            for i in mine:
                stream.append(record(i))
        write_provenance(d, PROVENANCE_META)
        dirs.append(d)
    return dirs


def results(records: list[Record], **meta: Any) -> dict[str, Any]:
    m = {"format_version": 2, "seed": 1, "profile": "keras3", "tensorflow": "2.x", "keras": "3.x", **meta}
    return build_results(RunResult(tuple(records)), m)


def write_results(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(data))
    return path


def write_case(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path
