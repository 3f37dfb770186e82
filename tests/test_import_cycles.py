"""The engine's modules import one another one way: no cycles, counting imports inside functions too.

A cycle hidden in a function-local import still ties two modules together; the layer contracts
(pyproject.toml, run by .ci/run) keep tui above loop above store, and this keeps each layer acyclic.
"""

import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def cycles(graph, package: str) -> list[tuple[str, str]]:
    found = []
    modules = sorted(m for m in graph.modules if m.split(".")[0] == package)
    for a in modules:
        for b in sorted(graph.find_modules_directly_imported_by(a)):
            if b.split(".")[0] == package and a < b and graph.chain_exists(importer=b, imported=a):
                found.append((a, b))
    return found


def test_no_import_cycles_in_any_layer():
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph("loop", "store", "tui", include_external_packages=False)
    assert {p: cycles(graph, p) for p in ("loop", "store", "tui")} == {"loop": [], "store": [], "tui": []}
