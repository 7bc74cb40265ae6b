"""The layering of the house style, enforced by parsing every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "grainlike"

#: Which grainlike subpackages each layer may import.  ``_exceptions`` and ``_permissions``
#: (the one rule for private files) are leaves that any may.
ALLOWED: dict[str, set[str]] = {
    "resource": {"resource"},
    "wire": {"resource", "wire"},
    "dispatch": {"resource", "wire", "dispatch"},
    "worker": {"resource", "wire", "worker"},
    "batch": {"resource", "batch"},
}
LEAVES = {"_exceptions", "_permissions"}


def _layer_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else "api"


def _imported_layers(path: Path, root: Path = PACKAGE.parent) -> set[tuple[str, int]]:
    """Top-level grainlike subpackages (or modules) that ``path`` imports, with line numbers."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package_parts = list(path.relative_to(root).with_suffix("").parts)
    if path.name == "__init__.py":
        package_parts = package_parts[:-1]
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                if path.name != "__init__.py":
                    base = package_parts[: len(package_parts) - node.level]
                module = ".".join([*base, node.module] if node.module else base)
                names = [module]
                if node.module is None:
                    names = [f"{module}.{alias.name}" for alias in node.names]
            else:
                names = [node.module or ""]
        for name in names:
            parts = name.split(".")
            if parts[0] == "grainlike" and len(parts) > 1:
                found.add((parts[1], getattr(node, "lineno", 0)))
    return found


def test_every_layer_imports_only_what_the_house_style_allows() -> None:
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer_of(path)
        allowed = ALLOWED.get(layer)
        if allowed is None:
            continue  # the api level and cli may import everything
        for imported, line in _imported_layers(path):
            if imported not in allowed and imported not in LEAVES:
                violations.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}")
    assert violations == []


def test_the_resource_layer_never_imports_trio() -> None:
    offenders = []
    for path in sorted((PACKAGE / "resource").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                )
                if any(n and n.split(".")[0] == "trio" for n in names):
                    offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def test_the_layering_check_sees_relative_and_absolute_crossings(tmp_path: Path) -> None:
    """The parser resolves relative imports, so a crossing cannot hide behind dots."""
    module = tmp_path / "grainlike" / "worker" / "_sneaky.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from ..dispatch import _queue\nfrom .. import dispatch\nimport grainlike.api\n"
        "from ._local import x\n"
    )
    assert _imported_layers(module, tmp_path) == {
        ("dispatch", 1),
        ("dispatch", 2),
        ("api", 3),
        ("worker", 4),
    }


# -- no import circles -------------------------------------------------------------------------

#: The one circle the design keeps (docs/design.md): ``Kind`` and ``Resources`` are defined in
#: terms of each other by the ``&`` contract, and reach each other through local imports.
ALLOWED_CIRCLES = [{"grainlike.resource._kind", "grainlike.resource._combined"}]


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module → the package's modules it imports: at module level, under ``TYPE_CHECKING``
    and inside functions alike (a local import still ties two modules together)."""
    root = package.parent
    modules = {_module_name(path, root): path for path in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package_name = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            candidates: list[str] = []
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:
                    base = package_name.split(".")
                    base = base[: len(base) - node.level + 1]
                    module = ".".join([*base, node.module] if node.module else base)
                candidates = [module, *(f"{module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            found.update(c for c in candidates if c in modules and c != name)
        graph[name] = found
    return graph


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(component)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles_within_the_package_but_the_one_allowed() -> None:
    assert [c for c in circles(import_graph()) if c not in ALLOWED_CIRCLES] == []


def test_the_cycle_check_finds_a_circle_through_a_local_import(tmp_path: Path) -> None:
    """A new circle fails the test, even when one side imports inside a function."""
    package = tmp_path / "grainlike"
    (package / "dispatch").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "dispatch" / "__init__.py").write_text("")
    (package / "dispatch" / "_a.py").write_text("from ._b import B\n")
    (package / "dispatch" / "_b.py").write_text("def f():\n    from . import _c\n")
    (package / "dispatch" / "_c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ._a import A\n"
    )
    assert circles(import_graph(package)) == [
        {"grainlike.dispatch._a", "grainlike.dispatch._b", "grainlike.dispatch._c"}
    ]
