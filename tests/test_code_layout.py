"""The package's layout shows the pipeline: data flows one way through the stages, no module
imports one of a later stage, no two modules import each other (at the top or inside a
function), and no module holds several jobs' worth of lines."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lightocr_ingest"

# The stages in the order data flows through them; a module may import its own stage, earlier
# ones and the shared foundation, never a later stage.
STAGES = ["pages", "ocr", "reader", "chunking", "embedding", "store", "pipeline", "retrieval", "service", "cli"]
# Shared by every stage, importing no stage: errors, defaults, records and metadata, helpers.
FOUNDATION = {"errors", "defaults", "notices", "records", "metadata", "documents", "_async", "_lazy", "cpu_cost",
              "console", "_version"}
OUTSIDE = {"testing"}  # test servers: they may use any stage, and no stage uses them
MAX_LINES = 400  # about what one job takes; more is a module to split along its seams


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module of the package that ``path`` imports, at the top or inside a function (a
    name imported from a package counts as its module when there is one)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "lightocr_ingest":
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if _exists(submodule) else target)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "lightocr_ingest"}
    found.discard(name)
    return found


def _exists(module: str) -> bool:
    path = PACKAGE.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def stage_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(package)"


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_imports_a_later_stage():
    upward = []
    for name, path in modules().items():
        stage = stage_of(name)
        if stage in OUTSIDE or stage == "(package)":
            continue  # the package's own __init__ is its public face: it names members of every stage
        for target in imports_of(path):
            other = stage_of(target)
            if other == stage or other in FOUNDATION:
                continue
            assert other not in OUTSIDE, f"{name} imports the test helpers ({target})"
            if stage in FOUNDATION:
                upward.append(f"{name} (foundation) imports {target}")
            elif other == "(package)" or STAGES.index(other) > STAGES.index(stage):
                upward.append(f"{name} ({stage}) imports {target} ({other})")
    assert not upward, "\n".join(upward)


def test_every_stage_and_foundation_module_is_known():
    """A new top-level module or folder must be placed in the flow (or the foundation) here."""
    known = set(STAGES) | FOUNDATION | OUTSIDE | {"(package)"}
    assert {stage_of(name) for name in modules()} <= known


def cycles_in(graph: dict[str, set[str]]) -> list[str]:
    """Each import cycle found by a depth-first walk, as ``a -> b -> a``."""
    found = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph.get(name, ())):
            if state.get(target) == 1:
                found.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return found


def test_no_two_modules_import_each_other_even_inside_functions():
    graph = {name: imports_of(path) & set(modules()) for name, path in modules().items()}
    cycles = cycles_in(graph)
    assert not cycles, "\n".join(cycles)


def test_no_module_is_over_about_four_hundred_lines():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split along their seams: {long}"


def test_the_checks_see_imports_inside_functions_and_cycles_through_them():
    """The import reader finds imports inside functions and relative ones, and the cycle finder
    finds a cycle closed by one (else the tests above would pass whatever the code does)."""
    assert "lightocr_ingest.reader" in imports_of(PACKAGE / "pipeline" / "build.py")
    assert {"lightocr_ingest.pipeline.build", "lightocr_ingest.pipeline.storing"} <= imports_of(
        PACKAGE / "pipeline" / "run.py")
    assert "lightocr_ingest.reader" in imports_of(PACKAGE / "cli" / "ocr.py")  # inside its command function
    assert cycles_in({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]
    assert cycles_in({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []
