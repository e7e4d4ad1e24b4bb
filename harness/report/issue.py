"""Regression reports: one Markdown file per regression cluster, ready to paste into an upstream issue.

A cluster is the regressions (drift.py: new divergences and unexplained ones; fixes and behaviour changes
never become bodies) that share a cause: the registry entry NEW's run explains them with, or else the kind of
departure (a value: tolerance, nan_inf or unbounded; a raise, with its exception type and first line, numbers
left out; a shape; a dtype).  One planted or real cause that shows in many families and dtypes is one body,
and two causes (a raise and a wrong value) are two.  Its fingerprint is a hash of that key only, so the same
regression gets the same fingerprint every night whatever the versions; the title carries it as
``[bce-<fingerprint>]`` and the nightly workflow searches issues by it, so a regression is filed once.

Each file has the environment of both runs, the smallest case of the cluster shrunk to its first diverging
row where the rows are independent (an unreduced, unweighted batch over axis -1), a standalone reproduction
(repro.py), expected against actual with ULPs, and the last version where it held and the first where it broke.

``write_compare_reports`` writes everything ``bce-harness compare --out DIR`` leaves: regressions/*.md,
drift.json, report.html (NEW's page with the drift) and junit.xml (NEW's records).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.case import Case, Expected
from harness.dtypes import FLOAT_DTYPES, ulp_distance
from harness.errors import InputError, UsageError
from harness.jsonio import atomic_write_text, decode_array
from harness.report.drift import Change, Drift, changed_packages, changed_text, write_drift
from harness.report.html import write_html
from harness.report.inert import cut, md_code
from harness.report.junit import write_junit
from harness.report.literal import fence, one_line
from harness.report.repro import snippet

__all__ = ["Cluster", "clusters", "render_issue", "render_issues", "render_summary", "write_compare_reports"]

_ROWS = 5
_IDS = 20
_LOG = 4000  # characters of the log output shown


class Cluster:
    """New divergences with one key; ``fingerprint`` is stable across versions."""

    def __init__(self, key: tuple[str, str, str, str], changes: Sequence[Change]) -> None:
        self.key = key
        self.changes = tuple(changes)
        self.fingerprint = hashlib.sha256("|".join(("bce-harness", *key)).encode()).hexdigest()[:12]

    @property
    def families(self) -> list[str]:
        return sorted({c.group for c in self.changes})

    @property
    def dtypes(self) -> list[str]:
        return sorted({str(c.after.get("compute_dtype")) for c in self.changes})

    @property
    def title(self) -> str:
        kind, entry, signature, _ = self.key
        what = f"{md_code(kind)} ({md_code(entry)})" if entry else f"{md_code(kind)}: {md_code(signature)}" if signature else md_code(kind)
        fams = self.families
        where = md_code(fams[0]) if len(fams) == 1 else f"{len(fams)} families"
        # one line whatever the results file held: it is the issue's title
        return one_line(f"BinaryCrossentropy regression: {what} in {where} [bce-{self.fingerprint}]")


# the failure kinds (judge.compare.KINDS) that a wrong value shows as: one cause gives several of them
_VALUE_KINDS = ("tolerance", "nan_inf", "unbounded")


def cause(change: Change) -> tuple[str, str, str, str]:
    """A regression's cause, as its cluster's key: (kind, registry entry, signature, "").  A wrong value is one
    kind whichever of tolerance, nan_inf or unbounded it shows as; a raise is known by its exception type and
    the first line of its message with numbers and quoted values left out (one cause raises with each case's
    own values)."""
    a = change.after
    kind = str(a.get("kind"))
    signature = ""
    if kind in _VALUE_KINDS:
        kind = "value"
    elif kind == "exception":
        error = str(a.get("actual_error") or a.get("expected_error") or "")
        head = error.splitlines()[0] if error else "(no exception: a value where an error is documented)"
        head = head.removesuffix(" (in user code)")  # a traced call's error reads as the eager one's
        signature = re.sub(r"[-+]?\d[\d.e+-]*|'[^']*'|\"[^\"]*\"|\([^)]*\)", "_", head)[:120]
    return kind, str(a.get("divergence") or ""), signature, ""


def clusters(drift: Drift) -> list[Cluster]:
    """The regressions of ``drift`` grouped by cause (``cause``)."""
    groups: dict[tuple[str, str, str, str], list[Change]] = defaultdict(list)
    for c in (*drift.new_divergences, *drift.unexplained):
        groups[cause(c)].append(c)
    return [Cluster(k, v) for k, v in sorted(groups.items())]


def _case(r: Mapping[str, Any]) -> Case:
    """The case of a ``results.json`` record that did not pass, through the case's own decoder (the record
    names y_pred's dtype ``pred_dtype``, ``input_dtype`` before format 7), path facets included; InputError
    names the record."""
    try:
        return Case.from_dict({**r, "pred_dtype": r.get("pred_dtype", r.get("input_dtype"))})
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"record {r.get('id')!r}: cannot rebuild its case ({type(exc).__name__}: {exc})") from None
    except UsageError as exc:
        raise InputError(f"record {r.get('id')!r}: {exc}") from None


def _arr(x: Any) -> np.ndarray | None:
    return None if x is None else np.asarray(decode_array(x), dtype=np.float64)


def _diverging(expected: np.ndarray, actual: np.ndarray, bound: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        nan_inf = (np.isnan(expected) != np.isnan(actual)) | (np.isinf(expected) != np.isinf(actual))
        nan_inf |= np.isinf(expected) & np.isinf(actual) & (np.sign(expected) != np.sign(actual))
        far = np.isfinite(expected) & np.isfinite(actual) & (np.abs(actual - expected) > bound)
    return nan_inf | far


def _shrunk(r: Mapping[str, Any]) -> tuple[Case, Expected, np.ndarray | None]:
    """The record's case and expectation, cut to its first diverging row when rows are independent."""
    case = _case(r)
    exp_v, bound, actual = _arr(r.get("expected")), _arr(r.get("bound")), _arr(r.get("actual"))
    expected = Expected(value=exp_v, bound=bound, dtype=r.get("expected_dtype"), raises=r.get("expected_error"))
    if exp_v is None or actual is None or bound is None:
        return case, expected, actual
    o = case.options
    independent = (
        case.training is None  # a loop's or the replicas' rows are not independent calls
        and o.reduction in (None, "none")
        and o.axis == -1
        and case.sample_weight is None
        and case.y_true.ndim == case.y_pred.ndim == 2
        and case.y_true.shape == case.y_pred.shape
        and exp_v.shape == actual.shape == (case.y_pred.shape[0],)
        and case.y_pred.shape[0] > 1
    )
    if not independent:
        return case, expected, actual
    rows = np.flatnonzero(_diverging(exp_v, actual, np.broadcast_to(bound, exp_v.shape)))
    if rows.size == 0:
        return case, expected, actual
    i = int(rows[0])
    small = replace(  # the same call on one row: entry point, mode, producer and mask kept
        case,
        id=f"{case.id} (row {i})",
        y_true=case.y_true[i : i + 1],
        y_pred=case.y_pred[i : i + 1],
        mask=None if case.mask is None else case.mask[i : i + 1],
    )
    shrunk = Expected(value=exp_v[i : i + 1], bound=np.broadcast_to(bound, exp_v.shape)[i : i + 1], dtype=expected.dtype)
    return small, shrunk, actual[i : i + 1]


def _fmt(x: float) -> str:
    return f"{x:.9g}"


def _value_table(r: Mapping[str, Any], before: Mapping[str, Any]) -> list[str]:
    exp_v, bound, actual, base = _arr(r.get("expected")), _arr(r.get("bound")), _arr(r.get("actual")), _arr(before.get("actual"))
    if r.get("actual_error") or r.get("expected_error"):
        return [
            f"- expected: {'an error: ' + md_code(r['expected_error']) if r.get('expected_error') else _arr_text(exp_v, r.get('expected_dtype'))}",
            f"- actual (NEW): {md_code(r.get('actual_error')) if r.get('actual_error') else _arr_text(actual, r.get('actual_dtype'))}",
            f"- actual (BASE): {md_code(before.get('actual_error')) if before.get('actual_error') else _arr_text(base, before.get('actual_dtype'))}",
        ]
    if exp_v is None or actual is None or bound is None or exp_v.shape != actual.shape:
        return [
            f"- expected: {_arr_text(exp_v, r.get('expected_dtype'))}",
            f"- actual (NEW): {_arr_text(actual, r.get('actual_dtype'))}",
            f"- actual (BASE): {_arr_text(base, before.get('actual_dtype'))}",
        ]
    bound = np.broadcast_to(bound, exp_v.shape)
    expected_dtype = r.get("expected_dtype")
    dtype = expected_dtype if isinstance(expected_dtype, str) and expected_dtype in FLOAT_DTYPES else "float64"
    ulps = ulp_distance(actual, exp_v, dtype)
    bad = np.flatnonzero(np.ravel(_diverging(exp_v, actual, bound)))
    lines = ["| index | expected | actual (NEW) | actual (BASE) | bound | ULP |", "|---|---|---|---|---|---|"]
    for flat in bad[:_ROWS]:
        i = np.unravel_index(flat, exp_v.shape) if exp_v.shape else ()
        b = _fmt(float(base[i])) if base is not None and base.shape == exp_v.shape else "-"
        u = int(ulps[i]) if ulps.shape else int(ulps)
        lines.append(
            f"| {tuple(int(k) for k in i)} | {_fmt(float(exp_v[i]))} | {_fmt(float(actual[i]))} | {b} | {_fmt(float(bound[i]))} | {'NaN' if u < 0 else u} |"
        )
    lines.append(f"\n{len(bad)} of {exp_v.size} elements diverge; ULPs in {dtype} (-1 where NaN is involved).")
    if base is None and before.get("digest"):
        lines.append(
            f"BASE passed: its results.json keeps a passing record as a summary (output digest {md_code(before['digest'])}); "
            "its values are in BASE's records.jsonl."
        )
    return lines


def _arr_text(a: np.ndarray | None, dtype: Any) -> str:
    if a is None:
        return "(none)"
    return f"{np.array2string(a, precision=9, threshold=8)} shape {list(a.shape)} {md_code(dtype)}"


def _environment(base: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    def env(m: Mapping[str, Any]) -> str:
        flags = {k: v for k, v in (m.get("environment") or {}).items() if v is not None}
        return ", ".join(md_code(f"{k}={v}", cell=True) for k, v in sorted(flags.items())) or "-"

    rows = [
        ("TensorFlow", "tensorflow"),
        ("Keras (tf.keras)", "keras"),
        ("profile", "profile"),
        ("NumPy", "numpy"),
        ("Python", "python"),
        ("platform", "platform"),
    ]
    lines = ["| | last good (BASE) | first broken (NEW) |", "|---|---|---|"]
    lines += [f"| {label} | {md_code(base.get(key), cell=True)} | {md_code(new.get(key), cell=True)} |" for label, key in rows]
    lines.append(f"| CPU flags | {md_code(' '.join(base.get('cpu_flags') or []) or '-', cell=True)} | {md_code(' '.join(new.get('cpu_flags') or []) or '-', cell=True)} |")
    lines.append(f"| environment | {env(base)} | {env(new)} |")
    return [one_line(line) for line in lines]


def _nightly(version: Any) -> bool:
    """tf-nightly's versions carry a ``.dev`` segment (2.22.0.dev20261201); releases do not."""
    return "dev" in str(version)


def _bug_template(cluster: Cluster, r: Mapping[str, Any], before: Mapping[str, Any], base: Mapping[str, Any],
                  new: Mapping[str, Any]) -> list[str]:  # fmt: skip
    """The fields of TensorFlow's bug template (.github/ISSUE_TEMPLATE/00-bug-issue.yml) and, for a finding in
    Keras code, Keras's (keras-team/keras: Keras version, backend, standalone code, log), filled from the runs."""
    kind = cluster.key[0]
    if _nightly(new.get("tensorflow")):
        nightly = f"Yes: TensorFlow {md_code(new.get('tensorflow'))} (tf-nightly) is the NEW run"
    elif _nightly(base.get("tensorflow")):
        nightly = f"Yes: TensorFlow {md_code(base.get('tensorflow'))} (tf-nightly) is the BASE run"
    else:
        nightly = "No: neither run is tf-nightly (run `tox -e tf-nightly` and compare against it)"
    log = str(r.get("message") or r.get("actual_error") or kind)
    fields = [
        "## Bug report fields (TensorFlow's template)",
        "",
        "- **Issue type:** Bug",
        f"- **Have you reproduced the bug with TensorFlow Nightly?** {nightly}",
        "- **Source:** binary",
        f"- **TensorFlow version:** {md_code(new.get('tensorflow'))} (it held on {md_code(base.get('tensorflow'))})",
        "- **Custom code:** No: the public `tf.keras.losses.BinaryCrossentropy` API only",
        f"- **OS platform and distribution:** {md_code(new.get('platform'))}",
        "- **Mobile device:** -",
        f"- **Python version:** {md_code(new.get('python'))}",
        "- **Bazel version:** - (binary install)",
        "- **GCC/compiler version:** - (binary install)",
        "- **CUDA/cuDNN version:** - (CPU)",
        "- **GPU model and memory:** - (CPU)",
        f"- **Keras version** (for keras-team/keras, whose code the loss is): {md_code(new.get('keras'))}, backend {_backend_text(new)}",
        "",
        "### Current behavior?",
        "",
        f"{md_code(kind)}: the result departs from the documented semantics (expected against actual below).",
        f"- Result on the latest release (BASE, TensorFlow {md_code(base.get('tensorflow'))}): {_outcome(before)}",
        f"- Result on TensorFlow {md_code(new.get('tensorflow'))} (NEW{', tf-nightly' if _nightly(new.get('tensorflow')) else ''}): {_outcome(r)}",
        "",
        "### Standalone code to reproduce the issue",
        "",
        "Under **Reproduction** below: it needs only tensorflow and numpy and exits 1 while the issue reproduces.",
        "",
        "### Relevant log output",
        "",
    ]
    # every line from the files on one line (a line break there could open a fence), the log in its own
    return [one_line(line) for line in fields] + fence(log[:_LOG] + (f"\n[... {len(log) - _LOG} more characters]" if len(log) > _LOG else ""))


def _outcome(r: Mapping[str, Any]) -> str:
    if r.get("actual_error"):
        return f"{md_code(r.get('status'))}, raised {md_code(r['actual_error'], 200)}"
    if r.get("actual") is None and r.get("preview") is not None:  # a summarised record keeps its first values
        return f"{md_code(r.get('status'))}, {md_code(_preview_text(r))}"
    return f"{md_code(r.get('status'))}, {_arr_text(_arr(r.get('actual')), r.get('actual_dtype'))}"


def _preview_text(r: Mapping[str, Any]) -> str:
    values = ", ".join(f"{float(v) if not isinstance(v, str) else v}" for v in r.get("preview") or [])
    shape = r.get("actual_shape")
    more = ", ..." if shape and int(np.prod(shape)) > len(r.get("preview") or []) else ""
    return f"[{values}{more}] shape {shape} {r.get('actual_dtype')}"


def _held(cluster: Cluster) -> str:
    """What BASE said of the cluster's cases: agreed with a documented value, raised a documented error (never
    called an agreement with a value), or a known divergence (xfail -> fail is no agreement)."""
    said = []
    known = sorted({md_code(c.before.get("divergence")) for c in cluster.changes if c.before.get("status") == "xfail"})
    held = [c.before for c in cluster.changes if c.before.get("status") in ("pass", "xpass")]
    if any(b.get("actual_error") is None for b in held):
        said.append("agreed with the documented value")
    if any(b.get("actual_error") is not None for b in held):
        said.append("raised the documented error")
    if known:
        said.append(f"were the known divergence {', '.join(known)} (not an agreement)")
    return " or ".join(said) or "held"


def render_issue(cluster: Cluster, drift: Drift, *, loss_factory: str | None = None) -> str:
    """The Markdown of one cluster: its first line (without '# ') is the issue title.  The reproduction
    imports NEW's factory only when the user named it again (``loss_factory``); otherwise it prints it."""
    smallest = min(cluster.changes, key=lambda c: (len(str(c.after.get("y_pred"))), c.id))
    r, before = smallest.after, smallest.before
    try:
        case, expected, actual = _shrunk(r)
    except (InputError, UsageError) as exc:
        raise InputError(f"{drift.new.get('source')}: {exc}") from None
    if actual is not None and r.get("actual_error") is None:
        actual_text = f"{np.asarray(actual).tolist()} ({r.get('actual_dtype')})"
    else:
        actual_text = r.get("actual_error") or ""
    base, new = drift.base, drift.new
    factory = new.get("loss_factory")
    if factory is not None and not isinstance(factory, str):
        raise InputError(f"{new.get('source')}: meta.loss_factory={factory!r} is not a string")
    named, factory = (factory, None) if factory is not None and factory != loss_factory else (None, factory)
    kind, entry, signature, _ = cluster.key
    moved = changed_packages(base, new)
    culprit = " and ".join(f"{name} {md_code(after)}" for name, _, after in moved) or f"TensorFlow {md_code(new.get('tensorflow'))}"
    lines = [
        f"# {cluster.title}",
        "",
        f"<!-- bce-harness fingerprint: bce-{cluster.fingerprint} -->",
        f"`tf.keras.losses.BinaryCrossentropy`: {len(cluster.changes)} case(s) inside the documented domain "
        f"({', '.join(md_code(f) for f in cluster.families[:8])}{', ...' if len(cluster.families) > 8 else ''}; "
        f"computing in {', '.join(md_code(d) for d in cluster.dtypes)}) {_held(cluster)} on BASE and diverge ({md_code(kind)}) on {culprit}.",
        "",
        f"- **What changed between the runs:** {md_code(changed_text(base, new))}",
        f"- **Last version where it held:** TensorFlow {md_code(base.get('tensorflow'))}, Keras {md_code(base.get('keras'))} (profile {md_code(str(base.get('profile')))})",
        f"- **First version where it broke:** TensorFlow {md_code(new.get('tensorflow'))}, Keras {md_code(new.get('keras'))} (profile {md_code(str(new.get('profile')))})",
    ]
    if signature:
        lines.append(f"- **Cause:** every case of this body raises {md_code(signature)} (numbers and quoted values left out)")
    if entry:
        lines.append(f"- The NEW run's registry already knows this as {md_code(entry)} (a documented-semantics divergence).")
    lines += ["", *_bug_template(cluster, r, before, base, new)]
    lines += ["", "## Environment", "", *_environment(base, new), "", "## Reproduction", ""]
    lines += [
        f"Case {md_code(case.id)}" + (" (shrunk to its first diverging row)" if case.id != r["id"] else "")
        + ("; needs only tensorflow and numpy" if factory is None else f"; made with --loss-factory {md_code(factory)}, which it calls")
        + ("" if named is None else f"; NEW's results name the loss factory {md_code(named)}, which it prints and does not "
           "import (compare --loss-factory names it again)")
        + ", exits 1 while it reproduces:",
        "",
        # the script as an issue holds it (GitHub takes 65,536 characters): the id and the output cut, not the data
        *fence(snippet(replace(case, id=cut(case.id, 300)), expected, actual=cut(actual_text, _LOG), loss_factory=factory,
                         source=str(new.get("source")), named_factory=named).rstrip(), "python"),
        "",
        "## Expected against actual",
        "",
        *_value_table(r, before),
        "",
        "Expected values are the documented semantics computed in extended precision; the bound is the forward "
        "error a correct implementation in the compute dtype may have (bce-harness tolerance.py).",
        "",
        f"## Cases in this cluster ({len(cluster.changes)})",
        "",
    ]
    lines += [f"- {md_code(c.id)}: {c.what}" for c in cluster.changes[:_IDS]]
    if len(cluster.changes) > _IDS:
        lines.append(f"- ... and {len(cluster.changes) - _IDS} more")
    return "\n".join(lines) + "\n"


def render_summary(drift: Drift, found: Sequence[Cluster]) -> str:
    """A job summary in Markdown (the nightly appends it to $GITHUB_STEP_SUMMARY): versions, counts, clusters."""
    from harness.report.drift import registry_edit

    lines = [
        f"## bce-harness: TensorFlow {md_code(drift.new.get('tensorflow'))}, Keras {md_code(drift.new.get('keras'))} against "
        f"TensorFlow {md_code(drift.base.get('tensorflow'))}, Keras {md_code(drift.base.get('keras'))}",
        "",
        f"Changed: {md_code(changed_text(drift.base, drift.new))}.",
        "",
        f"{drift.compared} cases compared: {len(drift.new_divergences)} new divergences, {len(drift.unexplained)} "
        f"known divergences now unexplained, {len(drift.fixed)} fixed, {len(drift.behaviour)} behaviour changes, "
        f"{len(drift.drift)} with value drift. " + ("**Regressed.**" if drift.regressed else "No regression."),
        "",
    ]
    if found:
        lines += ["### Regressions", "", "| regression | cases |", "|---|---|"]
        lines += [f"| {c.title.replace('|', chr(92) + '|')} | {len(c.changes)} |" for c in found]
        lines += [""]
    if drift.fixed:
        edits: dict[str, int] = defaultdict(int)
        for c in drift.fixed:
            edits[registry_edit(c, drift)] += 1
        lines += ["### Fixes", "", "| registry edit it calls for | cases |", "|---|---|"]
        lines += [f"| {md_code(e, cell=True)} | {n} |" for e, n in sorted(edits.items())]
        lines += [""]
    if drift.behaviour:
        whats: dict[tuple[str, str], int] = defaultdict(int)
        for c in drift.behaviour:
            whats[c.group, c.what] += 1
        lines += ["### Behaviour changes (no verdict: no registry edit needed)", "", "| family | what moved | cases |", "|---|---|---|"]
        lines += [f"| {md_code(g, cell=True)} | {md_code(w, cell=True)} | {n} |" for (g, w), n in sorted(whats.items())]
        lines += [""]
    return "\n".join(lines) + "\n"


def render_issues(drift: Drift, *, loss_factory: str | None = None) -> dict[str, str]:
    """Each regression cluster's body by its file name (``bce-<fingerprint>.md``): built before anything is
    printed or written, so a record that cannot become a reproduction stops compare with nothing half done."""
    return {f"bce-{c.fingerprint}.md": render_issue(c, drift, loss_factory=loss_factory) for c in clusters(drift)}


def write_compare_reports(drift: Drift, new_results: Mapping[str, Any], out_dir: str | Path, *, loss_factory: str | None = None,
                          issues: Mapping[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """regressions/<fingerprint>.md per cluster (``issues``, from ``render_issues``, or rendered here), drift.json,
    report.html and junit.xml in ``out_dir``."""
    if issues is None:
        issues = render_issues(drift, loss_factory=loss_factory)
    out = Path(out_dir)
    reg_dir = out / "regressions"
    reg_dir.mkdir(parents=True, exist_ok=True)
    for old in reg_dir.glob("*.md"):  # a regression that is gone must not be filed again
        old.unlink()
    written = [atomic_write_text(reg_dir / name, body) for name, body in issues.items()]
    paths = {
        "summary": atomic_write_text(out / "summary.md", render_summary(drift, clusters(drift))),
        "regressions": written,
        "regressions_dir": reg_dir,
        "drift": write_drift(drift, out / "drift.json"),
    }
    pages = getattr(new_results["records"], "write_reports", None)
    if pages is not None:  # a results.parquet's rows (columns.SummaryRows): both from one pass over its columns
        paths["html"], paths["junit"] = pages(new_results, out / "report.html", out / "junit.xml", drift=drift)
    else:
        paths["html"] = write_html(new_results, out / "report.html", drift=drift)
        paths["junit"] = write_junit(new_results, out / "junit.xml")
    return paths


def _backend_text(m: Mapping[str, Any]) -> str:
    """The Keras backend a run used and its version (run --backend), TensorFlow's by default."""
    backend = m.get("backend")
    if isinstance(backend, Mapping) and backend.get("name") not in (None, "tensorflow"):
        return f"{md_code(backend['name'])} {md_code(backend.get('version'))}"
    return f"tensorflow {md_code(m.get('tensorflow'))}"
