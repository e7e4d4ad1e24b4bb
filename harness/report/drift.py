"""Drift between two runs: what changed from BASE to NEW, case by case, from their ``results.json``.

Both files must come from runs of the same suite with the same seed (format 2 or later, where every record
carries TensorFlow's outcome), typically on two TensorFlow versions, two Keras releases or two Keras lines.
Every change falls in one class:

``regressions``      inside the documented domain, the case held in BASE and does not in NEW; ``regressed``
                     is true.  Two lists: ``new_divergences`` (passed in BASE; a registered divergence that
                     NEW's versions bring is one too: its introduction is the regression) and ``unexplained``
                     (a known divergence in BASE, xfail, that fails unexpectedly in NEW)
``fixed``            a registered divergence that no longer reproduces, or a failure that now holds: each
                     says the registry edit it calls for (``registry_edit``)
``behaviour``        no verdict moved, the behaviour did: a case outside the documented domain (or not
                     expressible on one side's Keras) whose outcome or status changed, or a raise whose
                     exception type or message changed where both sides raised
``drift``            cases whose TensorFlow output moved with no status change: it raised in one run only,
                     its dtype or shape changed, its NaN/inf moved, or a finite value moved by more than the
                     tolerance -- the larger of the two records' error bounds, elementwise, so two results that
                     are both within a correct implementation's reach of the exact value do not count -- or,
                     with ``exact``, by anything at all (+0 and -0 are the same value)

Only regressions make ``compare`` exit 1 and become upstream bodies (issue.py).

Each change is grouped by option family (the case's family and probs/logits, as in the run summary) and
keeps both sides' values, so a report can show before and after.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.case import Case, Config, Options, TrainingSpec
from harness.dtypes import FLOAT_DTYPES, float_format, ulp_distance
from harness.errors import InputError, UsageError
from harness.families import group_of
from harness.jsonio import MAX_DIMS, MAX_ELEMENTS, atomic_write_text, decode_array, decode_number, dumps, encode_number
from harness.report.inert import term
from harness.run.runner import NO_VERDICT, STATUSES
from harness.schema import (
    Array,
    Bool,
    Int,
    Json,
    List,
    Map,
    Num,
    Obj,
    Opt,
    Scalar,
    Str,
    format_version,
    read_json,
    short,
)

__all__ = [
    "DRIFT_VERSION", "MAX_FORMAT", "MIN_FORMAT", "Change", "coverage_text", "Drift", "Tally", "check_pair", "check_record", "compare_results",
    "load_results", "output_digest", "read_drift", "render_text", "write_drift",
]  # fmt: skip

MIN_FORMAT = 2  # report.py FORMAT_VERSION 2: every record has its outcome
MAX_FORMAT = 7  # summary.FORMAT_VERSION, the newest layout this version reads (a test keeps them equal)
_OK = ("pass", "xpass")
_ROWS = 3


def load_results(path: str | Path) -> dict[str, Any]:
    """A results.json (or the one in a folder), read against ``RESULTS``: every field of every record and of
    the meta, whether compare reads it or not, its arrays decoded and each record's options, training and
    config through their own decoders.  InputError names the file, the field and the value."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    data = read_json(path, "results file", check=_check_results)
    data["meta"]["source"] = str(path)
    for r in data["records"]:  # one name for y_pred's dtype, whatever the format
        rename_pred_dtype(r)
    return data


def rename_pred_dtype(r: dict[str, Any]) -> dict[str, Any]:
    """A record of format 6 or earlier names y_pred's dtype ``input_dtype``: the name it has since, pred_dtype."""
    if "input_dtype" in r and "pred_dtype" not in r:
        r["pred_dtype"] = r.pop("input_dtype")
    return r


_TEXT = Str()
_SIZES = List(Int(0, MAX_ELEMENTS), MAX_DIMS)

# Every field a run writes in a record (summary.record_dict, formats 2 to 6), and what it must be; a field
# of another format is kept, not read.
_RECORD = Obj(
    {
        "id": _TEXT,
        "status": Str(choices=STATUSES),
        "api": Opt(_TEXT),
        "options": Map(Json(), 100),  # Options.from_dict checks it
        "pred_dtype": Opt(_TEXT),
        "input_dtype": Opt(_TEXT),  # formats 2 to 6: pred_dtype (load_results renames it)
        "true_dtype": Opt(_TEXT),
        "weight_dtype": Opt(_TEXT),
        "compute_dtype": Opt(_TEXT),
        "shape": Opt(_SIZES),
        "true_shape": Opt(_SIZES),
        "actual_shape": Opt(_SIZES),
        "tags": Map(_TEXT),
        "mode": Opt(_TEXT),
        "producer": Opt(_TEXT),
        "grad": Opt(_TEXT),
        "training": Opt(Map(Json(), 100)),  # TrainingSpec.from_dict checks it
        "config": Opt(Map(Json(), 100)),  # Config.from_dict checks it
        "row_lengths": Opt(List(Int(0, MAX_ELEMENTS), MAX_ELEMENTS)),
        "kind": Opt(_TEXT),
        "max_abs": Opt(Num()),
        "max_rel": Opt(Num()),
        "max_ulp": Opt(Int(0, 2**64)),
        "actual_dtype": Opt(_TEXT),
        "actual_error": Opt(_TEXT),
        "expected_dtype": Opt(_TEXT),
        "expected_error": Opt(_TEXT),
        "digest": Opt(Str(64)),
        "preview": Opt(List(Num(), 1000)),
        "actual": Opt(Array()),
        "bound": Opt(Array()),
        "expected": Opt(Array()),
        "y_true": Opt(Array()),
        "y_pred": Opt(Array()),
        "sample_weight": Opt(Array()),
        "mask": Opt(Array()),
        "divergence": Opt(_TEXT),
        "note": Opt(_TEXT),
        "message": Opt(_TEXT),
        "evidence": Opt(Map(Json())),
        "inferred": Opt(Bool()),
    },
    required=frozenset({"id", "status"}),
    extra=Json(),
)

# The meta a run writes (summary.meta and the commands' extras); a field of another format is kept, not read.
_META = Obj(
    {
        "format_version": Int(MIN_FORMAT, MAX_FORMAT),
        "harness_version": Opt(_TEXT),
        "created_utc": Opt(_TEXT),
        "seed": Opt(Int(0, 2**64)),
        "profile": Opt(_TEXT),
        "python": Opt(_TEXT),
        "numpy": Opt(_TEXT),
        "tensorflow": Opt(_TEXT),
        "keras": Opt(_TEXT),
        "target": Opt(Map(Scalar())),
        "platform": Opt(_TEXT),
        "cpu_flags": Opt(List(_TEXT, 10_000)),
        "environment": Opt(Map(Opt(_TEXT))),
        "argv": Opt(List(_TEXT)),
        "registry": Opt(_TEXT),
        "suite": Opt(_TEXT),
        "suite_size": Opt(Int()),
        "max_cases": Opt(Int()),
        "select": Opt(_TEXT),
        "shard": Opt(List(Int(1), 2)),
        "shards": Opt(List(Opt(List(Int(1), 2)))),
        "merged_from": Opt(List(_TEXT)),
        "workers": Opt(Int()),
        "resumed_records": Opt(Int()),
        "loss_factory": Opt(_TEXT),
        "wall_seconds": Opt(Num(lo=0, nonfinite=False)),
        "suite_name": Opt(_TEXT),
        "seeds": Opt(List(Int(0, 2**64), 2)),
        "backend": Opt(Map(Json(), 100)),
        "coverage": Opt(Map(Json())),
        "seconds": Opt(Map(Num(nonfinite=False))),
        "interrupted": Opt(Bool()),
        "deadline": Opt(Num(lo=0, nonfinite=False)),
        "not_run": Opt(List(_TEXT)),
        "pool": Opt(Map(Json())),
        "summarised": Opt(Int()),
    },
    required=frozenset({"format_version"}),
    extra=Json(),
)

RESULTS = Obj(
    {
        "meta": _META,
        "records": List(_RECORD),
        "totals": Map(Int(0)),
        "failure_classes": List(Map(Json())),
        "findings": List(Map(Json())),
        "cross_mode": List(Map(Json())),
    },
    required=frozenset({"meta", "records"}),
    extra=Json(),
)


def _check_results(data: Any) -> None:
    """``data`` against RESULTS, the format version first (a newer layout is said as such), then what the
    schema cannot say: ids unique, and each record's options, training and config as their decoders read them
    (a record with its inputs, one that did not pass: its whole case, which compare --out reproduces)."""
    if not isinstance(data, dict) or not isinstance(data.get("meta"), dict) or not isinstance(data.get("records"), list):
        raise UsageError("not a results.json (no meta and records)")
    version = data["meta"].get("format_version")
    if type(version) is not int or version < MIN_FORMAT:
        raise UsageError(f"format_version={short(version)}; compare needs {MIN_FORMAT} or later (run it again)")
    if version > MAX_FORMAT:
        raise UsageError(f"format_version={short(version)} is newer than this bce-harness reads ({MAX_FORMAT}); update it")
    RESULTS.check(data, "")
    seen: set[str] = set()
    for i, r in enumerate(data["records"]):
        where = f"records[{i}]"
        if r["id"] in seen:
            raise UsageError(f"{where}.id={short(r['id'])} appears twice")
        seen.add(r["id"])
        check_record(r, where, schema=False)


def check_record(r: Any, where: str, *, schema: bool = True) -> None:
    """One record as ``_check_results`` reads it (``schema``: against _RECORD too, as RESULTS checks the records of
    a whole file): its options, training and config as their decoders read them, or, with its inputs, its case."""
    if schema:
        _RECORD.check(r, where)
    try:
        if "y_true" in r or "y_pred" in r:  # a record with its inputs: its case, as report.issue rebuilds it
            if "pred_dtype" not in r and "input_dtype" not in r:
                raise UsageError("field 'pred_dtype' is missing")
            Case.from_dict({**r, "pred_dtype": r.get("pred_dtype", r.get("input_dtype"))})
            return
        for key, decode in (("options", Options.from_dict), ("training", TrainingSpec.from_dict), ("config", Config.from_dict)):
            if r.get(key) is not None:
                decode(r[key])
    except UsageError as exc:
        raise UsageError(f"{where} (id {short(r['id'])}): {exc}") from None


@dataclass(frozen=True)
class Change:
    """One case that differs between BASE and NEW.  ``before``/``after`` are the two records."""

    id: str
    group: str
    what: str  # new divergence / fixed: the statuses; drift: raised, exception, dtype, shape, nan_inf, value
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    moved: int = 0  # elements that moved beyond the tolerance
    total: int = 0
    max_abs: float | None = None
    max_ulp: int | None = None
    rows: tuple[tuple[str, float, float, float], ...] = ()  # (index, before, after, tolerance)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "group": self.group,
            "what": self.what,
            "before": _side(self.before),
            "after": _side(self.after),
            "moved": self.moved,
            "total": self.total,
            "max_abs": encode_number(self.max_abs),
            "max_ulp": self.max_ulp,
            "rows": [[r[0], *(encode_number(x) for x in r[1:])] for r in self.rows],
        }


@dataclass(frozen=True)
class Drift:
    """The comparison of two runs."""

    base: Mapping[str, Any]  # meta of each side
    new: Mapping[str, Any]
    exact: bool
    new_divergences: tuple[Change, ...] = ()
    unexplained: tuple[Change, ...] = ()
    fixed: tuple[Change, ...] = ()
    drift: tuple[Change, ...] = ()
    behaviour: tuple[Change, ...] = ()
    only_base: tuple[str, ...] = ()
    only_new: tuple[str, ...] = ()
    compared: int = 0
    groups: Mapping[str, int] = field(default_factory=dict)  # cases compared per option family

    @property
    def regressed(self) -> bool:
        return bool(self.new_divergences or self.unexplained)

    def as_dict(self) -> dict[str, Any]:
        return {
            "base": _version_line(self.base),
            "new": _version_line(self.new),
            "exact": self.exact,
            "compared": self.compared,
            "regressed": self.regressed,
            "new_divergences": [c.as_dict() for c in self.new_divergences],
            "unexplained": [c.as_dict() for c in self.unexplained],
            "fixed": [{**c.as_dict(), "registry_edit": registry_edit(c, self)} for c in self.fixed],
            "behaviour": [c.as_dict() for c in self.behaviour],
            "drift": [c.as_dict() for c in self.drift],
            "changed": changed_packages(self.base, self.new),
            "only_base": list(self.only_base),
            "only_new": list(self.only_new),
        }


def _side(r: Mapping[str, Any]) -> dict[str, Any]:
    return {k: r.get(k) for k in ("status", "kind", "divergence", "actual", "actual_dtype", "actual_error", "bound", "digest", "preview")}


# DRIFT_VERSION history (drift.json, what ``compare --out`` writes: write_drift, read back by read_drift):
#   0 - no version field: Drift.as_dict() as it was (read still, where it fits DRIFT).
#   1 - ``format_version`` first, then Drift.as_dict(): base, new, exact, compared, regressed, the five lists of
#       changes (each fix with its registry_edit), changed, only_base, only_new.
DRIFT_VERSION = 1

_SIDE = Obj(
    {"status": Opt(Str(choices=STATUSES)), "kind": Opt(_TEXT), "divergence": Opt(_TEXT), "actual": Opt(Array()),
     "actual_dtype": Opt(_TEXT), "actual_error": Opt(_TEXT), "bound": Opt(Array()), "digest": Opt(_TEXT),
     "preview": Opt(List(Num(), 1000))},
    extra=Json(),
)  # fmt: skip
_CHANGE = Obj(
    {"id": _TEXT, "group": _TEXT, "what": _TEXT, "before": _SIDE, "after": _SIDE, "moved": Int(0), "total": Int(0),
     "max_abs": Opt(Num()), "max_ulp": Opt(Int(0, 2**64)), "rows": List(List(Scalar(), 4), _ROWS), "registry_edit": _TEXT},
    required=frozenset({"id", "group", "what", "before", "after"}),
    extra=Json(),
)  # fmt: skip
# drift.json as write_drift writes it (Drift.as_dict); a field of another version is kept, not read.
DRIFT = Obj(
    {
        "format_version": Int(0, DRIFT_VERSION),
        "base": _TEXT,
        "new": _TEXT,
        "exact": Bool(),
        "compared": Int(0),
        "regressed": Bool(),
        **{key: List(_CHANGE) for key in ("new_divergences", "unexplained", "fixed", "behaviour", "drift")},
        "changed": List(List(Scalar(), 3)),
        "only_base": List(_TEXT),
        "only_new": List(_TEXT),
    },
    required=frozenset({"base", "new", "exact", "compared", "regressed", "new_divergences", "unexplained", "fixed", "drift"}),
    extra=Json(),
)


def write_drift(drift: Drift, path: str | Path) -> Path:
    """drift.json at ``path``: ``format_version`` (DRIFT_VERSION), then ``drift.as_dict()``; read_drift reads it."""
    return atomic_write_text(path, dumps({"format_version": DRIFT_VERSION, **drift.as_dict()}))


def read_drift(path: str | Path) -> dict[str, Any]:
    """The drift.json at ``path`` (or the one in a folder), as write_drift wrote it, checked against DRIFT (its
    version first: a newer one is refused as such; a file without one is version 0); InputError names the
    file, the field and the value."""
    path = Path(path)
    if path.is_dir():
        path = path / "drift.json"

    def check(data: Any) -> None:
        format_version(data, DRIFT_VERSION)
        DRIFT.check(data, "")

    return read_json(path, "drift.json (bce-harness compare --out)", check=check)


def changed_packages(base: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """The packages whose version differs between the two runs' meta, as (name, BASE's, NEW's): TensorFlow,
    Keras (the package behind tf.keras) and the Keras backend of a run under another one."""
    out = [(name, base.get(key), new.get(key)) for name, key in (("TensorFlow", "tensorflow"), ("Keras", "keras"))]
    bb, nb = base.get("backend"), new.get("backend")
    if isinstance(bb, Mapping) and isinstance(nb, Mapping) and (bb.get("name"), bb.get("version")) != (nb.get("name"), nb.get("version")):
        out.append(("backend", f"{bb.get('name')} {bb.get('version')}", f"{nb.get('name')} {nb.get('version')}"))
    return [c for c in out if c[1] != c[2]]


def changed_text(base: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """"Keras 3.15.1 -> 3.16.0.dev..." for what changed between the runs, or "no package version changed"."""
    moved = changed_packages(base, new)
    if not moved:
        return "no package version changed"
    return ", ".join(f"{name} {b} -> {a}" for name, b, a in moved)


@functools.cache
def _shipped_entries() -> dict[str, Any]:
    """The shipped registry's entries by id, read once (every fix of a compare asks), or none if unreadable."""
    from harness.judge.registry import load_registry

    try:
        return {e.id: e for e in load_registry().entries}
    except Exception:  # noqa: BLE001 - without the registry the edit is only suggested
        return {}


def registry_edit(change: Change, drift: Drift) -> str:
    """What a fix asks of the registry: a registered divergence that no longer reproduces gets a fixed-in
    bound on the package that changed (the first version where it holds, NEW's); a failure that now holds
    needs no edit."""
    entry = change.before.get("divergence")
    if change.before.get("status") != "xfail" or not entry:
        return "none: an unregistered failure that now holds"
    known = _shipped_entries().get(entry)
    try:
        bounded_off = known is not None and not known.holds_for(drift.new.get("tensorflow"), drift.new.get("keras"))
    except UsageError:  # a version from the file that is not PEP 440: nothing to say of the bounds
        bounded_off = False
    if bounded_off:
        assert known is not None
        return f"none: entry {entry!r} is already bounded off NEW's versions (versions={known.versions!r}, keras={known.keras!r})"
    bounds = []
    for name, _, after in changed_packages(drift.base, drift.new):
        key = {"TensorFlow": "versions", "Keras": "keras"}.get(name)
        if key is not None and after is not None:
            bounds.append(f'{key} = "<{after}"')
    if not bounds:
        return f"entry {entry!r} no longer reproduces with no version change: narrow its match"
    return f"bound entry {entry!r} with its fixed-in version: {' and '.join(bounds)} (keep any lower bound it has)"


def _version_line(m: Mapping[str, Any]) -> str:
    backend = m.get("backend")
    if isinstance(backend, dict) and backend.get("name") not in (None, "tensorflow"):
        # a run under another Keras backend (run --backend): the side is labelled by it, not by TensorFlow
        return f"Keras {m.get('keras')} on {backend['name']} {backend.get('version')}, profile {m.get('profile')}"
    return f"TensorFlow {m.get('tensorflow')}, Keras {m.get('keras')}, profile {m.get('profile')}"


def compare_results(base: Mapping[str, Any], new: Mapping[str, Any], *, exact: bool = False) -> Drift:
    """What changed from ``base`` to ``new`` (two loaded results files of the same suite and seed)."""
    check_pair(base["meta"], new["meta"], exact)
    before = {r["id"]: r for r in base["records"]}
    after = {r["id"]: r for r in new["records"]}
    common = [i for i in after if i in before]
    tally = Tally(exact)
    for cid in common:
        b, a = before[cid], after[cid]
        group = group_of(a)
        tally.groups[group] += 1
        tally.pair(cid, group, b, a)
    return tally.drift(
        base["meta"], new["meta"], tuple(i for i in before if i not in after), tuple(i for i in after if i not in before), len(common)
    )


def check_pair(bm: Mapping[str, Any], nm: Mapping[str, Any], exact: bool) -> None:
    """The two runs' metas can be compared (one seed), ``exact`` is a bool: what every compare checks first."""
    if not isinstance(exact, bool):
        raise UsageError(f"exact={exact!r} is not a bool")
    if bm.get("seed") != nm.get("seed"):
        raise InputError(f"{bm.get('source')} and {nm.get('source')} were run with different seeds ({bm.get('seed')} and {nm.get('seed')})")


class Tally:
    """The changes of two runs, one pair of records at a time, in the order the pairs come: the one
    classification both readers feed (``compare_results`` from two results.json, report/columns.py from two
    results.parquet, which hands it only the pairs whose comparable facts differ)."""

    def __init__(self, exact: bool) -> None:
        self.exact = exact
        self.new_div: list[Change] = []
        self.unexplained: list[Change] = []
        self.fixed: list[Change] = []
        self.drifted: list[Change] = []
        self.behaviour: list[Change] = []
        self.groups: dict[str, int] = defaultdict(int)  # the caller counts every pair compared

    def pair(self, cid: str, group: str, b: Mapping[str, Any], a: Mapping[str, Any]) -> None:
        """Classify one case's two records (BASE's ``b``, NEW's ``a``)."""
        if b["status"] in NO_VERDICT or a["status"] in NO_VERDICT:
            # no verdict on one side: what moved is behaviour, never a regression or a fix
            changed = _behaviour(cid, group, b, a)
            if changed is not None:
                self.behaviour.append(changed)
            return
        status = Change(cid, group, f"{b['status']} -> {a['status']}", b, a)
        if b["status"] in _OK and a["status"] in ("fail", "xfail", "error"):
            self.new_div.append(_measured(status))
        elif b["status"] == "xfail" and a["status"] in ("fail", "error"):
            self.unexplained.append(_measured(status))
        elif b["status"] not in _OK and a["status"] in _OK:
            self.fixed.append(_measured(status))
        moved = _moved(cid, group, b, a, self.exact)
        if moved is not None and moved.what in ("exception", "message"):
            self.behaviour.append(moved)  # both raised: only the exception's type or text moved
        elif moved is not None and b["status"] == a["status"]:  # (a status change is classified above)
            self.drifted.append(moved)

    def drift(
        self, bm: Mapping[str, Any], nm: Mapping[str, Any], only_base: tuple[str, ...], only_new: tuple[str, ...], compared: int
    ) -> Drift:
        return Drift(
            base=bm,
            new=nm,
            exact=self.exact,
            new_divergences=tuple(self.new_div),
            unexplained=tuple(self.unexplained),
            fixed=tuple(self.fixed),
            drift=tuple(self.drifted),
            behaviour=tuple(self.behaviour),
            only_base=only_base,
            only_new=only_new,
            compared=compared,
            groups=dict(self.groups),
        )


def _behaviour(cid: str, group: str, b: Mapping[str, Any], a: Mapping[str, Any]) -> Change | None:
    """The change of a case with no verdict on one side at least (``NO_VERDICT``), or None: its status, its
    raise, its exception or message, its dtype, shape or value (by digest) -- whatever moved, named."""
    if b["status"] == a["status"] == "unsupported":  # not run on either side: nothing moved
        return None
    be, ae = b.get("actual_error"), a.get("actual_error")
    moved = []
    if b["status"] != a["status"]:
        moved.append(f"{b['status']} -> {a['status']}")
    if (be is None) != (ae is None):
        moved.append("now raises" if ae is not None else "now returns a value")
    elif be is not None and _message(be) != _message(ae):
        moved.append("exception" if _exception_class(be) != _exception_class(ae) else "message")
    elif be is None:
        if b.get("actual_dtype") != a.get("actual_dtype"):
            moved.append("dtype")
        elif _digest_of(b, f"{cid}: BASE actual") != _digest_of(a, f"{cid}: NEW actual"):
            moved.append("value")
    return Change(cid, group, ", ".join(moved), b, a) if moved else None


def _measured(change: Change) -> Change:
    """A status change with how far TensorFlow's value moved, when both sides have one of one shape."""
    b, a = change.before, change.after
    if b.get("actual_error") is not None or a.get("actual_error") is not None:
        return change
    bv, av = _array(b.get("actual"), f"{change.id}: BASE actual"), _array(a.get("actual"), f"{change.id}: NEW actual")
    if bv is None or av is None or bv.shape != av.shape:
        return change
    return _with_values(change, bv, av, None)


def _array(x: Any, name: str) -> np.ndarray | None:
    return None if x is None else np.asarray(decode_array(x, name), dtype=np.float64)


def _exception_class(error: str) -> str:
    return error.split(":", 1)[0]


def _message(error: str) -> str:
    """An exception's first line with the members of every {...} set sorted: Keras prints the allowed values
    of an argument from a Python set, whose order differs from process to process."""
    head = error.splitlines()[0] if error else ""
    return re.sub(r"\{([^{}]*)\}", lambda m: "{" + ", ".join(sorted(x.strip() for x in m.group(1).split(","))) + "}", head)


def _moved(cid: str, group: str, b: Mapping[str, Any], a: Mapping[str, Any], exact: bool) -> Change | None:
    """The drift of one case's output, or None when it did not move (beyond the tolerance)."""
    be, ae = b.get("actual_error"), a.get("actual_error")
    if be is not None or ae is not None:
        if be is None or ae is None:
            return Change(cid, group, "raised", b, a)
        if _exception_class(be) != _exception_class(ae):
            return Change(cid, group, "exception", b, a)
        if _message(be) != _message(ae):
            return Change(cid, group, "message", b, a)
        return None
    if any("digest" in r and r.get("actual") is None for r in (b, a)):  # a passing record of format 6: a summary
        return _moved_summary(cid, group, b, a, exact)
    bv, av = _array(b.get("actual"), f"{cid}: BASE actual"), _array(a.get("actual"), f"{cid}: NEW actual")
    if bv is None or av is None:  # a harness error on one side: nothing to measure
        return None
    if b.get("actual_dtype") != a.get("actual_dtype"):
        return _with_values(Change(cid, group, "dtype", b, a), bv, av, None)
    if bv.shape != av.shape:
        return Change(cid, group, "shape", b, a, total=int(av.size))
    nan_moved = np.isnan(bv) != np.isnan(av)
    inf_moved = (np.isposinf(bv) != np.isposinf(av)) | (np.isneginf(bv) != np.isneginf(av))
    if (nan_moved | inf_moved).any():
        return _with_values(Change(cid, group, "nan_inf", b, a), bv, av, nan_moved | inf_moved)
    tol = np.zeros(av.shape)
    if not exact:
        for side in (b, a):
            bound = _array(side.get("bound"), f"{cid}: bound")
            if bound is not None and bound.shape in ((), av.shape):
                tol = np.maximum(tol, np.broadcast_to(bound, av.shape))
    finite = np.isfinite(bv) & np.isfinite(av)
    with np.errstate(invalid="ignore"):
        diff = np.where(finite, np.abs(av - bv), 0.0)
    over = finite & (diff > tol)
    if not over.any():
        return None
    return _with_values(Change(cid, group, "value", b, a), bv, av, over, tol)


def output_digest(value: Any, dtype: str | None) -> str:
    """A short hash of an output as compare --exact sees it: its dtype, shape and values as float64, with
    -0 read as +0 and every NaN as one NaN (compare treats both pairs as equal)."""
    a = np.asarray(value, dtype=np.float64) + 0.0
    a = np.where(np.isnan(a), np.nan, a)
    h = hashlib.sha256(f"{dtype}|{list(a.shape)}|".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:32]


def _digest_of(r: Mapping[str, Any], name: str) -> str | None:
    value = _array(r.get("actual"), name)
    return r.get("digest") if value is None else output_digest(value, r.get("actual_dtype"))


def _moved_summary(cid: str, group: str, b: Mapping[str, Any], a: Mapping[str, Any], exact: bool) -> Change | None:
    """Drift where one side (at least) is a passing summary (format 6), which keeps the output's digest and
    shape, not its values.  A changed dtype or shape is drift; with ``exact`` so is any other change of the
    digest.  Without ``exact`` a changed value is drift only beyond the error bounds, and a passing record's
    value lies within its bound of the same reference, so two passing records never drift there, and a
    passing record against one that did not pass is a status change, reported as such."""
    if b.get("actual_dtype") != a.get("actual_dtype"):
        return Change(cid, group, "dtype", b, a)
    bs = b.get("actual_shape") if b.get("actual") is None else list(_array(b["actual"], f"{cid}: BASE actual").shape)
    as_ = a.get("actual_shape") if a.get("actual") is None else list(_array(a["actual"], f"{cid}: NEW actual").shape)
    if bs is not None and as_ is not None and bs != as_:
        return Change(cid, group, "shape", b, a)
    bd, ad = _digest_of(b, f"{cid}: BASE actual"), _digest_of(a, f"{cid}: NEW actual")
    if exact and bd is not None and ad is not None and bd != ad:
        return Change(cid, group, "value", b, a)
    return None


def _with_values(
    change: Change, bv: np.ndarray, av: np.ndarray, where: np.ndarray | None, tol: np.ndarray | None = None
) -> Change:
    """The change with its moved count, largest differences and up to three before/after rows."""
    same_shape = bv.shape == av.shape
    if where is None:
        where = np.ones(av.shape, dtype=bool) if same_shape else np.zeros(av.shape, dtype=bool)
    finite = np.isfinite(bv) & np.isfinite(av) if same_shape else np.zeros(av.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        diff = np.where(finite, np.abs(av - bv), 0.0) if same_shape else np.zeros(av.shape)
    # ULPs of the coarser of the two dtypes: a move from float16 to float32 is counted in float16 steps
    dtypes = [t for t in (change.before.get("actual_dtype"), change.after.get("actual_dtype")) if t in FLOAT_DTYPES]
    dtype = min(dtypes, key=lambda t: float_format(t).mant_bits) if dtypes else "float64"
    ulps = ulp_distance(av, bv, dtype) if same_shape else np.zeros(av.shape, int)
    ulps = np.where(finite, ulps, 0)
    rows = []
    for flat in np.flatnonzero(np.ravel(where))[:_ROWS]:
        i = np.unravel_index(flat, av.shape) if av.shape else ()
        t = float(np.broadcast_to(tol, av.shape)[i]) if tol is not None else 0.0
        rows.append((str(tuple(int(k) for k in i)), float(bv[i]), float(av[i]), t))
    return Change(
        change.id,
        change.group,
        change.what,
        change.before,
        change.after,
        moved=int(np.count_nonzero(where)),
        total=int(av.size),
        max_abs=float(diff.max()) if diff.size else 0.0,
        max_ulp=int(ulps.max()) if ulps.size else 0,
        rows=tuple(rows),
    )


def _outcome_text(r: Mapping[str, Any], limit: int = 4) -> str:
    if r.get("actual_error"):
        return term(r["actual_error"], 100)
    value = _array(r.get("actual"), "actual")
    if value is None and r.get("preview") is not None:  # a summarised record: its first values and shape
        shape = r.get("actual_shape")
        values = ", ".join(f"{decode_number(v, 'preview'):.9g}" for v in r["preview"])
        more = ", ..." if shape and int(np.prod(shape)) > len(r["preview"]) else ""
        return f"[{values}{more}] shape {term(shape)} {term(r.get('actual_dtype'))} ({term(r.get('status'))})"
    if value is None:
        return f"(no value kept: {term(r.get('status'))})"
    flat = [f"{v:.9g}" for v in value.ravel()[:limit]]
    more = ", ..." if value.size > limit else ""
    return f"{'[' + ', '.join(flat) + more + ']' if value.ndim else flat[0]} shape {list(value.shape)} {term(r.get('actual_dtype'))}"


def _change_lines(c: Change) -> list[str]:
    head = f"  {term(c.id)}: {c.what}"
    if c.total and c.what in ("value", "nan_inf", "dtype"):
        head += f", {c.moved}/{c.total} elements, max |diff| {c.max_abs:.3g}, max {c.max_ulp} ULP"
    lines = [head]
    if c.rows:
        for index, bv, av, tol in c.rows:
            lines.append(f"      {index}: {bv:.9g} -> {av:.9g}" + (f" (tolerance {tol:.3g})" if tol else ""))
    else:
        lines.append(f"      before: {_outcome_text(c.before)}")
        lines.append(f"      after:  {_outcome_text(c.after)}")
    if c.what.endswith(("fail", "xfail", "error")) and c.after.get("kind"):
        lines[0] += f" [{term(c.after['kind'])}{', ' + term(c.after['divergence']) if c.after.get('divergence') else ''}]"
    return lines


def _section(title: str, changes: tuple[Change, ...], max_rows: int) -> list[str]:
    lines = [f"{title}: {len(changes)}"]
    by_group: dict[str, list[Change]] = defaultdict(list)
    for c in changes:
        by_group[c.group].append(c)
    for group in sorted(by_group):
        items = by_group[group]
        kinds = defaultdict(int)
        for c in items:
            kinds[c.what] += 1
        lines.append(f"  {term(group)}: {len(items)} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})")
        for c in items[:max_rows]:
            lines += ["  " + line for line in _change_lines(c)]
        if len(items) > max_rows:
            lines.append(f"      ... {len(items) - max_rows} more in {term(group)}")
    return lines


def coverage_text(d: Drift, shown: int = 3) -> str:
    """Which cases only one run has, in one line: the counts and the first few ids of each side."""

    def side(ids: tuple[str, ...], name: str) -> str:
        more = f", ... {len(ids) - shown} more" if len(ids) > shown else ""
        return f"{len(ids)} cases only in {name}" + (f" ({', '.join(term(repr(i), 100) for i in ids[:shown])}{more})" if ids else "")

    return (
        f"BASE {d.base.get('source')} and NEW {d.new.get('source')} cover different cases: "
        f"{side(d.only_base, 'BASE')}, {side(d.only_new, 'NEW')}"
    )


def render_text(d: Drift, *, max_rows: int = 5) -> str:
    """The terminal report: both versions, then each list grouped by option family."""
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise UsageError(f"max_rows={max_rows!r} is not a positive integer")
    tolerance = "any change (--exact)" if d.exact else "the larger of the two error bounds"
    lines = [
        f"BASE: {term(_version_line(d.base))} ({term(d.base.get('source'))})",
        f"NEW:  {term(_version_line(d.new))} ({term(d.new.get('source'))})",
        f"changed: {term(changed_text(d.base, d.new))}",
        f"{d.compared} cases compared; value drift is a move beyond {tolerance}",
    ]
    if d.only_base or d.only_new:
        lines.append(f"not compared: {coverage_text(d)}")
    lines.append("")
    lines += _section("regressions: new divergences (held in BASE, not in NEW)", d.new_divergences, max_rows)
    lines += [""] + _section("regressions: unexplained (a known divergence in BASE, an unexpected failure in NEW)", d.unexplained, max_rows)
    lines += [""] + _section("fixes (did not hold in BASE, hold in NEW)", d.fixed, max_rows)
    edits = sorted({registry_edit(c, d) for c in d.fixed if c.before.get("status") == "xfail"})
    lines += [f"  registry: {term(e)}" for e in edits]
    lines += [""] + _section("behaviour changes (no verdict: outside the documented domain, not expressible, or only the exception moved)", d.behaviour, max_rows)
    lines += [""] + _section("value drift (TensorFlow's output moved)", d.drift, max_rows)
    lines += ["", "NEW regressed" if d.regressed else "no regression"]
    return "\n".join(lines)
