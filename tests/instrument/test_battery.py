"""A battery of malformed inputs, as a new user (or another job) hands them over: command lines, case files,
registries, special-case tables, record streams, results files, output paths.  Each one must end in exit 2
with one line on stderr that starts ``bce-harness: error:`` and names the culprit (the file, or the option),
and no traceback.  In-process (no TensorFlow is imported on any of these paths), so the whole battery takes
seconds; ``test_a_real_process_says_the_same`` repeats a few in a real process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from artifacts import CASE, record, results, write_case, write_results, write_shards

from harness.cli import main
from harness.generate.grid import DEFAULT_SPECIAL_CASES
from harness.judge.registry import DEFAULT_REGISTRY

REPO = Path(__file__).resolve().parents[2]

# an entry: a function of a fresh folder returning the argv and the text the error line must hold
Build = Callable[[Path], tuple[list[str], str]]
BATTERY: dict[str, Build] = {}


def _cli(name: str, argv: list[str], needle: str) -> None:
    BATTERY[f"cli: {name}"] = lambda tmp: ([a.replace("{tmp}", str(tmp)) for a in argv], needle.replace("{tmp}", str(tmp)))


# --- command lines -----------------------------------------------------------------------------------

for _name, _argv, _needle in [
    ("max-cases 0", ["run", "--max-cases", "0"], "--max-cases"),
    ("max-cases word", ["run", "--max-cases", "many"], "--max-cases"),
    ("negative seed", ["run", "--seed", "-3"], "--seed"),
    ("fractional seed", ["run", "--seed", "1.5"], "--seed"),
    ("unknown profile", ["run", "--profile", "keras9"], "--profile"),
    ("unknown option", ["run", "--bogus"], "--bogus"),
    ("unknown command", ["frobnicate"], "frobnicate"),
    ("no command", [], "command"),
    ("negative workers", ["run", "--workers", "-1"], "--workers"),
    ("a worker count no machine here holds", ["run", "--workers", "100000"], "4 per core"),
    ("zero timeout", ["run", "--timeout", "0"], "--timeout"),
    ("nan timeout", ["run", "--timeout", "nan"], "--timeout"),
    ("word timeout", ["run", "--timeout", "soon"], "--timeout"),
    ("shard 0/2", ["run", "--shard", "0/2"], "--shard"),
    ("shard 3/2", ["run", "--shard", "3/2"], "--shard"),
    ("shard word", ["run", "--shard", "half"], "--shard"),
    ("shard 1/0", ["run", "--shard", "1/0"], "--shard"),
    ("select matching nothing", ["run", "--select", "no-such-case/*", "--out", "{tmp}/o"], "--select 'no-such-case/*'"),
    ("select given twice", ["run", "--select", "a*", "--select", "b*"], "--select given twice"),
    ("seed given twice", ["run", "--seed", "1", "--seed", "2"], "--seed given twice"),
    ("out given twice", ["compare", "a", "b", "--out", "x", "--out", "y"], "--out given twice"),
    ("cases select '['", ["cases", "--select", "["], "--select '['"),
    ("cases word seed", ["cases", "--seed", "x"], "--seed"),
    ("compare one file", ["compare", "only-one"], "NEW"),
    ("merge nothing", ["merge"], "DIR"),
    ("fuzz zero examples", ["fuzz", "--examples", "0"], "--examples"),
    ("replay nothing", ["replay"], "FILE"),
    ("replay zero size limit", ["replay", "x.json", "--max-case-bytes", "0"], "--max-case-bytes"),
    ("compare zero rows", ["compare", "a", "b", "--max-rows", "0"], "--max-rows"),
    ("factory without colon", ["run", "--loss-factory", "nocolon", "--out", "{tmp}/o"], "--loss-factory"),
    ("factory without module", ["run", "--loss-factory", ":f", "--out", "{tmp}/o"], "--loss-factory"),
    ("factory without function", ["run", "--loss-factory", "mod:", "--out", "{tmp}/o"], "--loss-factory"),
    ("factory module missing", ["run", "--loss-factory", "no_such_module_bce:f", "--out", "{tmp}/o"], "no_such_module_bce"),
    ("factory relative name", ["run", "--loss-factory", "..up:f", "--out", "{tmp}/o"], "--loss-factory"),
    ("factory parent missing", ["run", "--loss-factory", "no_such_pkg_bce.sub:f", "--out", "{tmp}/o"], "no_such_pkg_bce"),
    ("resume and force", ["run", "--resume", "--force", "--out", "{tmp}/o"], "--force"),
    ("resume with nothing to resume", ["run", "--resume", "--select", "special/*", "--out", "{tmp}/o"], "{tmp}/o"),
    ("registry missing", ["run", "--registry", "/nonexistent/registry.toml"], "/nonexistent/registry.toml"),
    ("special cases missing", ["run", "--special-cases", "/nonexistent/special.toml"], "/nonexistent/special.toml"),
    ("case file missing", ["replay", "/nonexistent/case.json"], "/nonexistent/case.json"),
    ("folder without cases", ["replay", "{tmp}"], "{tmp}"),
    ("fuzz with keras2", ["fuzz", "--profile", "keras2"], "keras2"),
    ("results missing", ["compare", "/nonexistent/a.json", "/nonexistent/b.json"], "/nonexistent/b.json"),
    ("stream missing", ["merge", "/nonexistent/shard", "--out", "{tmp}/m"], "/nonexistent/shard"),
    ("run out under /proc", ["run", "--out", "/proc/bce-harness-out", "--select", "special/*"], "/proc/bce-harness-out"),
]:
    _cli(_name, _argv, _needle)


def _afile(tmp: Path) -> Path:
    (tmp / "afile").write_text("x")
    return tmp / "afile"


def _good_results(tmp: Path, name: str = "good.json") -> Path:
    return write_results(tmp / name, results([record("special/a"), record("special/b", agrees=False)]))


BATTERY["path: run --out is a file"] = lambda tmp: (["run", "--out", str(_afile(tmp))], str(tmp / "afile"))
BATTERY["path: run --out under a file"] = lambda tmp: (
    ["run", "--out", str(_afile(tmp) / "o"), "--select", "special/*"], str(tmp / "afile"))  # fmt: skip
BATTERY["path: compare --out under a file"] = lambda tmp: (
    ["compare", str(_good_results(tmp)), str(_good_results(tmp)), "--out", str(_afile(tmp) / "o")], str(tmp / "afile"))  # fmt: skip
BATTERY["path: compare --out in /proc"] = lambda tmp: (
    ["compare", str(_good_results(tmp)), str(_good_results(tmp)), "--out", "/proc/bce-harness"], "/proc/bce-harness")  # fmt: skip
BATTERY["path: merge --out under a file"] = lambda tmp: (
    ["merge", *map(str, write_shards(tmp, 2)), "--out", str(_afile(tmp) / "o")], str(tmp / "afile"))  # fmt: skip

BATTERY["path: merge --out holding another run"] = lambda tmp: (
    (lambda d, other: ["merge", *map(str, d), "--out", str(other)])(write_shards(tmp / "a", 2), write_shards(tmp / "b", 1)[0]),
    str(tmp / "b" / "shard1"),
)  # fmt: skip
BATTERY["path: replay --out holding a run"] = lambda tmp: (
    ["replay", str(write_case(tmp / "case.json", CASE)), "--out", str(write_shards(tmp, 1)[0])], str(tmp / "shard1"))  # fmt: skip
BATTERY["path: compare --out holding a run's reports"] = lambda tmp: (
    ["compare", str(_good_results(tmp)), str(_good_results(tmp, "run/results.json")), "--out", str(tmp / "run")], str(tmp / "run"))  # fmt: skip
BATTERY["path: fuzz --out under a file"] = lambda tmp: (["fuzz", "--out", str(_afile(tmp) / "o")], str(tmp / "afile"))
BATTERY["path: fuzz --regressions under a file"] = lambda tmp: (
    ["fuzz", "--out", str(tmp / "o"), "--regressions", str(_afile(tmp) / "r")], "--regressions")  # fmt: skip


# --- case files (replay) -----------------------------------------------------------------------------


def _case(name: str, data, *extra: str) -> None:
    def build(tmp: Path) -> tuple[list[str], str]:
        path = tmp / "case.json"
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data if isinstance(data, str) else json.dumps(data))
        return ["replay", str(path), "--out", str(tmp / "o"), *extra], str(path)

    BATTERY[f"case file: {name}"] = build


def _with(**fields) -> dict:
    return {**CASE, **fields}


def _options(**fields) -> dict:
    return {**CASE, "options": {**CASE["options"], **fields}}


_PRED = json.dumps(CASE)
for _name, _data, *_extra in [
    ("not JSON", "{"),
    ("empty", ""),
    ("an array", "[]"),
    ("a string", '"case"'),
    ("bare NaN", _PRED.replace("0.25", "NaN")),
    ("bare Infinity", _PRED.replace("0.25", "Infinity")),
    ("1e400", _PRED.replace("0.25", "1e400")),
    ("-1e400", _PRED.replace("0.25", "-1e400")),
    ("true in float data", _PRED.replace("0.25", "true")),
    ("booleans and numbers in a list", _with(y_true=[[True, 1]])),
    ("boolean weight", _with(sample_weight=True)),
    ("boolean predictions", _with(y_pred=[[True, False]])),
    ("boolean labels of a float dtype", _with(y_true=[[True, False]])),
    ("no y_pred", {k: v for k, v in CASE.items() if k != "y_pred"}),
    ("no options", {k: v for k, v in CASE.items() if k != "options"}),
    ("unknown field", _with(colour="red")),
    ("numeric id", _with(id=5)),
    ("empty id", _with(id="")),
    ("unknown true_dtype", _with(true_dtype="float8")),
    ("integer pred_dtype", _with(pred_dtype="int32")),
    ("options a string", _with(options="none")),
    ("unknown option", _options(colour="red")),
    ("boolean label_smoothing", _options(label_smoothing=True)),
    ("string from_logits", _options(from_logits="yes")),
    ("string axis", _options(axis="last")),
    ("numeric reduction", _options(reduction=3)),
    ("unknown loss dtype", _options(dtype="float8")),
    ("infinite label_smoothing", _PRED.replace('"label_smoothing": 0.0', '"label_smoothing": "inf"')),
    ("shape and data disagree", _with(y_pred={"shape": [1, 3], "data": [0.25, 0.5]})),
    ("negative size", _with(y_pred={"shape": [-1], "data": []})),
    ("shape a string", _with(y_pred={"shape": "1x2", "data": [0.25, 0.5]})),
    ("complex dtype", _with(y_pred={"dtype": "complex", "shape": [2], "data": [0.25, 0.5]})),
    ("NaN spelled NaN", _with(y_pred={"shape": [2], "data": ["NaN", 0.5]})),
    ("b64 not base64", _with(y_pred={"dtype": "float64", "shape": [2], "b64": "***"})),
    ("b64 of the wrong size", _with(y_pred={"dtype": "float64", "shape": [2], "b64": "AAAA"})),
    ("b64 with extra keys", _with(y_pred={"dtype": "float64", "shape": [2], "b64": "", "data": []})),
    ("ragged list", _with(y_true=[[1], [1, 0]])),
    ("strings in a list", _with(y_true=[["a", "b"]])),
    ("not representable in float16", _with(pred_dtype="float16", y_pred={"shape": [2], "data": [0.1, 0.5]})),
    ("unknown api", _with(api="bogus")),
    ("unknown mode", _with(mode="interpreted")),
    ("code as producer", _with(producer="__import__('os').system")),
    ("unknown grad", _with(grad="y_true")),
    ("integer mask", _with(mask=[1, 0])),
    ("tags a list", _with(tags=["a"])),
    ("a tag that is a number", _with(tags={"family": 3})),
    ("finding a string", _with(finding="found")),
    ("weights of an integer dtype", _with(sample_weight=[1.0], weight_dtype="int8")),
    ("nested too deeply", "[" * 100_000 + "]" * 100_000),
    ("not UTF-8", b"\xff\xfe{}"),
    ("over the size limit", _PRED + " " * 200, "--max-case-bytes", "100"),
]:
    _case(_name, _data, *_extra)


# --- registries (run --registry) ---------------------------------------------------------------------

_ENTRY = '[[divergence]]\nid = "x"\ntitle = "t"\nreason = "r"\nevidence = ["e"]\nkinds = ["nan_inf"]\n[divergence.match]\nshape = "BC"\n'


def _registry(name: str, text: str | bytes | None) -> None:
    def build(tmp: Path) -> tuple[list[str], str]:
        path = tmp / "registry.toml"
        if text is None:
            path.mkdir()
        elif isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return ["run", "--registry", str(path), "--out", str(tmp / "o")], str(path)

    BATTERY[f"registry: {name}"] = build


for _name, _text in [
    ("not TOML", "[[divergence]\n"),
    ("not UTF-8", b"\xff\xfe"),
    ("a special-case table", DEFAULT_SPECIAL_CASES.read_text()),
    ("unknown top-level key", "colour = 'red'\n"),
    ("divergence a number", "divergence = 3\n"),
    ("divergence entry a number", "divergence = [1]\n"),
    ("no title", _ENTRY.replace('title = "t"\n', "")),
    ("empty id", _ENTRY.replace('id = "x"', 'id = ""')),
    ("unknown field", _ENTRY.replace('title = "t"', 'title = "t"\ncolour = "red"')),
    ("empty evidence", _ENTRY.replace('evidence = ["e"]', "evidence = []")),
    ("unknown kind", _ENTRY.replace('kinds = ["nan_inf"]', 'kinds = ["weird"]')),
    ("no match", _ENTRY.split("[divergence.match]")[0]),
    ("unknown match key", _ENTRY.replace('shape = "BC"', 'colour = "red"')),
    ("bad versions", _ENTRY.replace('id = "x"', 'id = "x"\nversions = "newest"')),
    ("an id twice", _ENTRY + _ENTRY),
    ("1e400", _ENTRY.replace('shape = "BC"', "label_smoothing = 1e400")),
    ("bare nan", _ENTRY.replace('shape = "BC"', "label_smoothing = nan")),
    ("a folder", None),
    ("nested too deeply", "x = " + "[" * 5000 + "]" * 5000 + "\n"),
]:
    _registry(_name, _text)


# --- special-case tables (cases --special-cases) -----------------------------------------------------

_SPECIAL = '[[case]]\nid = "a"\ny_true = [[1.0]]\ny_pred = [[0.5]]\n'


def _special(name: str, text: str | None) -> None:
    def build(tmp: Path) -> tuple[list[str], str]:
        path = tmp / "special.toml"
        if text is None:
            path.mkdir()
        else:
            path.write_text(text)
        return ["cases", "--special-cases", str(path)], str(path)

    BATTERY[f"special cases: {name}"] = build


for _name, _text in [
    ("a registry", DEFAULT_REGISTRY.read_text()),
    ("empty", ""),
    ("not TOML", "[[case]\n"),
    ("unknown top-level key", "colour = 'red'\n" + _SPECIAL),
    ("case a number", "case = 3\n"),
    ("case entry a number", "case = [1]\n"),
    ("no y_true", _SPECIAL.replace("y_true = [[1.0]]\n", "")),
    ("unknown field", _SPECIAL + "colour = 'red'\n"),
    ("NaN spelled NaN", _SPECIAL.replace("[[0.5]]", '[["NaN"]]')),
    ("a boolean value", _SPECIAL.replace("[[1.0]]", "[[true]]")),
    ("1e400", _SPECIAL.replace("[[0.5]]", "[[1e400]]")),
    ("bare inf", _SPECIAL.replace("[[0.5]]", "[[inf]]")),
    ("unknown dtype", _SPECIAL + 'dtype = "float8"\n'),
    ("numeric id", _SPECIAL.replace('id = "a"', "id = 1")),
    ("ragged", _SPECIAL.replace("[[0.5]]", "[[0.5], [0.5, 0.5]]")),
    ("string from_logits", _SPECIAL + 'from_logits = "yes"\n'),
    ("a folder", None),
]:
    _special(_name, _text)


# --- record streams (merge) --------------------------------------------------------------------------


def _stream(name: str, edit: Callable[[list[str]], list[str]] | str | bytes) -> None:
    def build(tmp: Path) -> tuple[list[str], str]:
        (d,) = write_shards(tmp, 1)
        path = d / "records.jsonl"
        if isinstance(edit, bytes):
            path.write_bytes(edit)
        elif isinstance(edit, str):
            path.write_text(edit)
        else:
            path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
        return ["merge", str(d), "--out", str(tmp / "m")], str(d)  # the file, or its folder where the merge is at fault

    BATTERY[f"stream: {name}"] = build


def _header(**meta) -> Callable[[list[str]], list[str]]:
    def edit(lines: list[str]) -> list[str]:
        head = json.loads(lines[0])
        head.update(meta.get("_head", {}))
        head["meta"] = {**head["meta"], **{k: v for k, v in meta.items() if k != "_head"}}
        return [json.dumps(head), *lines[1:]]

    return edit


def _line(change: Callable[[dict], object]) -> Callable[[list[str]], list[str]]:
    """``change`` edits the first record in place."""

    def edit(lines: list[str]) -> list[str]:
        d = json.loads(lines[1])
        change(d)
        return [lines[0], json.dumps(d), *lines[2:]]

    return edit


for _name, _edit in [
    ("empty", ""),
    ("line 1 not JSON", "stream\n"),
    ("header a list", "[1, 2]\n"),
    ("a results.json", json.dumps({"meta": {"format_version": 2}, "records": []}) + "\n"),
    ("version 99", _header(_head={"stream": 99})),
    ("meta a list", lambda lines: [json.dumps({"stream": 2, "meta": []}), *lines[1:]]),
    ("unknown profile", _header(profile="keras9")),
    ("shard out of range", _header(shard=[0, 1])),
    ("shard a string", _header(shard="1/1")),
    ("a record not JSON", lambda lines: [lines[0], "{not json", *lines[2:]]),
    ("a record a list", lambda lines: [lines[0], "[1]", *lines[2:]]),
    ("a record without its case", _line(lambda d: d.pop("case"))),
    ("a record without a comparison", _line(lambda d: d.pop("comparison"))),
    ("a record with a bad array", _line(lambda d: d["case"]["y_pred"].update(b64="***"))),
    ("a record with bare NaN", lambda lines: [lines[0], lines[1].replace('"seconds":', '"seconds":NaN,"x":'), *lines[2:]]),
    ("a record with an unknown api", _line(lambda d: d["case"].update(api="os.system"))),
    ("a record with a number as comparison", _line(lambda d: d.update(comparison=3))),
    ("not UTF-8", b"\xff\xfe\n"),
    ("interrupted", lambda lines: lines[:-1]),
]:
    _stream(_name, _edit)


def _merge(name: str, build: Callable[[Path], tuple[list[Path], str]]) -> None:
    def run(tmp: Path) -> tuple[list[str], str]:
        dirs, needle = build(tmp)
        return ["merge", *map(str, dirs), "--out", str(tmp / "m")], needle

    BATTERY[f"merge: {name}"] = run


_merge("a shard missing", lambda tmp: (write_shards(tmp, 3)[:2], "3/3 missing"))
_merge("a shard twice", lambda tmp: ((lambda d: [d[0], d[0], d[1]])(write_shards(tmp, 2)), "shard 1/2"))
_merge("seeds differ", lambda tmp: ([write_shards(tmp / "a", 2)[0], write_shards(tmp / "b", 2, seed=9)[1]], "seed: 1 -> 9"))
_merge("N differs", lambda tmp: ([write_shards(tmp / "a", 2)[0], write_shards(tmp / "b", 3)[1]], "whole_suite"))
_merge("a whole run beside a shard", lambda tmp: ([write_shards(tmp / "a", 1, ids_per_shard=4, shard=None)[0], write_shards(tmp / "b", 2)[1]], "whole run"))
_merge("registries differ", lambda tmp: ([write_shards(tmp / "a", 2)[0], write_shards(tmp / "b", 2, registry_sha="0")[1]], "registry_sha"))
BATTERY["merge: --out is an input"] = lambda tmp: (
    (lambda d: ["merge", *map(str, d), "--out", str(d[0])])(write_shards(tmp, 2)), "--out")  # fmt: skip
BATTERY["merge: --out is an input's stream folder, spelled differently"] = lambda tmp: (
    (lambda d: ["merge", *map(str, d), "--out", str(d[1] / ".." / d[1].name)])(write_shards(tmp, 2)), "--out")  # fmt: skip


# --- results files (compare) -------------------------------------------------------------------------


def _results(name: str, change: Callable[[dict], object] | str, *extra: str, needle: str | None = None) -> None:
    def build(tmp: Path) -> tuple[list[str], str]:
        good = _good_results(tmp)
        bad = tmp / "bad.json"
        if isinstance(change, str):
            bad.write_text(change)
        else:
            data = json.loads(good.read_text())
            change(data)  # in place
            bad.write_text(json.dumps(data))
        return ["compare", str(good), str(bad), *extra], needle or str(bad)

    BATTERY[f"results: {name}"] = build


def _rec(**fields) -> Callable[[dict], None]:
    return lambda d: d["records"][0].update(fields)


for _name, _change, *_extra in [
    ("not JSON", "{"),
    ("an array", "[]"),
    ("no meta", lambda d: d.pop("meta")),
    ("records an object", lambda d: d.update(records={})),
    ("format_version 1", lambda d: d["meta"].update(format_version=1)),
    ("format_version 99", lambda d: d["meta"].update(format_version=99)),
    ("format_version a string", lambda d: d["meta"].update(format_version="2")),
    ("format_version missing", lambda d: d["meta"].pop("format_version")),
    ("unknown status", _rec(status="weird")),
    ("numeric status", _rec(status=3)),
    ("a record a string", lambda d: d["records"].__setitem__(0, "record")),
    ("a record without id", lambda d: d["records"][0].pop("id")),
    ("an id twice", lambda d: d["records"].append(dict(d["records"][0]))),
    ("tags a list", _rec(tags=["special"])),
    ("options a list", _rec(options=[])),
    ("string from_logits", lambda d: d["records"][0]["options"].update(from_logits="no")),
    ("actual of the wrong size", _rec(actual={"shape": [3], "data": [1.0]})),
    ("actual_error a number", _rec(actual_error=3)),
    ("environment a list", lambda d: d["meta"].update(environment=[])),
    ("seed a string", lambda d: d["meta"].update(seed="1")),
    ("loss_factory a number", lambda d: d["meta"].update(loss_factory=3)),
    ("a subset", lambda d: d["records"].pop()),
    ("totals a list", lambda d: d.update(totals=[])),
    ("totals holding markup", lambda d: d["totals"].update(fail="<script>")),
    # issue 25: every field of its type and range, whether compare reads it or not, and shapes before allocation
    ("an empty array of shape [0, 2**64]", _rec(actual={"shape": [0, 2**64], "data": []})),
    ("a 4,000-digit max_ulp", _rec(max_ulp=int("9" * 4000))),
    ("a negative max_ulp", _rec(max_ulp=-1)),
    ("max_abs a list", _rec(max_abs=[1])),
    ("api a number", _rec(api=3)),
    ("mode a number", _rec(mode=3)),
    ("shape a string", _rec(shape="2x1")),
    ("preview a string", _rec(preview="0.5")),
    ("evidence a list", _rec(evidence=[])),
    ("training a string", _rec(training="fit")),
    ("config with an unknown setting", _rec(config={"colour": "red"})),
    ("an unknown option", lambda d: d["records"][0]["options"].update(colour="red")),
    ("harness_version a number", lambda d: d["meta"].update(harness_version=3)),
    ("interrupted a string", lambda d: d["meta"].update(interrupted="no")),
    ("target holding a table", lambda d: d["meta"].update(target={"keras": {"a": 1}})),
    ("a 4,000-digit seed", lambda d: d["meta"].update(seed=int("9" * 4000))),
    ("findings an object", lambda d: d.update(findings={})),
    ("a failing record's y_pred undecodable", lambda d: d["records"][1].update(y_pred={"shape": [2], "data": ["x", 1]})),
]:
    _results(_name, _change, *_extra)
BATTERY["results: 1e400"] = lambda tmp: (
    (lambda p: (p.write_text(p.read_text().replace('"seed": 1', '"seed": 1e400')), ["compare", str(p), str(p)])[1])(_good_results(tmp)),
    str(tmp / "good.json"),
)  # fmt: skip
BATTERY["results: bare NaN"] = lambda tmp: (
    (lambda p: (p.write_text(p.read_text().replace('"seed": 1', '"seed": NaN')), ["compare", str(p), str(p)])[1])(_good_results(tmp)),
    str(tmp / "good.json"),
)  # fmt: skip
BATTERY["results: seeds differ"] = lambda tmp: (
    ["compare", str(_good_results(tmp)), str(write_results(tmp / "s.json", results([record("special/a")], seed=2)))], "different seeds")  # fmt: skip
BATTERY["results: a folder without results.json"] = lambda tmp: (["compare", str(tmp), str(tmp)], str(tmp))
BATTERY["results: a record stream"] = lambda tmp: (
    (lambda d: ["compare", str(d / "records.jsonl"), str(d / "records.jsonl")])(write_shards(tmp, 1)[0]), "records.jsonl")  # fmt: skip
BATTERY["results: --out regression of a record without inputs"] = lambda tmp: (
    (lambda g, data: (data["records"][1].pop("y_pred"), ["compare", str(g), str(write_results(tmp / "x.json", data)), "--out", str(tmp / "o")])[1])(
        write_results(tmp / "g.json", results([record("special/a"), record("special/b")])), results([record("special/a"), record("special/b", agrees=False)])),
    "special/b",
)  # fmt: skip


def _beside(tmp: Path, audit: str | bytes) -> tuple[list[str], str]:
    """Two runs' folders, a good audit.json beside BASE and ``audit`` beside NEW."""
    for side in ("base", "new"):
        _good_results(tmp, f"{side}/results.json")
        text = audit if side == "new" else json.dumps({"rows": [{"group": "g", "n": 1, "max_ulp": 1}]})
        (tmp / side / "audit.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    return ["compare", str(tmp / "base"), str(tmp / "new")], str(tmp / "new" / "audit.json")


for _name, _audit in [
    ("nested too deeply", '{"rows": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ("bare NaN", '{"rows": [{"group": "g", "n": 1, "mean_ulp": NaN}]}'),
    ("1e400", '{"rows": [{"group": "g", "n": 1, "mean_ulp": 1e400}]}'),
    ("not UTF-8", b'{"rows": [{"group": "\xff"}]}'),
    ("a row without its group", '{"rows": [{"n": 1}]}'),
    ("a group a number", '{"rows": [{"group": 3}]}'),
    ("a 4,000-digit max_ulp", '{"rows": [{"group": "g", "max_ulp": ' + "9" * 4000 + "}]}"),
    ("a count a string", '{"rows": [{"group": "g", "n": "1"}]}'),
    ("a newer format_version", '{"format_version": 99, "rows": []}'),
    ("a format_version a string", '{"format_version": "1", "rows": []}'),
]:
    BATTERY[f"audit beside compare: {_name}"] = lambda tmp, a=_audit: _beside(tmp, a)

for _name, _edit in [
    ("an empty array of shape [0, 2**64]", _line(lambda d: d["case"].update(y_pred={"shape": [0, 2**64], "data": []}))),
    ("a packed array of shape [0, 2**64]", _line(lambda d: d["case"].update(y_pred={"dtype": "float64", "shape": [0, 2**64], "b64": ""}))),
    ("a 4,000-digit max_ulp", _line(lambda d: d["comparison"].update(max_ulp=int("9" * 4000)))),
    ("mismatched a string", _line(lambda d: d["comparison"].update(mismatched="1"))),
    ("a message a list", _line(lambda d: d["comparison"].update(message=["x"]))),
    ("a note a number", _line(lambda d: d.update(note=3))),
    ("an unknown status", _line(lambda d: d.update(status="weird"))),
    ("an outcome dtype a number", _line(lambda d: d["outcome"].update(dtype=32))),
    ("a 4,000-digit outcome seconds", _line(lambda d: d["outcome"].update(seconds=int("9" * 4000)))),
    ("an unknown field", _line(lambda d: d.update(colour="red"))),
    ("header seed a string", _header(seed="1")),
    ("header size negative", _header(size=-1)),
]:
    _stream(_name, _edit)

for _name, _data in [
    ("an empty array of shape [0, 2**64]", _with(y_pred={"shape": [0, 2**64], "data": []})),
    ("an array of 40 dimensions", _with(y_pred={"shape": [1] * 40, "data": [0.5]})),
    ("finding seed a string", _with(finding={"fingerprint": "f", "seed": "7"})),
    ("finding without its fingerprint's type", _with(finding={"fingerprint": 3})),
    ("row_lengths a string", _with(row_lengths="1,1")),
    ("a 4,000-digit row length", _with(row_lengths=[int("9" * 4000)])),
]:
    _case(_name, _data)

for _name, _text in [
    ("a 4,000-digit label", _SPECIAL.replace("[[1.0]]", "[[" + "9" * 4000 + "]]")),
    ("note a number", _SPECIAL + "note = 3\n"),
    ("expect a table", _SPECIAL + "expect = {a = 1}\n"),
    ("label_smoothing a string", _SPECIAL + 'label_smoothing = "0.1"\n'),
]:
    _special(_name, _text)

for _name, _text in [
    ("a table as a match value", _ENTRY.replace('shape = "BC"', "shape = {a = 1}")),
    ("a 4,000-digit match value", _ENTRY.replace('shape = "BC"', "size = " + "9" * 4000)),
]:
    _registry(_name, _text)


def test_the_battery_is_at_least_a_hundred() -> None:
    assert len(BATTERY) >= 100, len(BATTERY)


@pytest.mark.parametrize("name", sorted(BATTERY))
def test_a_malformed_input_is_exit_2_with_one_line_naming_it(name: str, tmp_path: Path, capsys) -> None:
    argv, needle = BATTERY[name](tmp_path)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("bce-harness: error: ") and "Traceback" not in err, err
    assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize("name", ["case file: nested too deeply", "stream: version 99", "results: unknown status", "cli: select given twice"])
def test_a_real_process_says_the_same(name: str, tmp_path: Path) -> None:
    argv, needle = BATTERY[name](tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *argv],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_compare_stops_before_printing_when_a_regression_cannot_be_reproduced(tmp_path: Path, capsys) -> None:
    argv, needle = BATTERY["results: --out regression of a record without inputs"](tmp_path)
    capsys.readouterr()
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and needle in err, (out, err)  # nothing half printed
    assert not (tmp_path / "o" / "regressions").exists()  # and no empty regressions/


def test_a_full_disk_names_the_file(tmp_path: Path, monkeypatch) -> None:
    import errno

    from harness.jsonio import atomic_write_text
    from harness.run.stream import RecordStream

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as info:
        atomic_write_text(tmp_path / "report.md", "x")
    assert info.value.filename == str(tmp_path / "report.md")
    stream = RecordStream(tmp_path, {"seed": 1})
    with pytest.raises(OSError) as info:
        stream.close()
    assert info.value.filename == str(tmp_path / "records.jsonl")


@pytest.mark.parametrize("tail", [b"", b'{"torn', b"x" * 200_000])
def test_resume_cuts_a_torn_line_reading_only_the_tail(tmp_path: Path, tail: bytes) -> None:
    from harness.run.stream import RecordStream

    path = tmp_path / "records.jsonl"
    whole = b'{"stream": 2, "meta": {}}\n' + b'{"a": 1}\n' * 1000
    path.write_bytes(whole + tail)
    RecordStream(tmp_path, {}, append=True).close()
    assert path.read_bytes() == whole
