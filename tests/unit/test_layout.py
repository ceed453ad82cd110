"""The package's shape (README, *Layout*): read from its own import graph with `ast`, so that it holds. Every
import counts, module-level or inside a function (an import inside a function hides a cycle from Python, not
from the design); only imports under `if TYPE_CHECKING:` are type hints and do not count."""

from __future__ import annotations

import ast
import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "mia_checks"

# Lowest first. A module may import its own layer and those below, never one above. A module belongs to the
# layer of the longest name below that is a prefix of its own.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundations", ("errors", "store", "weights", "metrics")),
    ("inputs", ("data", "features", "protocol", "access.base")),
    ("models", ("targets", "access", "embedders", "captioning", "results")),
    ("measuring", ("generation", "measurements", "attacks", "exposure", "gate")),
    ("the run", ("settings", "record", "baselines", "history")),
    ("orchestration", ("preflight", "audit")),
    ("reports", ("reports",)),
    ("front ends", ("plugin", "gate_tests", "testbed", "cli")),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(name: str) -> bool:
    return (PACKAGE / name.replace(".", "/") / "__init__.py").is_file() if name else True


def exists(name: str) -> bool:
    return is_package(name) or (PACKAGE / (name.replace(".", "/") + ".py")).is_file()


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path) -> set[str]:
    """The package's modules that `path` imports ('' is the package itself)."""
    name = module_name(path)
    package = name if is_package(name) else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name.removeprefix("mia_checks").lstrip(".") for a in child.names
                             if a.name == "mia_checks" or a.name.startswith("mia_checks."))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".") if package else []
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                elif child.module and (child.module == "mia_checks" or child.module.startswith("mia_checks.")):
                    target = child.module.removeprefix("mia_checks").lstrip(".")
                else:
                    visit(child)
                    continue
                for alias in child.names:  # `from . import x` imports the module x when there is one
                    sub = f"{target}.{alias.name}".lstrip(".")
                    found.add(sub if exists(sub) else target)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def import_graph() -> dict[str, set[str]]:
    """module → the modules it imports, plus the packages whose __init__ Python runs to get there (not its
    own: a package's modules run after its __init__ has started)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        edges = set()
        for target in imports_of(path):
            parts = target.split(".") if target else []
            for i in range(len(parts) + 1):
                parent = ".".join(parts[:i])
                inside = name == parent or name.startswith(parent + ".") if parent else True
                if i == len(parts) or not inside:
                    edges.add(parent)
        edges.discard(name)
        graph[name] = edges
    return graph


def layer_of(name: str) -> int:
    best = max(((len(prefix), i) for i, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
                if name == prefix or name.startswith(prefix + ".")), default=None)
    if best is None:
        raise AssertionError(f"mia_checks.{name} belongs to no layer: add it to LAYERS (and to the README's Layout)")
    return best[1]


def test_the_import_graph_is_read_from_the_code():
    graph = import_graph()
    assert {"audit", "targets", "targets.diffusers", "plugin.hooks", "reports.html"} <= set(graph)
    assert "targets.seq2seq" in graph["targets"] and "store" in graph["generation.cache"]
    assert "targets" in graph["generation.cache"]  # importing targets.base runs the targets package first
    assert "attacks.whitebox" not in graph["access.denoiser"]


def test_the_package_has_no_import_cycles():
    graph = {name: {t for t in targets if t} for name, targets in import_graph().items() if name}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"import cycle: {' → '.join(exc.args[1])}")


def test_no_module_imports_a_layer_above_its_own():
    upward = [f"{name} ({LAYERS[layer_of(name)][0]}) → {target} ({LAYERS[layer_of(target)][0]})"
              for name, targets in import_graph().items() if name
              for target in targets if target and layer_of(target) > layer_of(name)]
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_only_the_plugin_and_the_front_ends_import_pytest():
    allowed = ("plugin", "cli")
    found = [module_name(p) for p in PACKAGE.rglob("*.py")
             if re.search(r"^\s*(import pytest|from pytest|from _pytest)", p.read_text(encoding="utf-8"), re.M)]
    assert found and all(name.startswith(allowed) for name in found), found


def test_no_module_cites_a_file_outside_the_repository():
    root = PACKAGE.parent
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "../shared" not in text and "ATTACKS.md" not in text, path
        for cited in re.findall(r"\bdocs/[\w./-]+\.md\b", text):
            assert (root / cited).is_file(), f"{path.relative_to(root)} cites {cited}, which does not exist"
