"""The package's layout explains itself: one concept per module, no import cycles, all documented."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ftcourse"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ftcourse module `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ftcourse"):
            names = {_name(p) for p in MODULES}
            subs = {f"{node.module}.{a.name}" for a in node.names} & names
            found |= subs or {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("ftcourse")}
    return found - {_name(path)}


def test_no_import_cycle_inside_the_package():
    graph = {_name(p): _imports(p) for p in MODULES}
    # a package's __init__ may gather its own submodules; the submodules must not import it back
    done, stack = set(), []

    def visit(node):
        if node in stack:
            raise AssertionError(
                "import cycle: " + " -> ".join(stack[stack.index(node) :] + [node])
            )
        if node in done:
            return
        stack.append(node)
        for dep in graph.get(node, ()):
            if dep != "ftcourse":  # `from ftcourse import CourseError` is the package's front door
                visit(dep)
        stack.pop()
        done.add(node)

    for module in graph:
        visit(module)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_says_its_one_concept_in_its_first_line(path):
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc, f"{path.name} has no docstring"
    first = doc.splitlines()[0]
    assert first.endswith((".", "?", ":")) and len(first) <= 105, first


def test_the_readme_table_names_every_module():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### How the code is organised") :].split("\n\n###")[0]
    for path in MODULES:
        if path.parent == PACKAGE and path.stem not in ("__init__", "__main__"):
            assert f"`{path.stem}`" in table, f"README's module table lacks {path.stem}"


MAX_MODULE_LINES = 600  # past this a module holds more than one concept: split it


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_600_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.name} has {lines} lines: split it by concept"


def test_nothing_follows_a_main_guard():
    for path in MODULES:
        tree = ast.parse(path.read_text())
        guards = [
            i
            for i, node in enumerate(tree.body)
            if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
        ]
        assert all(i == len(tree.body) - 1 for i in guards), f"{path.name} defines after its guard"
