"""docs/design.md lists every module of the dispatch package, from its floor up."""

from __future__ import annotations

import re

from .test_layering import PACKAGE, import_graph

PAGE = PACKAGE.parent / "docs" / "design.md"


def table_rows(text: str) -> list[list[str]]:
    """The modules named in the first cell of each row of the dispatch package's table."""
    section = text.split("## The dispatch package, bottom up", 1)[1].split("\n## ", 1)[0]
    return [
        [f"grainlike.dispatch.{name}" for name in re.findall(r"`(_\w+)\.py`", line.split("|")[1])]
        for line in section.splitlines()
        if line.startswith("| `")
    ]


def up_arrows(rows: list[list[str]], graph: dict[str, set[str]]) -> list[str]:
    """Imports of a module in a row below the importer's: the table is not bottom up there."""
    rank = {module: index for index, row in enumerate(rows) for module in row}
    return sorted(
        f"{module} -> {imported}"
        for module, index in rank.items()
        for imported in graph.get(module, set())
        if rank.get(imported, -1) > index
    )


def test_every_dispatch_module_is_in_the_table_in_import_order() -> None:
    rows = table_rows(PAGE.read_text(encoding="utf-8"))
    listed = {module for row in rows for module in row}
    modules = {f"grainlike.dispatch.{path.stem}" for path in (PACKAGE / "dispatch").glob("_*.py")}
    modules.discard("grainlike.dispatch.__init__")
    assert sorted(modules - listed) == []
    assert up_arrows(rows, import_graph()) == []


def test_the_order_check_sees_a_module_listed_below_one_that_imports_it() -> None:
    """A row that imports a module of a later row is reported."""
    rows = [["grainlike.dispatch._queue"], ["grainlike.dispatch._records"]]
    graph = {"grainlike.dispatch._queue": {"grainlike.dispatch._records"}}
    assert up_arrows(rows, graph) == ["grainlike.dispatch._queue -> grainlike.dispatch._records"]
