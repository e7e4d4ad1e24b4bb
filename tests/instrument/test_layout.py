"""The shape of the package, kept: stages import only stages below them, nothing imports in a circle, and only
``harness.frameworks`` (the package: one module per framework path behind it) imports a framework.

Read from the source with ``ast`` (lazy imports inside functions included), so the check needs nothing
installed and sees what a reader sees.  Each package's face (its ``__init__`` docstring) names every module of
the package, as ````name````, so a reader finds a stage's modules from it.  Each rule is also shown to fail on a
planted violation.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "harness"

# The floors, lowest first.  A module may import the modules of its own stage package (and, on the ground
# floor, any ground-floor module); otherwise only floors below its own.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("harness", "harness.errors", "harness.dtypes", "harness.jsonio", "harness.jsonl", "harness.case", "harness.stacking",
     "harness.families", "harness.packagedata", "harness.backends"),
    ("harness.frameworks", "harness.oracle"),  # siblings: the door to TensorFlow and the oracle never meet
    ("harness.generate",),
    ("harness.judge",),
    ("harness.run",),
    ("harness.report",),
    ("harness.engine", "harness.fuzz", "harness.audit", "harness.explain", "harness.modelcheck"),  # the commands' own modules
    ("harness.cli",),
    ("harness.__main__", "harness.pytest_plugin", "harness.keras"),  # the entry points: the command, the pytest plugin, the Keras callback
)  # fmt: skip
FRAMEWORKS = ("tensorflow", "keras", "tf_keras", "jax", "torch")
FRAMEWORK_DOORS = ("harness.frameworks",)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, str]:
    return {module_name(p): p.read_text(encoding="utf-8") for p in sorted(PACKAGE.rglob("*.py"))}


def imports(source: str, known: set[str] | frozenset[str] = frozenset()) -> set[str]:
    """Every module ``source`` imports, wherever the statement stands.  ``from harness.x import y`` counts as
    ``harness.x.y`` when that is one of the ``known`` modules (a package's submodule, not its face), else
    as ``harness.x``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found


def stage(module: str) -> tuple[int, str]:
    """(floor, the stage's name): the longest entry of FLOORS that is the module or a package holding it."""
    best: tuple[int, str] | None = None
    for level, names in enumerate(FLOORS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best[1])):
                best = (level, name)
    if best is None:
        raise AssertionError(f"{module} is on no floor: add it to FLOORS")
    return best


def graph(code: dict[str, str]) -> dict[str, set[str]]:
    known = set(code)
    return {m: {i for i in imports(s, known) if i in code and i != m} for m, s in code.items()}


def violations(code: dict[str, str]) -> list[str]:
    found = []
    edges = graph(code)
    for module, targets in edges.items():
        level, name = stage(module)
        for target in targets:
            t_level, t_name = stage(target)
            if target == "harness" or t_name == name or level == t_level == 0:
                continue  # the package's face, a module of the same stage, or the ground floor's own
            if t_level >= level:
                found.append(f"{module} imports {target}: floor {t_level} ({t_name}) is not below floor {level} ({name})")
    for module, source in code.items():
        for imported in imports(source):
            door = any(module == d or module.startswith(d + ".") for d in FRAMEWORK_DOORS)
            if imported.split(".")[0] in FRAMEWORKS and not door:
                found.append(f"{module} imports {imported}: only {', '.join(FRAMEWORK_DOORS)} may import a framework")
    found.extend(f"import circle: {' -> '.join(c)}" for c in circles(edges))
    return found


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_layout_holds() -> None:
    assert violations(sources()) == []


def test_every_module_stands_on_a_floor() -> None:
    for module in sources():
        stage(module)


@pytest.mark.parametrize(
    ("module", "planted", "says"),
    [
        ("harness.oracle.keras3", "from harness.report.summary import meta", "is not below"),
        ("harness.run.runner", "def f():\n    from harness.fuzz import fuzz", "is not below"),
        ("harness.oracle.keras3", "from harness.frameworks import TFTarget", "is not below"),  # siblings
        ("harness.report.html", "import tensorflow as tf", "may import a framework"),
        ("harness.judge.compare", "def f():\n    import keras", "may import a framework"),
        ("harness.dtypes", "from harness.case import Case", "import circle"),
    ],
)
def test_a_planted_violation_is_caught(module: str, planted: str, says: str) -> None:
    code = sources()
    code[module] += "\n" + planted + "\n"
    assert any(says in v for v in violations(code)), violations(code)


def faces() -> dict[str, tuple[str, list[str]]]:
    """Per package: its face's docstring and the names of its modules (``__init__`` aside)."""
    out = {}
    for init in sorted(PACKAGE.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        out[module_name(init)] = (doc, sorted(p.stem for p in init.parent.glob("*.py") if p.stem != "__init__"))
    return out


def unnamed(package_faces: dict[str, tuple[str, list[str]]]) -> list[str]:
    return [f"{package}'s docstring does not name its module ``{m}``"
            for package, (doc, modules) in package_faces.items() for m in modules if f"``{m}``" not in doc]  # fmt: skip


def test_every_package_face_names_its_modules() -> None:
    assert unnamed(faces()) == []


def test_a_package_face_that_omits_a_module_is_caught() -> None:
    package_faces = faces()
    doc, modules = package_faces["harness.run"]
    package_faces["harness.run"] = (doc, [*modules, "planted"])
    planted = set(unnamed(package_faces)) - set(unnamed(faces()))
    assert planted == {"harness.run's docstring does not name its module ``planted``"}
