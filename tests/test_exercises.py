"""Exercises: checkers accept right answers, hint on wrong ones, and never break a notebook."""

import json
import re
from pathlib import Path

import pytest

from ftcourse.exercises import EXERCISES, LEVELS, check
from ftcourse.paths import NOTEBOOK_GLOB

ROOT = Path(__file__).resolve().parents[1]


def test_not_attempted_is_not_an_error(capsys):
    fb = check("00.1", None)
    assert fb.status == "not attempted" and not fb
    assert "Hint" in capsys.readouterr().out


def test_right_and_wrong_answers():
    assert check("00.1", "t4")
    wrong = check("00.1", "gpu-24gb")
    assert not wrong and wrong.status == "wrong" and "bf16" in wrong.message


def test_a_crashing_answer_is_feedback_not_an_exception():
    fb = check("04b.3", lambda losses, patience: 1 / 0)
    assert fb.status == "wrong" and "ZeroDivisionError" in fb.message


def test_unknown_exercise():
    fb = check("99.9", 1)
    assert fb.status == "wrong" and not fb
    assert fb.message.startswith("no such exercise; known: 00.1, 00.2") and "06.3" in fb.message


def _code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize(
    "path", sorted((ROOT / "notebooks").glob(NOTEBOOK_GLOB)), ids=lambda p: p.name
)
def test_every_notebook_has_three_levels_of_checked_exercises(path):
    ids = set(re.findall(r'check\("(\d\d[a-z]?\.\d+)"', _code(path)))
    mine = {i for i in ids if i.split(".")[0] == path.name.split("_")[0]}
    assert mine, f"{path.name} has no checked exercises"
    assert {EXERCISES[i].level for i in mine} >= set(LEVELS), (
        f"{path.name}: need easy, medium and hard"
    )
    solutions = ROOT / "notebooks" / "solutions" / f"{path.stem}_solutions.ipynb"
    assert solutions.exists(), f"reference solutions for {path.name} are missing"
    solved = set(re.findall(r'assert check\("(\d\d[a-z]?\.\d+)"', _code(solutions)))
    assert mine <= solved, f"unsolved in {solutions.name}: {sorted(mine - solved)}"


def test_a_checker_that_forgets_its_verdict_is_a_bug_not_a_right_answer(monkeypatch):
    from ftcourse.exercises.core import Exercise

    broken = Exercise("99.1", "easy", "anything", lambda answer: None)
    monkeypatch.setitem(EXERCISES, "99.1", broken)
    with pytest.raises(TypeError, match="not a Verdict"):
        check("99.1", 42)
