"""The exhaustive low-precision audit: every finite float16 and bfloat16 value, as a probability and as a
logit, against the labels 0, 1 and a soft label, through the loss class and ``keras.ops.binary_crossentropy``,
at each loss dtype that keeps the input's precision (the input's own, and float32); and the gradient with
respect to the logits.  Each group is one unreduced call (an (N, 1) batch: the mean over a features axis of
one is the element itself), so the audit rides the stacked path: one TensorFlow call and one vectorised
reference per group.

The table is an accuracy table in the style of glibc's libm-test-ulps and NumPy's umath accuracy tests: per
group the ULP histogram (0, 1, 2, 3 and more, measured in the loss's dtype against the reference's exact
value rounded there), the largest and the mean ULP, the input with the largest error (in hex, its bit
pattern), and how many results are 0 where the exact value is a normal number (a flushed or underflowed
result).  NaN on either side is counted apart.  It judges nothing: it measures, so ``compare``-style drift
between TensorFlow lines can be read off two runs' ``audit.json``.

May import: every stage below the commands; TensorFlow only through ``harness.frameworks``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.case import API_LOSS_CLASS, Case, Options
from harness.dtypes import float_format, round_to, ulp_distance
from harness.jsonio import atomic_write_text, dumps
from harness.oracle import expected
from harness.schema import Int, Json, List, Map, Num, Obj, Opt, Scalar, Str, format_version, read_json

__all__ = [
    "AUDIT", "AUDIT_FORMATS", "AUDIT_VERSION", "audit_drift", "audit_groups", "every_finite", "read_audit", "render_audit", "render_audit_html",
    "run_audit", "write_audit",
]  # fmt: skip

AUDIT_FORMATS = ("float16", "bfloat16")
LABELS = {"0": 0.0, "1": 1.0, "soft 0.25": 0.25}
APIS = (API_LOSS_CLASS, "ops.binary_crossentropy")


def every_finite(dtype: str) -> np.ndarray:
    """Every finite value of a 16-bit format, in bit-pattern order, as float64 (exact)."""
    bits = np.arange(1 << 16, dtype=np.uint32)
    if dtype == "float16":
        values = bits.astype(np.uint16).view(np.float16).astype(np.float64)
    elif dtype == "bfloat16":
        with np.errstate(invalid="ignore"):  # the NaN patterns, dropped below
            values = (bits << 16).astype(np.uint32).view(np.float32).astype(np.float64)
    else:
        raise ValueError(f"dtype={dtype!r} is not a 16-bit format")
    return values[np.isfinite(values)]


def _hex(x: float, dtype: str) -> str:
    if dtype == "float16":
        return f"0x{int(np.float16(x).view(np.uint16)):04x} ({x:.6g})"
    return f"0x{int(np.float32(x).view(np.uint32)) >> 16:04x} ({x:.6g})"


@dataclass(frozen=True)
class Group:
    """One audited call: a format's every value as probabilities or logits, one label, entry point, dtype."""

    fmt: str
    as_: str  # "probability" or "logit"
    label: str
    api: str
    loss_dtype: str
    grad: bool = False

    @property
    def name(self) -> str:
        what = "d/dx " if self.grad else ""
        plural = {"probability": "probabilities", "logit": "logits"}[self.as_]
        return f"{what}{self.fmt} {plural}, y={self.label}, {self.api}, dtype={self.loss_dtype}"

    def case(self, values: np.ndarray) -> Case:
        n = values.size
        y = np.asarray(round_to(np.full(n, LABELS[self.label]), self.fmt), dtype=np.float64)
        dtype = None if self.api != API_LOSS_CLASS else self.loss_dtype
        return Case(
            id=f"audit/{self.name}",
            y_true=y.reshape(n, 1),
            y_pred=values.reshape(n, 1),
            true_dtype=self.fmt,
            pred_dtype=self.fmt,
            options=Options(from_logits=self.as_ == "logit", reduction="sum" if self.grad else "none", dtype=dtype),
            api=self.api,
            grad="y_pred" if self.grad else None,
            tags={"family": "audit"},
        )


def audit_groups(formats: tuple[str, ...] = AUDIT_FORMATS) -> Iterator[Group]:
    for fmt, as_, label, api in itertools.product(formats, ("probability", "logit"), LABELS, APIS):
        # ops.binary_crossentropy computes in y_pred's dtype; the loss class in its dtype option
        for loss_dtype in (fmt, "float32") if api == API_LOSS_CLASS else (fmt,):
            yield Group(fmt, as_, label, api, loss_dtype)
    for fmt, label in itertools.product(formats, LABELS):  # the gradient with respect to the logits
        yield Group(fmt, "logit", label, API_LOSS_CLASS, fmt, grad=True)


def measure(group: Group, values: np.ndarray, actual: np.ndarray, exact: np.ndarray) -> dict[str, Any]:
    """The accuracy row of one group, in the loss's dtype."""
    dtype = group.loss_dtype
    actual = actual.reshape(-1)
    exact = exact.reshape(-1)
    nan = np.isnan(actual) | np.isnan(exact)
    ulp = ulp_distance(actual, round_to(exact, dtype), dtype)
    ok = ~nan
    d = ulp[ok]
    hist = [int(np.sum(d == 0)), int(np.sum(d == 1)), int(np.sum(d == 2)), int(np.sum(d >= 3))]
    worst = int(np.argmax(np.where(ok, ulp, -1))) if ok.any() else 0
    normal = float_format(dtype).smallest_normal
    zeros = int(np.sum(ok & (actual == 0) & (np.abs(exact) >= normal)))
    return {
        "group": group.name,
        "n": int(actual.size),
        "ulp_0": hist[0],
        "ulp_1": hist[1],
        "ulp_2": hist[2],
        "ulp_3_plus": hist[3],
        "max_ulp": int(d.max()) if d.size else 0,
        "mean_ulp": round(float(d.mean()), 4) if d.size else 0.0,
        "worst_input": _hex(float(values.reshape(-1)[worst]), group.fmt),
        "zeros_where_normal": zeros,
        "nan_either_side": int(nan.sum()),
        "nan_mismatch": int(np.sum(np.isnan(actual) != np.isnan(exact))),
    }


def run_audit(target: Any, *, formats: tuple[str, ...] = AUDIT_FORMATS, profile: str = "keras3") -> dict[str, Any]:
    """Every group through ``target`` (a TFTarget) and the oracle; the table and where the time went."""
    rows = []
    start = time.perf_counter()
    seconds = {"target": 0.0, "reference": 0.0}
    for group in audit_groups(formats):
        values = every_finite(group.fmt)
        case = group.case(values)
        t0 = time.perf_counter()
        out = target.run(case)
        t1 = time.perf_counter()
        exp = expected(case, profile=profile)
        t2 = time.perf_counter()
        seconds["target"] += t1 - t0
        seconds["reference"] += t2 - t1
        if out.error is not None or exp.value is None or out.value is None:
            rows.append({"group": group.name, "error": out.error or exp.raises or "no value"})
            continue
        rows.append(measure(group, values, np.asarray(out.value), np.asarray(exp.value, dtype=np.float64)))
    seconds["total"] = time.perf_counter() - start
    return {"rows": rows, "seconds": {k: round(v, 2) for k, v in seconds.items()}}


def render_audit(audit: dict[str, Any], *, versions: dict[str, Any] | None = None) -> str:
    """The table as Markdown."""
    v = versions or {}
    head = (
        f"## Low-precision audit (TensorFlow {v.get('tensorflow')}, Keras {v.get('keras')})\n\n"
        "Every finite value of the format; ULPs in the loss's dtype against the exact value rounded there.\n\n"
        "| group | n | 0 ULP | 1 | 2 | 3+ | max ULP | mean ULP | worst input | zeros where normal | NaN mismatch |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in audit["rows"]:
        if "error" in r:
            lines.append(f"| {r['group']} | raised: {r['error']} |||||||||| ")
            continue
        lines.append(
            f"| {r['group']} | {r['n']} | {r['ulp_0']} | {r['ulp_1']} | {r['ulp_2']} | {r['ulp_3_plus']} | "
            f"{r['max_ulp']} | {r['mean_ulp']} | `{r['worst_input']}` | {r['zeros_where_normal']} | {r['nan_mismatch']} |"
        )
    return head + "\n".join(lines) + "\n"


# AUDIT_VERSION history (audit.json, what ``bce-harness audit --out`` writes: write_audit, read back by read_audit):
#   0 - no version field: {"versions", "profile", "rows", "seconds"} (read still, where it fits AUDIT).
#   1 - ``format_version`` first, then the same fields.
AUDIT_VERSION = 1

_COUNT = Int(0, 2**64)
# What ``bce-harness audit --out`` writes in audit.json: {"format_version", "versions", "profile", "rows",
# "seconds"}, a row per group (``measure``'s, or {"group", "error"} for a group that raised).  A field of
# another version is kept.
AUDIT = Obj(
    {
        "format_version": Int(0, AUDIT_VERSION),
        "versions": Opt(Map(Scalar(), 100)),
        "profile": Opt(Str()),
        "rows": List(
            Obj(
                {"group": Str(), "error": Str(), "n": _COUNT, "ulp_0": _COUNT, "ulp_1": _COUNT, "ulp_2": _COUNT,
                 "ulp_3_plus": _COUNT, "max_ulp": _COUNT, "mean_ulp": Num(lo=0, nonfinite=False), "worst_input": Str(),
                 "zeros_where_normal": _COUNT, "nan_either_side": _COUNT, "nan_mismatch": _COUNT},
                required=frozenset({"group"}),
                extra=Json(),
            ),
            100_000,
        ),
        "seconds": Opt(Map(Num(lo=0, nonfinite=False), 100)),
    },
    required=frozenset({"rows"}),
    extra=Json(),
)


def write_audit(path: str | Path, audit: dict[str, Any], *, versions: dict[str, Any], profile: str) -> Path:
    """audit.json at ``path``: ``format_version`` (AUDIT_VERSION), the versions audited, the profile, and
    ``audit`` (run_audit's rows and seconds); read_audit reads it."""
    return atomic_write_text(path, dumps({"format_version": AUDIT_VERSION, "versions": versions, "profile": profile, **audit}))


def read_audit(path: str | Path) -> dict[str, Any] | None:
    """The audit.json at ``path`` as write_audit wrote it, read against AUDIT (its version first: a newer one
    is refused as such; a file without one is version 0), or None where there is none; InputError names the
    file, the field and the value."""
    if not Path(path).is_file() and not Path(path).is_dir():
        return None

    def check(data: Any) -> None:
        format_version(data, AUDIT_VERSION)
        AUDIT.check(data, "")

    return read_json(path, "audit.json (bce-harness audit --out)", check=check, max_bytes=100_000_000)


def audit_drift(base: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Groups whose accuracy moved between two ``audit.json`` (two TensorFlow lines): the histogram, the
    largest ULP, the zeros where the exact value is normal, or the NaN mismatches."""
    keys = ("ulp_0", "ulp_1", "ulp_2", "ulp_3_plus", "max_ulp", "zeros_where_normal", "nan_mismatch")
    before = {r["group"]: r for r in base.get("rows", [])}
    lines = []
    for row in new.get("rows", []):
        old = before.get(row["group"])
        if old is None or any(old.get(k) != row.get(k) for k in keys):
            what = "new group" if old is None else ", ".join(f"{k} {old.get(k)} -> {row.get(k)}" for k in keys if old.get(k) != row.get(k))
            lines.append(f"{row['group']}: {what}")
    return lines


def render_audit_html(audit: dict[str, Any], *, versions: dict[str, Any] | None = None) -> str:
    """The table as a self-contained HTML page (every cell escaped)."""
    import html

    v = versions or {}
    cols = ("group", "n", "ulp_0", "ulp_1", "ulp_2", "ulp_3_plus", "max_ulp", "mean_ulp", "worst_input",
            "zeros_where_normal", "nan_mismatch")  # fmt: skip
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, r.get('error', ''))))}</td>" for c in cols) + "</tr>"
        for r in audit["rows"]
    )
    title = f"Low-precision audit: TensorFlow {v.get('tensorflow')}, Keras {v.get('keras')}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:2px 6px;text-align:right}td:first-child{text-align:left}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>Every finite value of the format; ULPs in the loss's dtype against the "
        f"exact value rounded there.</p><table><tr>{head}</tr>{body}</table></body></html>\n"
    )
