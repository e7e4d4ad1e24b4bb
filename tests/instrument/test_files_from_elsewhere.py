"""Issue 13's deviations, one test each: nothing replaced or dropped without a word, user mistakes exit 2,
reproductions that follow the record, text from other jobs' files kept as data."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from artifacts import PROVENANCE_META, record, results, write_results, write_shards

from harness.cli import main
from harness.report.drift import MAX_FORMAT
from harness.report.summary import FORMAT_VERSION
from harness.run.stream import record_to_json

REPO = Path(__file__).resolve().parents[2]
INJECTED = "ValueError: x\nimport pathlib; pathlib.Path('PWNED').touch()\n"


def _one_error_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bce-harness: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _statements_of(source: str) -> list[str]:
    return [type(node).__name__ + ":" + ast.unparse(node)[:40] for node in ast.parse(source).body]


# --- code injection through merge and compare --out ---------------------------------------------------


def test_merge_keeps_an_error_message_from_a_shard_as_data(tmp_path: Path, capsys) -> None:
    (d,) = write_shards(tmp_path, 1)
    lines = (d / "records.jsonl").read_text().splitlines()
    line = record_to_json(record(json.loads(lines[1])["case"]["id"], error=INJECTED))
    lines[1] = json.dumps(line)
    (d / "records.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["merge", str(d), "--out", str(tmp_path / "merged"), "--quiet"]) == 1
    (script,) = (tmp_path / "merged" / "repro").glob("*.py")
    source = script.read_text()
    assert not any("pathlib" in s and not s.startswith("Assign") for s in _statements_of(source))
    assert INJECTED in [n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant)]
    report = (tmp_path / "merged" / "report.md").read_text()
    for block in report.split("```python\n")[1:]:
        assert not any("pathlib" in s and not s.startswith("Assign") for s in _statements_of(block.split("\n```", 1)[0]))


def test_compare_out_keeps_an_error_message_from_results_as_data(tmp_path: Path, capsys) -> None:
    base = write_results(tmp_path / "base" / "results.json", results([record("special/a")]))
    new = write_results(tmp_path / "new" / "results.json", results([record("special/a", error=INJECTED)]))
    assert main(["compare", str(base), str(new), "--out", str(tmp_path / "drift")]) == 1
    (body,) = (tmp_path / "drift" / "regressions").glob("*.md")
    text = body.read_text()
    block = text.split("```python\n", 1)[1].split("\n```", 1)[0]
    assert not any("pathlib" in s and not s.startswith("Assign") for s in _statements_of(block))


# --- nothing replaced or dropped ----------------------------------------------------------------------


def test_run_refuses_an_out_holding_another_runs_stream(tmp_path: Path, capsys) -> None:
    (d,) = write_shards(tmp_path, 1)
    before = (d / "records.jsonl").read_bytes()
    assert main(["run", "--out", str(d), "--select", "special/*"]) == 2
    _one_error_line(capsys, str(d), "--resume", "--force", "2 records")
    assert (d / "records.jsonl").read_bytes() == before
    # --force passes that door (and then stops at the next mistake, before anything is written)
    assert main(["run", "--out", str(d), "--force", "--select", "no-such/*"]) == 2
    _one_error_line(capsys, "--select 'no-such/*' matches no case")
    assert main(["run", "--out", str(d), "--force", "--resume"]) == 2
    _one_error_line(capsys, "--resume", "--force")


def test_merge_joins_complete_shards(tmp_path: Path, capsys) -> None:
    dirs = write_shards(tmp_path, 3)
    assert main(["merge", *map(str, dirs), "--out", str(tmp_path / "merged"), "--quiet"]) == 0
    data = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert len(data["records"]) == 6


def test_merge_refuses_a_missing_shard(tmp_path: Path, capsys) -> None:
    dirs = write_shards(tmp_path, 3)
    assert main(["merge", str(dirs[0]), str(dirs[2]), "--out", str(tmp_path / "m")]) == 2
    _one_error_line(capsys, "2/3 missing")
    assert not (tmp_path / "m").exists()


def test_merge_refuses_an_out_among_its_inputs(tmp_path: Path, capsys) -> None:
    dirs = write_shards(tmp_path, 2)
    before = sorted(p.name for p in dirs[1].iterdir())
    assert main(["merge", *map(str, dirs), "--out", str(dirs[1])]) == 2
    _one_error_line(capsys, "--out", str(dirs[1]))
    assert sorted(p.name for p in dirs[1].iterdir()) == before


@pytest.mark.parametrize(
    "header, needle",
    [({"seed": 2}, "seed: 1 -> 2"), ({"registry_sha": "0" * 16}, "registry_sha"), ({"whole_suite": "x"}, "whole_suite"),
     ({"loss_factory": "m:f"}, "loss_factory")],
)  # fmt: skip
def test_merge_refuses_shards_of_different_runs(tmp_path: Path, capsys, header: dict, needle: str) -> None:
    a = write_shards(tmp_path / "a", 2)
    b = write_shards(tmp_path / "b", 2, **header)
    assert main(["merge", str(a[0]), str(b[1]), "--out", str(tmp_path / "m")]) == 2
    _one_error_line(capsys, needle)


def test_merge_refuses_an_interrupted_shard(tmp_path: Path, capsys) -> None:
    dirs = write_shards(tmp_path, 2)
    stream = dirs[0] / "records.jsonl"
    stream.write_text("\n".join(stream.read_text().splitlines()[:-1]) + "\n")
    assert main(["merge", *map(str, dirs), "--out", str(tmp_path / "m")]) == 2
    _one_error_line(capsys, str(dirs[0]), "1 of its 2 records", "--resume")


def test_compare_names_the_cases_only_one_run_has(tmp_path: Path, capsys) -> None:
    both = [record("special/a"), record("special/b")]
    base = write_results(tmp_path / "b.json", results(both))
    new = write_results(tmp_path / "n.json", results(both[:1]))
    assert main(["compare", str(base), str(new)]) == 2
    _one_error_line(capsys, "1 cases only in BASE ('special/b')", "0 cases only in NEW", "--allow-subset")
    assert main(["compare", str(base), str(new), "--allow-subset"]) == 0
    assert "1 cases only in BASE ('special/b')" in capsys.readouterr().out


@pytest.mark.parametrize("version", [99, FORMAT_VERSION + 1, "2", 2.0, True])
def test_compare_refuses_a_format_it_does_not_know(tmp_path: Path, capsys, version) -> None:
    good = write_results(tmp_path / "good.json", results([record("special/a")]))
    data = results([record("special/a")])
    data["meta"]["format_version"] = version
    bad = write_results(tmp_path / "bad.json", data)
    assert main(["compare", str(good), str(bad)]) == 2
    _one_error_line(capsys, str(bad), "format_version")


def test_the_newest_format_compare_reads_is_the_one_run_writes() -> None:
    assert MAX_FORMAT == FORMAT_VERSION


# --- exit codes --------------------------------------------------------------------------------------


def test_a_results_file_with_an_unknown_status_is_exit_2(tmp_path: Path, capsys) -> None:
    data = results([record("special/a")])
    data["records"][0]["status"] = "weird"
    path = write_results(tmp_path / "r.json", data)
    assert main(["compare", str(path), str(path)]) == 2
    _one_error_line(capsys, str(path), "status='weird'")


def _unwritable_outs(tmp_path: Path) -> list[str]:
    afile = tmp_path / "afile"
    afile.write_text("x")
    outs = [str(afile / "under"), "/proc/bce-harness-out"]
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if not os.access(ro, os.W_OK):  # root writes anywhere
        outs.append(str(ro / "out"))
    return outs


def test_an_impossible_out_is_exit_2_for_compare(tmp_path: Path, capsys) -> None:
    path = write_results(tmp_path / "r.json", results([record("special/a")]))
    for out in _unwritable_outs(tmp_path):
        assert main(["compare", str(path), str(path), "--out", out]) == 2, out
        _one_error_line(capsys, out.split("/")[1])


def test_an_impossible_out_is_exit_2_for_run(tmp_path: Path, capsys) -> None:
    for out in _unwritable_outs(tmp_path):
        assert main(["run", "--out", out, "--select", "special/*", "--workers", "0"]) == 2, out
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "internal" not in err and out.split("/")[1] in err, err


@pytest.mark.parametrize(
    "module_text, spec, needle",
    [("x = 3\n", "fac_int:x", "not a function"), ("raise RuntimeError('boom')\n", "fac_boom:f", "boom"),
     ("y = 1\n", "fac_none:missing", "has no 'missing'"), ("def f(:\n", "fac_syntax:f", "SyntaxError")],
)  # fmt: skip
def test_a_loss_factory_that_does_not_import_or_call_is_exit_2(tmp_path, monkeypatch, capsys, module_text, spec, needle) -> None:
    (tmp_path / f"{spec.split(':')[0]}.py").write_text(module_text)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["run", "--out", str(tmp_path / "o"), "--select", "special/*", "--workers", "0", "--loss-factory", spec]) == 2
    _one_error_line(capsys, "--loss-factory", needle)


# --- reproductions follow the record -----------------------------------------------------------------


def _fake_fuzz(monkeypatch, tmp_path: Path) -> None:
    """fuzz without TensorFlow: a target that never runs, and a search that finds one divergence."""
    import harness.frameworks
    import harness.fuzz
    from harness.fuzz import Finding, FuzzResult

    class Target:
        def __init__(self, **kw) -> None:
            pass

        def versions(self) -> dict:
            return {"tensorflow": "2.x", "keras": "3.x"}

    r = record("special/x", agrees=False)
    finding = Finding("abc123abc123", r.case, r.expected, r.outcome, r.comparison)
    monkeypatch.setattr(harness.frameworks, "TFTarget", Target)
    monkeypatch.setattr(harness.fuzz, "fuzz", lambda *a, **k: FuzzResult((finding,), seed=k["seed"] or 5, examples=3, calls=1, seconds=0.0))


def test_fuzz_again_line_repeats_the_exact_run(tmp_path: Path, monkeypatch, capsys) -> None:
    _fake_fuzz(monkeypatch, tmp_path)
    (tmp_path / "my_fac.py").write_text("def make(options):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out, reg = tmp_path / "out dir", tmp_path / "regs"
    argv = ["fuzz", "--seed", "7", "--examples", "3", "--out", str(out), "--regressions", str(reg), "--loss-factory", "my_fac:make"]
    assert main(argv) == 1
    again = [line for line in capsys.readouterr().out.splitlines() if "again:" in line][0].split("again: ", 1)[1]
    import shlex

    words = shlex.split(again)
    assert words[0] == "bce-harness"
    for a, b in zip(argv[1::2], argv[2::2], strict=True):
        assert words[words.index(a) + 1] == b, a
    script = (out / "repro_abc123abc123.py").read_text()
    assert "LOSS_FACTORY = 'my_fac:make'" in script and script.startswith("# Made with --loss-factory")


def test_an_interrupted_runs_line_repeats_it_with_resume(tmp_path: Path, capsys) -> None:
    import argparse

    from harness.cli import _again

    args = argparse.Namespace(argv=["run", "--out", "a b", "--force", "--seed", "3"])
    assert _again(args, add=["--resume"], drop=["--force"]) == "bce-harness run --out 'a b' --seed 3 --resume"


@pytest.mark.tensorflow
def test_a_repro_made_with_a_loss_factory_reproduces_with_it(tmp_path: Path, tf_target) -> None:
    """Keras's loss agrees on this case; the factory's (twice Keras's) does not: the script must say so."""
    from harness.oracle import expected
    from harness.report.repro import snippet

    c = record("special/factory").case
    script = tmp_path / "repro.py"
    script.write_text(snippet(c, expected(c), loss_factory="planted:doubled"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1 and "DIVERGES" in proc.stdout, proc.stdout + proc.stderr


def test_the_factory_protocol_is_documented_with_an_example() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## A loss under test: --loss-factory", 1)[1].split("\n## ", 1)[0]
    assert "def make(options" in section and "Options" in section and "reproduc" in section


def test_a_malformed_audit_beside_the_results_is_exit_2(tmp_path: Path, capsys) -> None:
    for side in ("base", "new"):
        write_results(tmp_path / side / "results.json", results([record("special/a")]))
        (tmp_path / side / "audit.json").write_text('{"rows": [{"no group": 1}]}' if side == "new" else '{"groups": 3}')
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "new")]) == 2
    _one_error_line(capsys, "audit.json", str(tmp_path / "base"))


# --- every sink, fed every payload kind from a crafted previous-night folder -------------------------
# The nightly compares tonight's run with the previous night's artifacts, which come from elsewhere: each
# string a results.json or a shard's stream holds (versions, platform, CPU flags, environment, error texts,
# group names, divergence names, ids) is rendered here -- the Markdown through a CommonMark renderer, the
# terminal and log lines as a `cat -v` would show them -- and must stay inert.

PAYLOADS = {
    "markdown": "[click](https://evil.example/x) ![img](https://evil.example/i.png) **bold** <details><summary>s</summary>",
    "html comment": "x\n<!-- everything after this is hidden",
    "mention": "@evil-user @evil-org/team #1 www.evil.example",
    "escape sequence": "\x1b[2J\x1b[31mred\x1b]0;title\x07\rover\x08\x7f\x9b",
    "workflow command": "x\n::error file=a::pwned\r\n::add-mask::secret\n  ::set-output name=a::b",
    "bidi override": "abc\u202egnp.exe\u2066\u2069\u200f\u2028end",
    "10 MB string": "y" * 10_000_000,
}
_SENTINEL = "SENTINEL-AFTER-THE-STEP-SUMMARY"


def _payload_results(p: str, *, side: str) -> dict:
    """A results file of one case ``p``-id (passing in BASE, raising ``p`` in NEW), ``p`` in every string."""
    cid = "special/" + p[:200] if len(p) > 1000 else "special/" + p  # an id of 10 MB and one of 200 characters
    rec = record(cid, error=p) if side == "new" else record(cid)
    data = results([rec], tensorflow=p, keras=p, python=p, platform=p, cpu_flags=[p, "avx2"], environment={"FLAG": p})
    r = data["records"][0]
    r["tags"]["family"] = p
    if side == "new":
        r.update(kind=p, divergence=p, message=p)
    if len(p) > 1000:
        r["id"] = "special/" + p
    return data


def _rendered(markdown: str) -> tuple[str, list[str], str]:
    """The HTML of ``markdown`` (CommonMark with GitHub's tables), the tags it opened, and its text outside
    <code> and <pre>, where GitHub would link mentions, references and bare addresses."""
    from html.parser import HTMLParser

    from markdown_it import MarkdownIt

    page = MarkdownIt("commonmark").enable("table").render(markdown)

    class Reader(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.tags: list[str] = []
            self.depth = 0
            self.text: list[str] = []

        def handle_starttag(self, tag, attrs) -> None:
            self.tags.append(tag)
            self.depth += tag in ("code", "pre")

        def handle_endtag(self, tag) -> None:
            self.depth -= tag in ("code", "pre")

        def handle_comment(self, data) -> None:
            if not data.startswith(" bce-harness fingerprint: bce-"):  # the harness's own, which the nightly reads
                self.tags.append("!--")

        def handle_data(self, data) -> None:
            if not self.depth:
                self.text.append(data)

    reader = Reader()
    reader.feed(page)
    return page, reader.tags, "".join(reader.text)


def _assert_inert_markdown(markdown: str, name: str) -> None:
    assert len(markdown) < 2_000_000, (name, len(markdown))  # the 10 MB value is cut, not pasted
    page, tags, text = _rendered(markdown + "\n\n" + _SENTINEL + "\n")
    allowed = {"h1", "h2", "h3", "p", "ul", "ol", "li", "code", "pre", "strong", "em", "table", "thead", "tbody", "tr",
               "th", "td", "br", "hr"}  # fmt: skip
    assert set(tags) <= allowed, (name, set(tags) - allowed)  # no link, image, <details>, raw HTML or comment
    assert _SENTINEL in text, name  # nothing left open swallows what follows (the concatenated step summary)
    for needle in ("@evil", "#1", "evil.example", "\x1b", "\u202e", "\r"):
        assert needle not in text, (name, needle)


def _assert_inert_terminal(output: str, name: str) -> None:
    for line in output.split("\n"):
        assert not line.lstrip().startswith("::"), (name, line[:200])  # GitHub Actions: a workflow command
        bad = [ch for ch in line if not ch.isprintable()]
        assert not bad, (name, bad[:5], line[:200])  # `cat -v` would show each of these: ^[, ^M, M-^[ ...
        assert len(line) < 5000, (name, len(line))


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_compare_renders_a_crafted_previous_night_inert(tmp_path: Path, capsys, kind: str) -> None:
    p = PAYLOADS[kind]
    base = write_results(tmp_path / "previous" / "results.json", _payload_results(p, side="base"))
    new = write_results(tmp_path / "tonight" / "results.json", _payload_results(p, side="new"))
    for side in ("previous", "tonight"):  # the audit beside each folder, its group named by the file
        rows = [{"group": p if side == "tonight" else "g", "n": 1, "max_ulp": 1}]
        (tmp_path / side / "audit.json").write_text(json.dumps({"rows": rows}))
    capsys.readouterr()
    code = main(["compare", str(base.parent), str(new.parent), "--out", str(tmp_path / "drift")])
    out, err = capsys.readouterr()
    assert code == 1, (code, err[:500])
    _assert_inert_terminal(out + err, kind)
    bodies = list((tmp_path / "drift" / "regressions").glob("*.md"))
    assert bodies
    for body in bodies:
        text = body.read_text()
        _assert_inert_markdown(text, f"{kind}: {body.name}")
        title = text.split("\n", 1)[0]  # the title, as the nightly files it
        assert "\r" not in title and "\x1b" not in title and len(title) < 2000
    _assert_inert_markdown((tmp_path / "drift" / "summary.md").read_text(), f"{kind}: summary.md")


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_merge_renders_crafted_shards_inert(tmp_path: Path, capsys, kind: str) -> None:
    p = PAYLOADS[kind]
    dirs = write_shards(tmp_path, 2)
    lines = (dirs[0] / "records.jsonl").read_text().splitlines()
    line = json.loads(lines[1])
    line.update(record_to_json(record(json.loads(lines[1])["case"]["id"], error=p)))
    line["case"]["tags"]["family"] = p
    lines[1] = json.dumps(line)
    (dirs[0] / "records.jsonl").write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    code = main(["merge", *map(str, dirs), "--out", str(tmp_path / "merged")])
    out, err = capsys.readouterr()
    assert code == 1, (code, err[:500])
    _assert_inert_terminal(out + err, kind)
    _assert_inert_markdown((tmp_path / "merged" / "report.md").read_text(), f"{kind}: report.md")


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_an_error_line_holding_a_value_from_a_file_is_inert(tmp_path: Path, capsys, kind: str) -> None:
    data = results([record("special/a")])
    data["records"][0]["status"] = PAYLOADS[kind]
    path = write_results(tmp_path / "r.json", data)
    assert main(["compare", str(path), str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err[:500]
    _assert_inert_terminal(err, kind)


# --- merge keeps the shards' versions ------------------------------------------------------------------


def test_merge_carries_the_shards_versions_not_the_merging_machines(tmp_path: Path, capsys) -> None:
    dirs = write_shards(tmp_path, 2)
    assert main(["merge", *map(str, dirs), "--out", str(tmp_path / "m"), "--quiet"]) == 0
    meta = json.loads((tmp_path / "m" / "results.json").read_text())["meta"]
    assert {k: meta[k] for k in PROVENANCE_META} == PROVENANCE_META
    assert "`2.x`" in (tmp_path / "m" / "report.md").read_text()


@pytest.mark.parametrize(
    "field, value",
    [("tensorflow", "2.99.0"), ("keras", "3.99"), ("target", {"tensorflow": "2.99.0"}), ("python", "3.13.0"),
     ("numpy", "1.26.0"), ("platform", "Windows-11"), ("cpu_flags", ["avx512f"]), ("environment", {"TF_ENABLE_ONEDNN_OPTS": "0"})],
)  # fmt: skip
def test_merge_refuses_shards_that_ran_on_different_versions(tmp_path: Path, capsys, field: str, value) -> None:
    dirs = write_shards(tmp_path, 2)
    (dirs[1] / "provenance.json").write_text(json.dumps({**PROVENANCE_META, field: value}))
    assert main(["merge", *map(str, dirs), "--out", str(tmp_path / "m")]) == 2
    _one_error_line(capsys, str(dirs[1]), field, str(dirs[0]))
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "text, needle",
    [(None, "not found"), ("[1]", "not an object"), ('{"tensorflow": 2}', "tensorflow=2"), ('{"colour": "red"}', "colour"),
     ('{"cpu_flags": "avx2"}', "cpu_flags"), ('{"tensorflow": "' + "9" * 5000 + '"}', "tensorflow="), ("{", "not JSON"),
     ('{"target": {"keras_epsilon": NaN}}', "NaN"), ('{"target": {"keras_epsilon": 1e400}}', "1e400")],
)  # fmt: skip
def test_merge_refuses_a_shard_whose_provenance_is_missing_or_malformed(tmp_path: Path, capsys, text, needle: str) -> None:
    dirs = write_shards(tmp_path, 2)
    path = dirs[1] / "provenance.json"
    if text is None:
        path.unlink()
    else:
        path.write_text(text)
    assert main(["merge", *map(str, dirs), "--out", str(tmp_path / "m")]) == 2
    _one_error_line(capsys, str(path), needle)


@pytest.mark.tensorflow
def test_merge_of_a_real_runs_shards_has_the_versions_of_the_whole_run(tmp_path: Path, tf_target) -> None:
    common = ["--select", "special/*", "--workers", "0", "--quiet", "--seed", "3"]
    assert main(["run", "--out", str(tmp_path / "whole"), *common]) in (0, 1)
    for k in (1, 2):
        assert main(["run", "--out", str(tmp_path / f"s{k}"), "--shard", f"{k}/2", *common]) in (0, 1)
    assert main(["merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "m"), "--quiet"]) in (0, 1)
    whole, merged = (json.loads((tmp_path / d / "results.json").read_text())["meta"] for d in ("whole", "m"))
    keys = ("tensorflow", "keras", "target", "python", "numpy", "platform", "cpu_flags", "environment")
    assert {k: merged[k] for k in keys} == {k: whole[k] for k in keys}
    assert merged["tensorflow"] is not None and merged["keras"] is not None and merged["target"]


# --- provenance is said ---------------------------------------------------------------------------------


def _factory_run(tmp_path: Path, *extra: str) -> tuple[int, str]:
    base = write_results(tmp_path / "base" / "results.json", results([record("special/a")], loss_factory="evil_mod:make"))
    new = write_results(tmp_path / "new" / "results.json", results([record("special/a", error="E")], loss_factory="evil_mod:make"))
    code = main(["compare", str(base), str(new), "--out", str(tmp_path / "drift"), *extra])
    bodies = list((tmp_path / "drift" / "regressions").glob("*.md"))
    return code, bodies[0].read_text() if bodies else ""


def _python_block(body: str) -> dict:
    block = body.split("```python\n", 1)[1].split("\n```", 1)[0]
    tree = ast.parse(block)
    return {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
            if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}  # fmt: skip


def test_a_factory_named_by_a_downloaded_file_is_printed_not_imported(tmp_path: Path, capsys) -> None:
    code, body = _factory_run(tmp_path)
    assert code == 1
    names = _python_block(body)
    assert "LOSS_FACTORY" not in names and names["NAMED_LOSS_FACTORY"] == "evil_mod:make"
    assert names["SOURCE"] == str(tmp_path / "new" / "results.json")  # the reproduction says where it came from
    assert "Made from a record read from a file" in body and "does not import" in body


def test_a_factory_named_again_on_the_command_line_is_imported(tmp_path: Path, capsys) -> None:
    code, body = _factory_run(tmp_path, "--loss-factory", "evil_mod:make")
    assert code == 1
    names = _python_block(body)
    assert names["LOSS_FACTORY"] == "evil_mod:make" and "NAMED_LOSS_FACTORY" not in names


def test_a_factory_named_on_the_command_line_must_be_the_files(tmp_path: Path, capsys) -> None:
    code, _ = _factory_run(tmp_path, "--loss-factory", "other_mod:make")
    assert code == 2
    _one_error_line(capsys, "--loss-factory other_mod:make", "evil_mod:make")
