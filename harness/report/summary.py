"""Reports: ``results.json`` (versioned schema), ``results.parquet`` (the same records as columns,
report/columns.py), ``report.md`` (for people) and the terminal summary.

Every file is written atomically (jsonio.atomic_write_text).  The JSON layout:

    {"meta": {...}, "records": [...], "totals": {...}}

``meta`` holds what is needed to trust or repeat a run: format and harness versions, UTC time, seed,
profile, Python/NumPy/TensorFlow/Keras versions, platform, and the environment flags that change numerics.
Each record carries id, api, options, dtypes, shape, status, kind and the largest differences; a record
that did not pass also carries its inputs, the expected and actual values, the bound and a reproduction,
with NaN and infinities encoded losslessly ("nan", "inf", "-inf").
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import platform
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from harness import __version__
from harness.jsonio import atomic_write_text, dumps, encode_array, encode_number
from harness.report.columns import COLUMNS_NAME, ColumnWriter
from harness.report.crossmode import cross_mode_divergences
from harness.report.drift import output_digest
from harness.report.html import write_html
from harness.report.inert import MD_CAP, cut, md_code, term
from harness.report.junit import write_junit
from harness.report.literal import fence, py
from harness.report.repro import snippet
from harness.run.runner import NO_VERDICT, Record, RunResult, iter_failures
from harness.run.stream import write_provenance

__all__ = ["FORMAT_VERSION", "build_results", "render_markdown", "summary_rows", "summary_table", "write_reports"]

# FORMAT_VERSION history:
#   1 - first schema: meta / records / totals; non-passing records carry inputs, expected, actual, bound.
#   2 - every record carries its outcome (actual, actual_dtype, actual_error), expected_dtype and bound,
#       so two runs can be compared value by value (bce-harness compare); compute_dtype is the profile's
#       (Keras 2 computes in y_pred's dtype); meta has cpu_flags.
#   3 - every record carries its path facets (mode, producer, grad) and a record that did not pass its mask,
#       so a record rebuilds as the case it was (report.issue's reproductions exercise the path that broke).
#   4 - a training-loop or replica record carries its ``training`` spec (route, batch size, strategy, ...).
#   5 - every record carries the Keras configuration its case set (config: policy, loss_policy, epsilon,
#       floatx, traced_before; null for none) and its ragged row lengths (row_lengths; null for dense);
#       meta.target has keras_epsilon and keras_floatx, the settings the worker's Keras had.
#   6 - a passing record is a summary: no actual or bound arrays, but ``digest`` (output_digest: the output's
#       dtype, shape and value bytes) and ``actual_shape``, so a million records stay small and ``compare
#       --exact`` still sees any change; records that did not pass keep every array (records.jsonl keeps
#       all of them, packed).  ``meta.summarised`` counts the passing records of a large run written from
#       disk (report/bulk.py) rather than held in memory.
#   7 - y_pred's dtype is ``pred_dtype``, the case's own name for it (formats 2 to 6 wrote ``input_dtype``;
#       drift.load_results reads both as pred_dtype).
FORMAT_VERSION = 7

_XFAIL_REPROS_PER_ENTRY = 3
_FAIL_REPROS = 100


def meta(
    *, seed: int | None, profile: str, versions: dict[str, Any], env: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    """The ``meta`` block; ``seed`` is None for a run that draws nothing (``replay``)."""
    return {
        "format_version": FORMAT_VERSION,
        "harness_version": __version__,
        "created_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": seed,
        "profile": profile,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": versions.get("tensorflow"),
        "keras": versions.get("keras"),
        "target": versions,
        "platform": platform.platform(),
        "cpu_flags": cpu_flags(),
        "environment": env,
        **extra,
    }


# The CPU features that decide which kernels (and so which roundings) TensorFlow's CPU ops use.
_NUMERIC_CPU_FLAGS = re.compile(r"^(sse\d.*|ssse3|avx.*|fma\d?|f16c|amx.*|neon|asimd.*|sve.*)$")


def cpu_flags() -> list[str]:
    """The numerics-relevant flags of /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return sorted(f for f in value.split() if _NUMERIC_CPU_FLAGS.match(f))
    return []


_PREVIEW = 4  # values of a summarised record's output kept beside its digest


def record_dict(r: Record) -> dict[str, Any]:
    c = r.case
    d: dict[str, Any] = {
        "id": c.id,
        "api": c.api,
        "options": c.options.as_dict(),
        "pred_dtype": c.pred_dtype,
        "true_dtype": c.true_dtype,
        "compute_dtype": c.compute_dtype if r.expected is None or r.expected.dtype is None else r.expected.dtype,
        "shape": list(c.y_pred.shape),
        "true_shape": list(c.y_true.shape),
        "tags": dict(c.tags),
        # the path facets (format 3): which entry point, mode, producer and gradient the record exercised
        "mode": c.mode,
        "producer": c.producer,
        "grad": c.grad,
        "training": None if c.training is None else c.training.as_dict(),
        "config": None if c.config is None else c.config.as_dict(),
        "row_lengths": None if c.row_lengths is None else list(c.row_lengths),
        "status": r.status,
        "kind": r.comparison.kind,
        "max_abs": encode_number(r.comparison.max_abs),
        "max_rel": encode_number(r.comparison.max_rel),
        "max_ulp": r.comparison.max_ulp,
    }
    e, o = r.expected, r.outcome
    d["actual_dtype"] = None if o is None else o.dtype
    d["actual_error"] = None if o is None else o.error
    d["expected_dtype"] = None if e is None else e.dtype
    if r.status in ("pass", *NO_VERDICT):  # a summary (format 6): the digest stands for the output in compare --exact
        d["digest"] = None if o is None or o.value is None else output_digest(o.value, o.dtype)
        d["actual_shape"] = None if o is None or o.value is None else list(np.shape(o.value))
        # the first values, so a report on this record can show what it returned (never a raise: that is
        # actual_error)
        d["preview"] = None if o is None or o.value is None else [encode_number(float(v)) for v in np.ravel(o.value)[:_PREVIEW]]
    else:  # the outcome and bound (format 2): compare measures drift between two runs with them
        d["actual"] = None if o is None or o.value is None else encode_array(o.value)
        d["bound"] = None if e is None or e.bound is None else encode_array(np.asarray(e.bound, dtype=np.float64))
    if r.divergence is not None:
        d["divergence"] = r.divergence.id
    if r.note:
        d["note"] = r.note
    if r.evidence is not None:
        d["evidence"] = dict(r.evidence)
        d["inferred"] = bool(r.evidence.get("inferred"))
    if r.status in NO_VERDICT:
        d["message"] = r.comparison.message
    elif r.status != "pass":
        d["message"] = r.comparison.message
        d["y_true"] = encode_array(c.y_true)
        d["y_pred"] = encode_array(c.y_pred)
        d["sample_weight"] = encode_array(c.sample_weight)
        d["weight_dtype"] = c.weight_dtype
        d["mask"] = encode_array(c.mask)
        d["expected"] = None if e is None or e.value is None else encode_array(np.asarray(e.value, dtype=np.float64))
        d["expected_error"] = None if e is None else e.raises
    return d


def failure_classes(records: Iterable[Record]) -> list[dict[str, Any]]:
    """The crashes and hangs of a run grouped by class (quarantine.py): one entry per class, with its count,
    the ids seen to fail and the ids inferred, largest first; a crash or hang without a class is its own."""
    groups: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.comparison.kind not in ("crash", "timeout"):
            continue
        ev = r.evidence or {}
        key = ev.get("class") or f"{r.comparison.kind}: {r.case.id}"
        g = groups.setdefault(
            key,
            {"class": key, "kind": r.comparison.kind, "cause": ev.get("cause", ""), "signature": None,
             "count": 0, "confirmed": [], "inferred": []},
        )  # fmt: skip
        g["count"] += 1
        g["inferred" if ev.get("inferred") else "confirmed"].append(r.case.id)
        sig = ev.get("signature")
        if isinstance(sig, dict):  # the class only ever drops facets: what every record's shares is its last
            old = g["signature"]
            g["signature"] = dict(sig) if old is None else {k: v for k, v in old.items() if sig.get(k) == v}
    return sorted(groups.values(), key=lambda g: (-g["count"], g["class"]))


def build_results(result: RunResult, run_meta: dict[str, Any], bulk: Any = None) -> dict[str, Any]:
    """The results.json document; with ``bulk`` (report/bulk.py) its records are the kept ones only (the
    summarised passes are streamed in by ``write_reports``) and its totals count both."""
    return {
        "meta": {
            **run_meta,
            "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
            "interrupted": result.interrupted,
            "deadline": result.deadline,
            "not_run": list(result.not_run),
            "pool": dict(result.pool),
            **({} if bulk is None else {"summarised": bulk.summarised}),
        },
        "failure_classes": failure_classes(result.records),
        "findings": [dict(f) for f in result.findings],
        "records": [record_dict(r) for r in result.records],
        "totals": totals(result, bulk),
        "cross_mode": [c.as_dict() for c in cross_mode_divergences(result.records)],
    }


def totals(result: RunResult, bulk: Any = None) -> dict[str, int]:
    """Status counts of the run: its records, and with ``bulk`` the passes summarised on disk too."""
    t = result.totals()
    if bulk is not None:
        for status, n in bulk.statuses.items():
            t[status] += n
        t["total"] += bulk.summarised
    return t


_BULK = "\0bulk records\0"


def _write_results(path: Path, results: dict[str, Any], bulk: Any) -> Path:
    """results.json with the bulk's summarised passes streamed in after the kept records, written to a
    temporary file and renamed (atomic, like jsonio.atomic_write_text) without the whole text in memory."""
    if bulk is None or not bulk.summarised:
        return atomic_write_text(path, dumps(results))
    head, tail = dumps({**results, "records": [*results["records"], _BULK]}).split(json.dumps(_BULK))
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(head)
        for i, line in enumerate(bulk.lines()):
            f.write(line if i == 0 else ",\n  " + line)
        f.write(tail)
    tmp.replace(path)
    return path


def _group(r: Record) -> tuple[str, str]:
    kind = "logits" if r.case.options.from_logits else "probs"
    family = r.case.tags.get("family", "?")
    # a record of another Keras backend (run --backend) is grouped under it: records of two backends never mix
    backend = r.case.tags.get("backend")
    on = "" if backend is None else f"{backend}: "
    if family == "paths":  # the entry point and mode are what distinguishes these
        return f"{on}paths/{r.case.api}/{r.case.mode}" + ("/grad" if r.case.grad else ""), r.case.compute_dtype
    return f"{on}{family}/{kind}", r.case.compute_dtype


def summary_rows(records: Iterable[Record], bulk: Any = None) -> list[dict[str, Any]]:
    """Per option family and compute dtype: status counts and the worst ULP difference among the passes.

    The worst ULP of the passing records is how closely TensorFlow agrees where it agrees; the records
    that did not pass have their own messages.  Large values there are legitimate where the bound is
    absolute, e.g. log(1 - p) for p near 0 is accurate to u absolutely, not relatively.
    """
    groups: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"pass": 0, "fail": 0, "xfail": 0, "xpass": 0, "error": 0, "outside": 0, "unsupported": 0, "worst_ulp": 0}
    )
    for r in records:
        g = groups[_group(r)]
        g[r.status] += 1
        if r.status == "pass" and r.comparison.max_ulp is not None:
            g["worst_ulp"] = max(g["worst_ulp"], r.comparison.max_ulp)
    for key, counts in ({} if bulk is None else bulk.rows).items():  # the passes a large run summarised
        g = groups[key]
        for status in ("pass", "xfail", *NO_VERDICT):
            g[status] += counts.get(status, 0)
        g["worst_ulp"] = max(g["worst_ulp"], counts["worst_ulp"])
    return [{"family": f, "dtype": d, **v} for (f, d), v in sorted(groups.items())]


def summary_table(records: Iterable[Record], bulk: Any = None) -> str:
    rows = summary_rows(records, bulk)
    head = ("family", "dtype", "pass", "fail", "xfail", "xpass", "error", "outside", "unsupp", "worst ULP of passes")
    body = [
        (term(r["family"]), term(r["dtype"]), r["pass"], r["fail"], r["xfail"], r["xpass"], r["error"], r["outside"], r["unsupported"], r["worst_ulp"])
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in body]
    return "\n".join(lines)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:120]


def _actual_text(r: Record) -> str:
    o = r.outcome
    if o is None:
        return ""
    if o.error is not None:
        return o.error
    return f"{np.asarray(o.value).tolist()} ({o.dtype})"


def _repro(r: Record, loss_factory: str | None = None, *, cap: int | None = None) -> str:
    """The reproduction of ``r``; with ``cap`` (report.md's copy) its id cut to ``cap`` characters and the
    texts to ten times that, so a value of megabytes from a shard is not pasted whole into the report."""
    if r.expected is None:
        return f"# No reproduction: the harness failed on this case (NOTE).\nNOTE = {py(r.note if cap is None else cut(r.note, 10 * cap))}\n"
    if cap is None:
        return snippet(r.case, r.expected, actual=_actual_text(r), loss_factory=loss_factory)
    case = dataclasses.replace(r.case, id=cut(r.case.id, cap))
    return snippet(case, r.expected, actual=cut(_actual_text(r), 10 * cap), loss_factory=loss_factory)


def _brief(outcome: Any) -> str:
    if outcome is None:
        return "no outcome"
    if "error" in outcome:
        return outcome["error"][:80]
    text = json.dumps(outcome["value"])
    return (text if len(text) < 90 else text[:87] + "...") + f" ({outcome['status']})"


def _versions_text(run_meta: dict[str, Any]) -> str:
    backend = run_meta.get("backend") or {}
    if backend.get("name") not in (None, "tensorflow"):
        return f"Keras {md_code(run_meta.get('keras'))} on the {md_code(backend['name'])} backend {md_code(backend.get('version'))}"
    return f"TensorFlow {md_code(run_meta.get('tensorflow'))}, Keras {md_code(run_meta.get('keras'))}"


def _backend_lines(run_meta: dict[str, Any]) -> list[str]:
    """What a run under another Keras backend left out, by construction, and why (meta.backend.skipped)."""
    backend = run_meta.get("backend") or {}
    skipped = backend.get("skipped") or {}
    if not skipped:
        return []
    lines = [f"Backend {md_code(backend.get('name'))}: {sum(skipped.values())} cases of the suite cannot be expressed on it and were not run:", ""]
    lines += [f"- {n}: {md_code(reason)}" for reason, n in skipped.items()]
    return [*lines, ""]


def render_markdown(result: RunResult, run_meta: dict[str, Any], bulk: Any = None) -> str:
    t = totals(result, bulk)
    factory = run_meta.get("loss_factory")
    lines = [
        "# bce-harness report",
        "",
        (f"{_versions_text(run_meta)}, profile {md_code(run_meta.get('profile'))}, "
        f"seed {md_code(run_meta.get('seed'))}, {md_code(run_meta.get('created_utc'))}, {md_code(run_meta.get('platform'))}."),
        "",
        *_backend_lines(run_meta),
        f"**{t['total']} records: {t['pass']} pass, {t['fail']} fail, {t['xfail']} xfail (known divergences), "
        f"{t['xpass']} xpass, {t['error']} error, {t.get('outside', 0)} outside the documented domain, "
        f"{t.get('unsupported', 0)} not expressible on this Keras.**" + (" The run was interrupted; the report is partial." if result.interrupted else ""),
        "",
        ("Status: `pass` agrees with the specification within its error bound; `fail` does not; `xfail` is a "
        "registered known divergence that reproduced; `xpass` is a registered divergence that no longer "
        "reproduces (update the registry); `error` is a failure of the harness itself; `outside` is a case "
        "outside the documented domain (no verdict: what happened is recorded); `unsupported` is a case the "
        "installed Keras cannot express (an argument, reduction or API it lacks)."),
        "",
        *_first_section(result),
        "## Summary",
        "",
        *fence(summary_table(result.records, bulk)),
        "",
        *_bulk_section(bulk),
    ]
    if run_meta.get("coverage"):  # what the green means: the share of the case space the run exercised
        found = run_meta["coverage"]
        text = render_coverage(found, suite=run_meta.get("suite_name", "default"), cases=run_meta.get("suite_size", 0))
        lines += ["## Coverage", "", "```", text, "```", ""]
    failures = iter_failures(result.records)
    # an inferred crash or hang is one line of its class above, not a section of its own
    unexpected = [r for r in failures if r.status in ("fail", "xpass", "error") and not (r.evidence or {}).get("inferred")]
    lines += ["## Unexpected results", ""]
    if not unexpected:
        lines += ["None.", ""]
    for i, r in enumerate(unexpected):
        lines += [f"### `{r.status}` {md_code(r.comparison.kind or '')}: {md_code(r.case.id)}", ""]
        if r.note:
            lines += [*fence(cut(r.note, 10 * MD_CAP)), ""]
        lines += [*fence(cut(r.comparison.message, 10 * MD_CAP)), ""]
        if i < _FAIL_REPROS:
            lines += [*fence(_repro(r, factory, cap=MD_CAP).rstrip(), "python"), ""]
    if len(unexpected) > _FAIL_REPROS:
        lines += [f"({len(unexpected) - _FAIL_REPROS} more reproductions are in repro/, one file per case.)", ""]

    by_entry: dict[str, list[Record]] = defaultdict(list)
    for r in failures:
        if r.status == "xfail" and r.divergence is not None:
            by_entry[r.divergence.id].append(r)
    lines += ["## Cross-mode divergences", ""]
    crossed = cross_mode_divergences(result.records)
    if not crossed:
        lines += ["None: every call gave the same answer (within its error bound) in every mode it ran in.", ""]
    else:
        lines += [
            "The same call answered differently in eager, tf.function and XLA (each mode is also compared with "
            "the reference above):",
            "",
        ]
        for c in crossed:
            lines += [f"- {md_code(c.call)} ({c.how}): " + "; ".join(f"{m}: {md_code(_brief(o))}" for m, o in c.outcomes.items())]
        lines += [""]
    lines += ["## Known divergences", ""]
    if not by_entry:
        lines += ["None reproduced.", ""]
    for entry_id, recs in sorted(by_entry.items()):
        entry = recs[0].divergence
        assert entry is not None
        lines += [f"### {entry.title} (`{entry_id}`, {len(recs)} records)", "", entry.reason, "", "Evidence:", ""]
        lines += [f"- {e}" for e in entry.evidence]
        lines += [""]
        for r in recs[:_XFAIL_REPROS_PER_ENTRY]:
            lines += [md_code(r.case.id), "", *fence(cut(r.comparison.message, 10 * MD_CAP)), "", *fence(_repro(r, factory, cap=MD_CAP).rstrip(), "python"), ""]
        if len(recs) > _XFAIL_REPROS_PER_ENTRY:
            lines += ["Other records of this divergence:", ""]
            lines += [f"- {md_code(r.case.id)}" for r in recs[_XFAIL_REPROS_PER_ENTRY:]]
            lines += [""]
    return "\n".join(lines)


def _bulk_section(bulk: Any) -> list[str]:
    """A large run's passes in brief: how many were summarised, the worst of them, where the rest are."""
    if bulk is None or not bulk.summarised:
        return []
    passes, xfails = bulk.statuses["pass"], bulk.statuses["xfail"]
    lines = [
        f"## The value sweep in brief: {passes} passes, {xfails} known divergences",
        "",
        (f"{passes} passing records of the value sweep are summarised (results.json keeps each one's max abs, "
         f"rel and ULP difference and a digest of its output), and its {xfails} known-divergence records are "
         "counted here by entry, not listed (results.json has each, with its arrays); every record, with its "
         "arrays, is in [records.jsonl](records.jsonl)."),
        "",
    ]  # fmt: skip
    if bulk.divergences:
        lines += ["| known divergence | sweep records |", "|---|---|"]
        lines += [f"| {md_code(k)} | {n} |" for k, n in sorted(bulk.divergences.items())]
        lines += [""]
    lines += [f"The worst {len(bulk.worst)} passes by ULP difference (each within its error bound):", ""]
    lines += [f"- {md_code(cid)}: {text}" for _, cid, text in bulk.worst_first()]
    return [*lines, ""]


def _ids(ids: list[str], most: int = 20) -> str:
    shown = ", ".join(md_code(i) for i in ids[:most])
    return shown + (f" and {len(ids) - most} more (results.json)" if len(ids) > most else "")


def _first_section(result: RunResult) -> list[str]:
    """The report's first section: each class of crashes and hangs once, with its count and ids; what no
    record says alone (a job that failed while its cases pass alone); and the cases that did not run."""
    classes = failure_classes(result.records)
    lines: list[str] = []
    if classes or result.findings:
        lines += ["## Crashes and hangs", ""]
    for g in classes:
        facets = ", ".join(f"{k}={v}" for k, v in (g["signature"] or {}).items())
        lines += [
            f"- **{md_code(g['kind'])}** ({md_code(g['cause'] or 'no class')}) {md_code(g['class'])}: **{g['count']} records**, "
            f"{len(g['confirmed'])} confirmed, {len(g['inferred'])} inferred"
            + (f"; the class: {md_code(facets)}" if facets else ""),
            f"  - confirmed: {_ids(g['confirmed'])}",
        ]
        if g["inferred"]:
            lines += [f"  - inferred (not run): {_ids(g['inferred'])}"]
    for f in result.findings:
        lines += [f"- **{md_code(f['kind'])}** ({md_code(f['cause'])}), {md_code(f['finding'])}: {md_code(f['message'])}; cases: {_ids(list(f['cases']), 8)}"]
    if classes or result.findings:
        lines += [""]
    if result.not_run:
        why = f"the deadline of {result.deadline:g}s was reached" if result.deadline is not None else "the run was interrupted"
        lines += ["## Not run", "", f"{len(result.not_run)} cases did not run ({why}); `--resume` runs them:", ""]
        lines += [f"- {md_code(i)}" for i in result.not_run[:200]]
        if len(result.not_run) > 200:
            lines += [f"- ... and {len(result.not_run) - 200} more (results.json, meta.not_run)"]
        lines += [""]
    return lines


def write_reports(result: RunResult, run_meta: dict[str, Any], out_dir: str | Path, bulk: Any = None) -> dict[str, Path]:
    """Write results.json, results.parquet, report.md and repro/*.py for non-passing records; return the paths.  ``bulk``
    (report/bulk.py): the passes a large run summarised on disk, streamed into results.json (none past
    ``bulk.RESULTS_JSON_MAX`` records: ``paths["results"]`` is then results.parquet), counted in the totals
    and summary table, and then removed; the HTML and JUnit reports list the kept records."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = build_results(result, run_meta, bulk)
    # results.parquet (report/columns.py): the records as columns; a large run's summarised records are in
    # its bulk's writer already, the kept ones follow here, each with the record_dict results.json has
    columns = ColumnWriter(out / COLUMNS_NAME) if bulk is None else bulk.columns
    for r, d in zip(result.records, results["records"], strict=True):
        columns.add(r, d)
    paths = {
        "columns": columns.close(results["meta"], results["totals"]),
        "report": atomic_write_text(out / "report.md", render_markdown(result, run_meta, bulk)),
        # rendered from the JSON-level results, as compare renders them from files
        "html": write_html(results, out / "report.html"),
        "junit": write_junit(results, out / "junit.xml"),
        # where the run ran, beside its stream: merge carries it into the merged results (run/stream.py)
        "provenance": write_provenance(out, run_meta),
    }
    if bulk is None or bulk.json:
        paths["results"] = _write_results(out / "results.json", results, bulk)
    else:  # past RESULTS_JSON_MAX records results.parquet alone holds them (report/bulk.py); none stale beside it
        (out / "results.json").unlink(missing_ok=True)
        paths["results"] = paths["columns"]
    repro_dir = out / "repro"
    if repro_dir.is_dir():  # reproductions of an earlier run in the same folder would mislead
        for old in repro_dir.glob("*.py"):
            old.unlink()
    written = 0
    per_entry: dict[str, int] = defaultdict(int)
    for r in iter_failures(result.records):
        if r.status == "xfail" and r.divergence is not None:
            per_entry[r.divergence.id] += 1
            if per_entry[r.divergence.id] > _XFAIL_REPROS_PER_ENTRY:
                continue
        atomic_write_text(repro_dir / f"{_slug(r.case.id)}.py", _repro(r, run_meta.get("loss_factory")))
        written += 1
    paths["repro"] = repro_dir
    if bulk is not None:
        bulk.discard()
    return paths


def render_coverage(found: dict, *, suite: str, cases: int) -> str:
    """The coverage figures as text (the terminal and report.md)."""
    s, p = found["single_values"], found["pairs"]
    lines = [
        f"coverage of the {suite} suite ({cases} cases) over the case facets (harness/generate/space.py):",
        f"  single facet values: {s['covered']} of {s['feasible']} feasible ({100 * s['share']:.1f}%)",
        f"  pairs of values (2-way): {p['covered']} of {p['feasible']} feasible ({100 * p['share']:.1f}%)",
    ]
    for value in found["missing_singles"]:
        lines.append(f"  missing value: {value}")
    if found["missing_pairs_count"]:
        lines.append(f"  missing pairs ({found['missing_pairs_count']}, first {len(found['missing_pairs'])}):")
        lines += [f"    {pair}" for pair in found["missing_pairs"]]
    lines.append("  pairs impossible by construction, by reason:")
    lines += [f"    {n:4d}  {why}" for why, n in found["infeasible_reasons"].items()]
    return "\n".join(lines)
