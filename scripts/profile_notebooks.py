"""Which notebooks read the profile: the ones the GPU profiles' CPU stand-ins must run too.

A notebook behaves differently on another profile only if its code reads the profile: it uses the
value `ftcourse.setup_notebook()` returns beyond that assignment, mentions $FTCOURSE_PROFILE, or
calls a function of the package that chooses the profile itself (one that calls `choose_profile` or
`notebook_profile`, directly or through other functions, or an exercise checker that does). The
others run the same code on every profile, so the cpu-tiny run checks them. `make standin-test`
runs the notebooks this prints; tests/test_profile_notebooks.py keeps the analysis honest.

Usage: python scripts/profile_notebooks.py [--why]   # one path a line, relative to the repository
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ftcourse"
NOTEBOOK_GLOB = "[0-9][0-9]*_*.ipynb"
CHOOSERS = {"profiles.choose_profile", "profiles.notebook_profile"}  # where the profile is decided
SETUP = "setup_notebook"  # its value is followed by name in the notebook instead


def _imports(tree: ast.AST, here: str = "") -> dict[str, str]:
    """Local name -> what it stands for in the package ("profiles" or "profiles.choose_profile")."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ftcourse"):
            module = node.module.removeprefix("ftcourse").lstrip(".")
            for alias in node.names:
                names[alias.asname or alias.name] = f"{module}.{alias.name}".lstrip(".")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ftcourse"):
                    module = alias.name.removeprefix("ftcourse").lstrip(".")
                    names[alias.asname or alias.name.split(".")[0]] = module
    return names


def _calls(node: ast.AST, names: dict[str, str], local: str) -> set[str]:
    """What a piece of code calls in the package, resolved through its imports."""
    found = set()
    for call in ast.walk(node):
        if not isinstance(call, ast.Call):
            continue
        func = call.func
        if isinstance(func, ast.Name):
            found.add(names.get(func.id, f"{local}.{func.id}"))
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if func.value.id in names:  # ft_train.train(...): a module of the package
                found.add(f"{names[func.value.id]}.{func.attr}".lstrip("."))
    return found


def _checker_id(func: ast.FunctionDef) -> str | None:
    """The exercise id of a function decorated with `@checker("04.1", ...)`, else None."""
    for dec in func.decorator_list:
        if isinstance(dec, ast.Call) and getattr(dec.func, "id", None) == "checker" and dec.args:
            first = dec.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                return first.value
    return None


def _reads_profile_variable(node: ast.AST) -> bool:
    """Whether code looks up $FTCOURSE_PROFILE (the name alone, as `os.environ` is given it); an
    error message that tells the learner to set it reads nothing."""
    return any(
        isinstance(n, ast.Constant) and n.value == "FTCOURSE_PROFILE" for n in ast.walk(node)
    )


def package_readers(package: Path = PACKAGE) -> tuple[set[str], dict[str, str]]:
    """The package's functions and classes that read the active profile ("module.name"), and
    exercise id -> its checker."""
    calls: dict[str, set[str]] = {}
    checkers: dict[str, str] = {}
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(package).with_suffix("").parts)
        module = module.removesuffix("__init__").rstrip(".")
        tree = ast.parse(path.read_text(), filename=str(path))
        names = _imports(tree)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                called = _calls(node, names, module)
                if _reads_profile_variable(node):
                    called.add("profiles.choose_profile")
                calls[f"{module}.{node.name}".lstrip(".")] = called
                if isinstance(node, ast.FunctionDef) and (exercise := _checker_id(node)):
                    checkers[exercise] = f"{module}.{node.name}"
    readers = set(CHOOSERS)
    while True:  # what calls a reader is a reader, but for setup_notebook (followed by name)
        more = {name for name, called in calls.items() if called & readers}
        more = {name for name in more - readers if not name.endswith(f".{SETUP}")}
        if not more:
            return readers, checkers
        readers |= more


def notebook_code(path: Path) -> ast.Module:
    """A notebook's code cells as one module; shell (`!`) and magic (`%`) lines become `pass`."""
    cells = json.loads(path.read_text())["cells"]
    lines = [
        line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip()[:1] in ("!", "%") else line
        for cell in cells
        if cell["cell_type"] == "code"
        for line in "".join(cell["source"]).splitlines()
    ]
    return ast.parse("\n".join(lines), filename=str(path))


def why_it_reads(path: Path, readers: set[str], checkers: dict[str, str]) -> list[str]:
    """The reasons a notebook's behaviour depends on the profile; empty when it does not."""
    tree = notebook_code(path)
    bound = {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and SETUP in ast.unparse(node.value.func)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    reasons = sorted(
        {
            f"reads `{node.id}`, the profile setup_notebook() returned"
            for node in ast.walk(tree)
            if isinstance(node, ast.Name) and node.id in bound and isinstance(node.ctx, ast.Load)
        }
    )
    names = _imports(tree)
    called = _calls(tree, names, "<notebook>")
    for node in ast.walk(tree):  # check("00.2", answer) runs that exercise's checker
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            if "exercises.check" in _calls(node, names, "<notebook>"):
                called.add(checkers.get(node.args[0].value, ""))
    reasons += [f"calls {name}, which reads the profile" for name in sorted(called & readers)]
    if "FTCOURSE_PROFILE" in ast.unparse(tree):
        reasons.append("mentions FTCOURSE_PROFILE")
    return reasons


def all_notebooks(root: Path = ROOT) -> list[Path]:
    """The course's notebooks and their solutions, in the order the course runs them."""
    folder = root / "notebooks"
    return sorted(folder.glob(NOTEBOOK_GLOB)) + sorted((folder / "solutions").glob(NOTEBOOK_GLOB))


def profile_notebooks(root: Path = ROOT) -> dict[Path, list[str]]:
    """Every notebook whose code reads the profile, with the reasons found."""
    readers, checkers = package_readers(root / "ftcourse")
    found = {path: why_it_reads(path, readers, checkers) for path in all_notebooks(root)}
    return {path: reasons for path, reasons in found.items() if reasons}


def main(argv: list[str] | None = None) -> int:
    """Print the notebooks that read the profile, one relative path a line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--why", action="store_true", help="the reasons too, and those left out")
    args = parser.parse_args(argv)
    chosen = profile_notebooks()
    for path in all_notebooks():
        if args.why:
            reasons = chosen.get(path) or ["reads no profile: the cpu-tiny run checks it"]
            print(f"{path.relative_to(ROOT)}: {reasons[0]}" + (" ..." if len(reasons) > 1 else ""))
        elif path in chosen:
            print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
