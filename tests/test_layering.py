"""The layering of the package: what each layer may import (see the README's design section).

core/ir <- interpreters <- lax <- api/custom rules <- numpy/nn/random/optim/train, and the
backend below jit only. Checked twice: in a fresh interpreter (what an import really loads)
and on the source (an import inside a function loads nothing until it runs).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "funcgrad"


def _loaded_after(statement: str) -> list[str]:
    """The module names ``statement`` leaves in ``sys.modules`` of a fresh interpreter."""
    code = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _under(modules: list[str], prefix: str) -> list[str]:
    return [m for m in modules if m == prefix or m.startswith(prefix + ".")]


def test_import_funcgrad_loads_no_numba_and_no_backend():
    loaded = _loaded_after("import funcgrad")
    assert _under(loaded, "numba") == []
    assert _under(loaded, "llvmlite") == []
    assert _under(loaded, "funcgrad.backend") == []


def test_import_funcgrad_lax_loads_no_nn_and_no_numba():
    loaded = _loaded_after("import funcgrad.lax")
    assert _under(loaded, "funcgrad.nn") == []
    assert _under(loaded, "funcgrad.numpy") == []
    assert _under(loaded, "numba") == []
    assert _under(loaded, "funcgrad.backend") == []


def test_libraries_load_on_first_use():
    loaded = _loaded_after("import funcgrad as fg; fg.nn.relu; fg.numpy.ones; fg.random.PRNGKey")
    for name in ("funcgrad.nn", "funcgrad.numpy", "funcgrad.random"):
        assert name in loaded
    assert _under(loaded, "numba") == []


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every funcgrad module ``path`` imports, at any depth (functions included)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # ``from funcgrad import nn`` imports the module funcgrad.nn
            out += [(node.lineno, f"{module}.{a.name}") for a in node.names]
            out.append((node.lineno, module))
    return [(n, m) for n, m in out if m == "funcgrad" or m.startswith("funcgrad.")]


def _violations(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for lineno, module in _imported_modules(path):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(ROOT)}:{lineno} imports {module}")
    return bad


LIBRARIES = (
    "funcgrad.nn",
    "funcgrad.numpy",
    "funcgrad.random",
    "funcgrad.optim",
    "funcgrad.train",
    "funcgrad.losses",
    "funcgrad.metrics",
    "funcgrad.serialization",
)


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        # lax: the primitives; neither the libraries above it nor any backend
        ("lax", ("funcgrad.backend", "funcgrad.api", *LIBRARIES)),
        # the interpreters know no library and no user API; jit alone reaches the backend
        ("interpreters", ("funcgrad.api", *LIBRARIES)),
    ],
)
def test_layers_import_nothing_above_them(layer, forbidden):
    assert _violations(layer, forbidden) == []


def test_only_jit_reaches_the_backend_from_the_interpreters():
    # jit.py and tiers.py (jit's interpreter tier and background compiler) are jit.
    users = {
        path.name
        for path in (PACKAGE / "interpreters").glob("*.py")
        for _, module in _imported_modules(path)
        if module.startswith("funcgrad.backend")
    }
    assert users <= {"jit.py", "tiers.py"}


def test_numba_is_imported_only_inside_the_backend():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if (PACKAGE / "backend") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            bad += [where for n in names if n.startswith("numba")]
    assert bad == []
