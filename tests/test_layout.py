"""The house rules that keep the code base tidy (docs/design.md, "Module map"): checked, not hoped for.

* ``mat/`` imports in one direction: no import loop, and no ``import mat...`` inside a function to dodge one.
* ``analysis/`` takes nothing of ``mat`` but ``mat.spec``, the torch-free contracts; ``mat.spec`` takes nothing
  of ``mat`` outside itself and imports no torch.
* No module of ``mat/``, ``trials/`` or ``analysis/`` is over 400 lines; ``mat/train.py`` is under 300 with no
  function over 60 lines.
* Only ``trials/`` knows NNI: neither ``import nni`` nor ``nnictl`` appears in ``mat/`` or ``analysis/``.
* A method is named in one place: its name, as a string, appears in at most two files of ``mat/`` and
  ``trials/`` (its registry entry, and the component ladder for the methods its rungs train with).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from mat.spec.methods import METHOD_SPECS
from tests.helpers import REPO

PACKAGES = ("mat", "analysis")
SIZED = ("mat", "trials", "analysis")


def _modules(package: str) -> dict[str, Path]:
    root = REPO / package
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _top_level_imports(path: Path, package: str) -> set[str]:
    """The project modules ``path`` imports at module level (``from a.b import c`` counts ``a.b`` and ``a.b.c``)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == package}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == package:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _all_imports(path: Path, package: str) -> set[str]:
    """Every module of ``package`` that ``path`` imports, at module level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == package}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == package:
            found.add(node.module)
    return found


def _in_spec(module: str) -> bool:
    return module == "mat.spec" or module.startswith("mat.spec.")


def test_analysis_takes_only_mat_spec() -> None:
    taken = {f"{name}: {dep}" for name, path in _modules("analysis").items() for dep in _all_imports(path, "mat")}
    assert {t for t in taken if not _in_spec(t.split(": ")[1])} == set()
    assert taken, "analysis reads the record and task contracts from mat.spec"


def test_mat_spec_takes_nothing_of_mat_outside_itself() -> None:
    spec = {n: p for n, p in _modules("mat").items() if _in_spec(n)}
    taken = {f"{name}: {dep}" for name, path in spec.items() for dep in _all_imports(path, "mat")}
    assert {t for t in taken if not _in_spec(t.split(": ")[1])} == set()


def test_mat_spec_imports_no_torch() -> None:
    mods = sorted(n for n in _modules("mat") if _in_spec(n))
    code = "import sys\n" + "".join(f"import {m}\n" for m in mods) + (
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'nni', 'pandas'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert len(mods) > 8


def test_mat_import_graph_has_no_loop() -> None:
    mods = _modules("mat")
    graph = {m: {d for d in _top_level_imports(p, "mat") if d in mods and d != m} for m, p in mods.items()}
    # a package's __init__ importing its own submodules is not a loop through them
    for m in graph:
        graph[m] = {d for d in graph[m] if not d.startswith(m + ".")}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                pytest.fail(f"import loop: {' -> '.join(stack[stack.index(d):] + [d])}")
            if d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_no_project_import_inside_a_function() -> None:
    offenders = []
    for name, path in _modules("mat").items():
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    mod = node.module if isinstance(node, ast.ImportFrom) else None
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [mod or ""]
                    if isinstance(node, (ast.Import, ast.ImportFrom)) and any(n.split(".")[0] in PACKAGES for n in names):
                        offenders.append(f"{name}.{fn.name}: {ast.unparse(node)}")
    assert offenders == []


@pytest.mark.parametrize("package", SIZED)
def test_module_sizes(package: str) -> None:
    long = {n: len(p.read_text().splitlines()) for n, p in _modules(package).items()}
    assert {n: k for n, k in long.items() if k > 400} == {}


def test_train_module_is_thin() -> None:
    path = REPO / "mat" / "train.py"
    assert len(path.read_text().splitlines()) < 300
    fns = [f for f in ast.walk(ast.parse(path.read_text())) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
    assert {f.name: f.end_lineno - f.lineno + 1 for f in fns if f.end_lineno - f.lineno + 1 > 60} == {}


@pytest.mark.parametrize("package", PACKAGES)
def test_only_trials_know_nni(package: str) -> None:
    hits = [f"{p}: {line.strip()}" for p in (REPO / package).rglob("*.py") for line in p.read_text().splitlines()
            if "import nni" in line or "nnictl" in line]
    assert hits == []


def _names(path: Path, name: str) -> bool:
    """``path`` holds the string ``name`` (the package's version key ``{"mat": __version__}`` aside)."""
    tree = ast.parse(path.read_text())
    versions = {id(k) for d in ast.walk(tree) if isinstance(d, ast.Dict)
                for k, v in zip(d.keys, d.values) if isinstance(v, ast.Name) and v.id == "__version__"}
    return any(isinstance(n, ast.Constant) and n.value == name and id(n) not in versions for n in ast.walk(tree))


def test_a_method_is_named_in_at_most_two_files() -> None:
    files = [p for package in ("mat", "trials") for p in sorted((REPO / package).rglob("*.py"))]
    where = {name: [str(p.relative_to(REPO)) for p in files if _names(p, name)] for name in METHOD_SPECS}
    assert {name: found for name, found in where.items() if len(found) > 2} == {}
    assert all("mat/spec/methods.py" in found for found in where.values()), where
