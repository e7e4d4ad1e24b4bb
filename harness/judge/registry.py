"""The known-divergence registry: where TensorFlow is known to differ from the specification, and why.

The registry is a TOML file (``harness/data/known_divergences.toml``, package data), one ``[[divergence]]`` table per entry:

    [[divergence]]
    id = "short-stable-name"
    title = "one line"
    reason = "why TensorFlow differs: which side is right and how we know"
    evidence = ["source line, doc sentence or upstream issue", ...]
    kinds = ["nan_inf"]                 # failure kinds this entry explains
    versions = ">=2.16"                 # optional: the TensorFlow releases it holds for (PEP 440)
    keras = "<3.16.0.dev0"              # optional: the Keras releases (the package behind tf.keras) it holds for
    [divergence.match]                  # every key must match the record (AND)
    profile = "keras3"                  # the semantics the record was judged against
    compute_dtype = ["float16", "bfloat16"]   # a list means any of
    from_logits = false
    id = "values/probs/exact_bounds/*"        # strings are shell-style globs

Match keys are the record's facets (``judge.matching.record_facets``): the case's id, api, from_logits,
label_smoothing, axis, reduction, dtype, true_dtype, pred_dtype, weights and tags (family, regime, shape),
the ``profile``, the Keras ``backend`` the record ran under (``tensorflow`` unless ``run --backend`` said
otherwise; an entry without it matches every backend), the ``compute_dtype`` that profile computes in, and
facts read off the values:
``flushed_weights`` (a sample weight the kernels read as 0), ``size`` and ``loss_size`` (size buckets),
``labels`` (the label domain), ``loss_shape``, ``masked_nonfinite``, ``infinite_label_logit``, ``bf16_cast_tie`` and
``producer_cast``.

Three keys place an entry on a line, because none alone can.  ``versions`` is a PEP 440 specifier set
matched against the installed TensorFlow (``Registry.for_versions``; pre-releases such as nightlies
count): TensorFlow's own ops (``tf.nn.sigmoid_cross_entropy_with_logits``) are shared by both Keras lines,
and a fix lands in a TensorFlow release.  ``keras`` is the same over the version of the package behind
``tf.keras`` (``keras`` 3.x, or ``tf_keras``/``keras`` 2.x): Keras 3 installs on its own (``pip install
keras==3.X`` under one TensorFlow), so a divergence a Keras release introduced or fixed is bounded by Keras
releases, with its introduced-in and fixed-in versions (``keras = ">=3.9,<3.16.0.dev0"``).  ``match.profile`` says which documented semantics the finding is
about: with ``TF_USE_LEGACY_KERAS=1`` TensorFlow 2.21 runs Keras 2 code, so a TensorFlow range cannot tell
a Keras 3 finding from a Keras 2 one, and the Keras package's version would not name TensorFlow's ops.

A record that fails with one of the entry's kinds is ``xfail``; one that the entry matches but that
agrees is ``xpass`` (the divergence no longer reproduces: fix or narrow the entry); one that fails with a
kind the entry does not explain is ``fail``.  ``intermittent = true`` marks an entry whose
divergence shows for some values of its class only, which no facet can tell apart without transcribing the
diverging formula (another Keras backend's arithmetic, whose error exceeds the bound where its terms cancel):
a matching record that agrees then passes, with a note, as a ``pairs`` case does.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from harness.errors import InputError, UsageError
from harness.jsonio import read_toml
from harness.judge.compare import KINDS
from harness.packagedata import data_path
from harness.schema import List, Scalar

__all__ = ["DEFAULT_REGISTRY", "Divergence", "Registry", "load_registry"]

DEFAULT_REGISTRY = data_path("known_divergences.toml")

MATCH_KEYS = frozenset(
    {
        "id",
        "api",
        "mode",
        "producer",
        "mask",
        "grad",
        "route",
        "strategy",
        "path",
        "config",
        "policy",
        "loss_policy",
        "epsilon",
        "floatx",
        "traced_before",
        "from_logits",
        "label_smoothing",
        "axis",
        "reduction",
        "dtype",
        "compute_dtype",
        "true_dtype",
        "pred_dtype",
        "profile",
        "backend",
        "weights",
        "family",
        "regime",
        "shape",
        "flushed_weights",
        "size",
        "labels",
        "loss_shape",
        "loss_size",
        "masked_nonfinite",
        "infinite_label_logit",
        "bf16_cast_tie",
        "mixed_dtypes",
        "split_batches",
        "producer_cast",
    }
)
_FIELDS = {"id", "title", "reason", "evidence", "kinds", "match", "versions", "keras", "intermittent"}
_FACET = Scalar(10_000)  # a match value: a glob, a number, a boolean (or "none")


@dataclass(frozen=True)
class Divergence:
    """One registered divergence."""

    id: str
    title: str
    reason: str
    evidence: tuple[str, ...]
    kinds: frozenset[str]
    match: Mapping[str, Any] = field(default_factory=dict)
    versions: str | None = None  # PEP 440 specifiers over the TensorFlow version; None: every version
    # the divergence shows for some values of the class only (another backend's formula, whose error exceeds the
    # bound where its terms cancel): a matching record that agrees passes, with a note, instead of xpass
    intermittent: bool = False
    keras: str | None = None  # PEP 440 specifiers over the Keras version; None: every version

    def holds_for(self, tensorflow: str | None, keras: str | None = None) -> bool:
        """Whether the entry's ranges contain ``tensorflow`` and ``keras`` (an unknown version: only an entry
        without that range)."""
        return _within(self.versions, tensorflow, "tensorflow") and _within(self.keras, keras, "keras")

    def matches(self, facets: Mapping[str, Any]) -> bool:
        """True when every match key is a facet of the record and matches it; a missing facet never does."""
        return all(key in facets and _matches_value(facets[key], want) for key, want in self.match.items())

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "reason": self.reason,
            "evidence": list(self.evidence),
            "kinds": sorted(self.kinds),
            "match": dict(self.match),
            "versions": self.versions,
            "keras": self.keras,
            "intermittent": self.intermittent,
        }


def _within(spec: str | None, version: str | None, package: str) -> bool:
    if spec is None:
        return True
    if version is None:
        return False
    try:
        parsed = Version(version)
    except InvalidVersion:
        raise UsageError(f"{package}={version!r} is not a PEP 440 version") from None
    return SpecifierSet(spec).contains(parsed, prereleases=True)


_MISSING = object()  # a facet the record does not have, in Registry.judge's memo keys
_CLASS_MEMO = 50_000  # string facet values whose class (Registry._class_of) is remembered


def _matches_value(have: Any, want: Any) -> bool:
    if isinstance(want, list):
        return any(_matches_value(have, w) for w in want)
    if want == "none" and have is None:
        return True
    if isinstance(want, str) and isinstance(have, str):
        return fnmatch.fnmatchcase(have, want)
    if isinstance(want, bool) or isinstance(have, bool):
        return want is have
    if isinstance(want, (int, float)) and isinstance(have, (int, float)):
        return float(want) == float(have)
    return want == have


@dataclass(frozen=True)
class Registry:
    entries: tuple[Divergence, ...] = ()
    source: str = ""
    # judge()'s answers by the classes (``_class_of``) of the facets some entry reads: a run judges a million
    # records that share a few hundred of them
    _verdicts: dict[tuple[Any, ...], Divergence | None] = field(default_factory=dict, compare=False, repr=False)
    _classes: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict, compare=False, repr=False)
    _by_values: dict[tuple[Any, ...], Divergence | None] = field(default_factory=dict, compare=False, repr=False)
    _heads: dict[tuple[str, str], tuple[int, ...]] = field(default_factory=dict, compare=False, repr=False)

    @functools.cached_property
    def _read(self) -> tuple[str, ...]:
        """The facets some entry's match reads, in a fixed order."""
        return tuple(sorted({key for entry in self.entries for key in entry.match}))

    @functools.cached_property
    def _read_but_id(self) -> tuple[str, ...]:
        return tuple(k for k in self._read if k != "id")

    @functools.cached_property
    def _globs(self) -> dict[str, tuple[tuple[str, Callable[[str], Any]], ...]]:
        """Per facet, the distinct string patterns the entries match it with (list items included), each as
        (its literal prefix, its compiled ``fnmatchcase``): a value without the prefix cannot match."""
        out: dict[str, set[str]] = {}
        for entry in self.entries:
            for key, want in entry.match.items():
                out.setdefault(key, set()).update(w for w in (want if isinstance(want, list) else [want]) if isinstance(w, str))
        return {
            k: tuple((re.split(r"[*?\[]", g, maxsplit=1)[0], re.compile(fnmatch.translate(g)).match) for g in sorted(v))
            for k, v in out.items()
        }

    def _class_of(self, key: str, value: Any) -> Any:
        """What judge()'s memo keys ``value`` of facet ``key`` by.  A string facet is matched only by
        ``fnmatchcase`` against the entries' string patterns (``_matches_value``: a bool or number never
        equals a string), so which of those patterns it matches decides every entry's answer for it: two
        case ids that match the same patterns judge alike, and a million distinct ids share a few classes.
        Any other value keys by itself (and its type: True and 1 hash alike but match differently)."""
        if not isinstance(value, str):
            return (value, type(value))
        memo = self._classes
        try:
            return memo[key, value]
        except KeyError:
            pass
        globs = self._globs.get(key, ())
        found_at = [False] * len(globs)
        for i in self._candidates(key, value):
            prefix, match = globs[i]
            found_at[i] = value.startswith(prefix) and match(value) is not None
        found = (str, *found_at)
        if len(memo) < _CLASS_MEMO:  # (case ids are all distinct: past this many, they are classed afresh)
            memo[key, value] = found
        return found

    def _candidates(self, key: str, value: str) -> tuple[int, ...]:
        """The patterns of facet ``key`` (indices into ``_globs[key]``) whose literal prefix agrees with
        ``value``'s first path segment: the others cannot match it (a million case ids, a few segments)."""
        cut = value.find("/") + 1
        head = value[:cut] if cut else value
        try:
            return self._heads[key, head]
        except KeyError:
            pass
        found = tuple(
            i for i, (prefix, _) in enumerate(self._globs.get(key, ()))
            if (head.startswith(prefix) if len(prefix) <= len(head) else prefix.startswith(head))
        )  # fmt: skip
        if len(self._heads) < _CLASS_MEMO:
            self._heads[key, head] = found
        return found

    def for_versions(self, tensorflow: str | None, keras: str | None = None) -> Registry:
        """The entries whose ``versions`` range holds for TensorFlow ``tensorflow`` and whose ``keras`` range
        holds for the Keras version ``keras``."""
        return Registry(tuple(e for e in self.entries if e.holds_for(tensorflow, keras)), self.source)

    def for_tensorflow(self, version: str | None) -> Registry:
        """The entries whose ``versions`` range holds for TensorFlow ``version``, Keras unknown."""
        return self.for_versions(version)

    def find(self, facets: Mapping[str, Any]) -> Divergence | None:
        """The first entry matching a record's facets, or None."""
        for entry in self.entries:
            if entry.matches(facets):
                return entry
        return None

    def explain(self, facets: Mapping[str, Any], kinds: Sequence[str | None]) -> Divergence | None:
        """The first entry that matches ``facets`` and lists every one of ``kinds`` (all of a comparison's: a
        registered NaN must not explain a wrong value found beside it in the same record), or None."""
        for entry in self.entries:
            if all(k in entry.kinds for k in kinds) and entry.matches(facets):
                return entry
        return None

    def judge(self, facets: Mapping[str, Any], kinds: Sequence[str | None]) -> Divergence | None:
        """The entry a record's verdict is taken against: for a divergence, the first entry that explains all
        its ``kinds``, else the first that matches (its note then says which kind it does not explain); for
        an agreement (no kinds), the first that matches (an ``xpass``).  The one rule for run, replay, merge
        and fuzz."""
        # first by the values themselves (and their types: True and 1 hash alike but match differently), the
        # case id by its class: a few hundred keys on a million records, each found without classing the
        # other facets; a key first seen is classed facet by facet below
        values = tuple([facets.get(k, _MISSING) for k in self._read_but_id])
        try:
            raw = (self._class_of("id", facets.get("id", _MISSING)), values, tuple(map(type, values)), *kinds)
            return self._by_values[raw]
        except KeyError:
            pass
        except TypeError:  # a facet value that cannot be hashed: judge without the memo
            return self._judge(facets, kinds)
        key = (*(self._class_of(k, facets.get(k, _MISSING)) for k in self._read), *kinds)
        if key in self._verdicts:
            found = self._verdicts[key]
        else:
            found = self._verdicts[key] = self._judge(facets, kinds)
        if len(self._by_values) < _CLASS_MEMO:  # (drawn facets can be many: past this many, classed afresh)
            self._by_values[raw] = found
        return found

    def _judge(self, facets: Mapping[str, Any], kinds: Sequence[str | None]) -> Divergence | None:
        return (self.explain(facets, kinds) if kinds else None) or self.find(facets)


def _parse_entry(raw: Any, where: str) -> Divergence:
    if not isinstance(raw, dict):
        raise InputError(f"{where} is not a table")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise InputError(f"{where} has unknown field {min(unknown)!r}")
    for key in ("id", "title", "reason"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise InputError(f"{where}.{key} is missing or empty")
    evidence = raw.get("evidence")
    if not isinstance(evidence, list) or not evidence or not all(isinstance(e, str) and e.strip() for e in evidence):
        raise InputError(f"{where}.evidence must be a non-empty list of strings")
    kinds = raw.get("kinds")
    if not isinstance(kinds, list) or not kinds or any(k not in KINDS for k in kinds):
        raise InputError(f"{where}.kinds={kinds!r} must be a non-empty list of {', '.join(KINDS)}")
    match = raw.get("match")
    if not isinstance(match, dict) or not match:
        raise InputError(f"{where}.match must be a non-empty table")
    for key, want in match.items():
        if key not in MATCH_KEYS:
            raise InputError(f"{where}.match has unknown key {key!r} (known: {', '.join(sorted(MATCH_KEYS))})")
        try:  # a facet value, or a list of them (any of)
            (List(_FACET, 1000) if isinstance(want, list) else _FACET).check(want, f"{where}.match.{key}")
        except UsageError as exc:
            raise InputError(str(exc)) from None
    versions = raw.get("versions")
    for key, example in (("versions", ">=2.16"), ("keras", "<3.16.0.dev0")):
        if raw.get(key) is not None:
            try:
                SpecifierSet(raw[key])
            except (InvalidSpecifier, TypeError):
                raise InputError(f"{where}.{key}={raw[key]!r} is not a PEP 440 specifier set such as {example!r}") from None
    intermittent = raw.get("intermittent", False)
    if not isinstance(intermittent, bool):
        raise InputError(f"{where}.intermittent={intermittent!r} is not true or false")
    return Divergence(
        intermittent=intermittent,
        id=raw["id"],
        title=raw["title"].strip(),
        reason=" ".join(raw["reason"].split()),
        evidence=tuple(evidence),
        kinds=frozenset(kinds),
        match=dict(match),
        versions=versions,
        keras=raw.get("keras"),
    )


def load_registry(path: str | Path = DEFAULT_REGISTRY) -> Registry:
    """Read and validate a registry file; InputError names the file and the field that is wrong."""
    path = Path(path)
    data = read_toml(path, "registry")
    if "case" in data and "divergence" not in data:
        raise InputError(f"{path}: this is a special-case table ([[case]]), not a registry ([[divergence]])")
    unknown = set(data) - {"divergence"}
    if unknown:
        raise InputError(f"{path}: unknown top-level key {min(unknown)!r}")
    raw_entries = data.get("divergence", [])
    if not isinstance(raw_entries, list):
        raise InputError(f"{path}: 'divergence' must be an array of tables ([[divergence]])")
    entries = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_entries):
        try:
            entry = _parse_entry(raw, f"divergence[{i}]")
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
        if entry.id in seen:
            raise InputError(f"{path}: divergence[{i}].id={entry.id!r} is used twice")
        seen.add(entry.id)
        entries.append(entry)
    return Registry(tuple(entries), str(path))
