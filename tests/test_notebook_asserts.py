"""No assert in a notebook holds by construction: each checks something the run could get wrong.

`vacuous_asserts` reads a notebook's code cells and names the asserts that cannot fail:

- a rate bounded by its own range (`0 <= accuracy <= 1`, `0 <= pct <= 100`);
- a test built from constants only, directly or through names assigned only from constants
  (`size = 4096 * 8 * 2` then `assert 10e6 < size`);
- a comparison of an expression with itself;
- a profile's name found in the table it was picked from (`profile.name in PROFILES`);
- the automatic choice checked against the rule that chose it (`fits(auto_profile(hw), hw)`).

And a notebook that reads a committed measurement (a file under docs/) must say that it is
committed and give the command that re-measures it, so that it never passes a re-read file off
as measured in front of the learner.
"""

import ast
import json
import re
from pathlib import Path

import pytest
from repo_files import code_cell_sources

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb")) + sorted(
    (ROOT / "notebooks" / "solutions").glob("[0-9][0-9]*_*.ipynb")
)
COMMITTED = {p.name for p in (ROOT / "docs").iterdir() if p.suffix in {".json", ".csv"}}
# The commands that re-measure a committed figure (the Makefile's targets or a script run)
REMEASURE = re.compile(r"make (sweep|train-speed|determinism|base-model)|python benchmarks/")


def _constant_names(tree: ast.AST) -> set[str]:
    """Names every assignment of which is built from constants (and such names) only."""
    values: dict[str, list[ast.AST]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    values.setdefault(target.id, []).append(node.value)
                else:  # unpacking, attributes: not followed, so never constant
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            values.setdefault(name.id, []).append(target)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.With, ast.NamedExpr)):
            for name in ast.walk(getattr(node, "target", node)):
                if isinstance(name, ast.Name):
                    values.setdefault(name.id, []).append(node)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
            names = [node.name] if hasattr(node, "name") else []
            names += [a.asname or a.name.split(".")[0] for a in getattr(node, "names", [])]
            for name in names:
                values.setdefault(name, []).append(node)
    constant: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, assigned in values.items():
            if name not in constant and all(_is_constant(v, constant) for v in assigned):
                constant.add(name)
                changed = True
    return constant


def _is_constant(node: ast.AST, constant: set[str]) -> bool:
    """An expression of literals, arithmetic and names known to be constant."""
    allowed = (ast.Constant, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.Tuple, ast.List)
    operators = (ast.operator, ast.unaryop, ast.cmpop, ast.boolop, ast.expr_context)
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            if child.id not in constant:
                return False
        elif not isinstance(child, allowed + operators):
            return False
    return True


def _bounded_rate(test: ast.AST) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 2):
        return False
    low, high = test.left, test.comparators[1]
    return (
        isinstance(low, ast.Constant)
        and isinstance(high, ast.Constant)
        and low.value == 0
        and high.value in (1, 100)
        and all(isinstance(op, (ast.LtE, ast.Lt)) for op in test.ops)
    )


def _same_both_sides(test: ast.AST) -> bool:
    if not isinstance(test, ast.Compare):
        return False
    sides = [ast.dump(e) for e in [test.left, *test.comparators]]
    return len(set(sides)) < len(sides)


def _picked_from_its_table(test: ast.AST) -> bool:
    return (
        isinstance(test, ast.Compare)
        and any(isinstance(op, ast.In) for op in test.ops)
        and isinstance(test.left, ast.Attribute)
        and test.left.attr == "name"
        and any(isinstance(c, ast.Name) and c.id == "PROFILES" for c in test.comparators)
    )


def _checked_by_its_own_rule(test: ast.AST) -> bool:
    for call in ast.walk(test):
        if (
            isinstance(call, ast.Call)
            and getattr(call.func, "id", getattr(call.func, "attr", "")) == "fits"
        ):
            for arg in call.args:
                if isinstance(arg, ast.Call) and getattr(arg.func, "id", "") == "auto_profile":
                    return True
    return False


def _conjuncts(test: ast.AST) -> list[ast.AST]:
    """`a and b and c` as [a, b, c]: each part of an assert must be able to fail on its own."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return [part for value in test.values for part in _conjuncts(value)]
    return [test]


def vacuous_asserts(sources: list[str]) -> list[str]:
    """Each assert in these code cells that holds by construction, as 'cell N: reason: code'."""
    trees = [ast.parse(source) for source in sources]
    constant = _constant_names(ast.Module(body=[n for t in trees for n in t.body], type_ignores=[]))
    found = []
    for index, tree in enumerate(trees):
        for node in ast.walk(tree):
            if not isinstance(node, ast.Assert):
                continue
            for test in _conjuncts(node.test):
                reason = (
                    _bounded_rate(test)
                    and "a rate bounded by its own range"
                    or _is_constant(test, constant)
                    and "built from constants only"
                    or _same_both_sides(test)
                    and "an expression compared with itself"
                    or _picked_from_its_table(test)
                    and "a profile's name found in the table it was picked from"
                    or _checked_by_its_own_rule(test)
                    and "the automatic choice checked against the rule that chose it"
                )
                if reason:
                    found.append(f"cell {index}: {reason}: {ast.unparse(test)}")
    return found


def committed_reads(path: Path) -> list[str]:
    """The committed measurement files (under docs/) a notebook's code reads."""
    read = set()
    for source in code_cell_sources(path):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                read |= {name for name in COMMITTED if node.value.endswith(name)}
    return sorted(read)


# ---------------------------------------------------------------- the scanner finds what it should


@pytest.mark.parametrize(
    "cells, reason",
    [
        (["acc = evaluate(model)", "assert 0 <= acc <= 1"], "a rate bounded"),
        (["assert 0 < share <= 100"], "a rate bounded"),
        (
            ["size = 4096 * 8 * 2\nmb = size / 1e6", "assert 10e6 < size\nassert mb > 0"],
            "constants",
        ),
        (["assert True"], "constants"),
        (["assert acc > 0.5 and 0 <= acc <= 1"], "a rate bounded"),
        (["a = run()", "assert a.tokens == a.tokens"], "compared with itself"),
        (["profile = auto_profile(hw)", "assert profile.name in PROFILES"], "picked from"),
        (["assert fits(auto_profile(hw), hw)"], "rule that chose it"),
        (["assert memory.fits(auto_profile(hw), hw), 'too big'"], "rule that chose it"),
    ],
)
def test_the_scanner_names_an_assert_that_cannot_fail(cells, reason):
    found = vacuous_asserts(cells)
    assert found and reason in found[0], found


@pytest.mark.parametrize(
    "cells",
    [
        ["acc = evaluate(model)", "assert acc >= 0.8"],
        ["n = 32", "held_out = test_set[:n]", "assert len(held_out) == n"],
        ["size = 4096 * 8\nsize = adapter_bytes(path)", "assert size < 2e6"],
        ["for k in range(3):\n    pass", "assert k == 2"],
        ["assert lora.tokens > zero.tokens"],
        ["assert chosen.name in PROFILES[hw].names"],
        ["assert fits(profile, hw)"],
    ],
)
def test_the_scanner_lets_a_real_check_pass(cells):
    assert vacuous_asserts(cells) == []


def test_a_committed_file_read_is_found(tmp_path):
    name = sorted(COMMITTED)[0]
    nb = {
        "cells": [
            {"cell_type": "code", "source": [f'json.load(open("docs/{name}"))'], "metadata": {}}
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "99_probe.ipynb"
    path.write_text(json.dumps(nb))
    assert committed_reads(path) == [name]


# ---------------------------------------------------------------- the course's notebooks


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_assert_holds_by_construction(path):
    found = vacuous_asserts(code_cell_sources(path))
    assert not found, f"{path.name}: asserts that cannot fail:\n" + "\n".join(found)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_committed_measurement_is_labelled_with_the_command_that_remeasures_it(path):
    if not committed_reads(path):
        return
    text = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
    assert "committed" in text.lower() and REMEASURE.search(text), (
        f"{path.name} reads {committed_reads(path)} from docs/: say that the figures are a committed "
        "measurement and give the command that re-measures them"
    )
