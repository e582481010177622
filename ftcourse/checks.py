"""Checked exercises: each checker accepts a correct answer and gives a useful hint for a wrong one.

In a notebook:

    answer = None  # your code here
    check("04.1", answer)

A checker never raises: an unfinished exercise prints "not attempted yet" and the notebook keeps
running top to bottom. The returned `Feedback` is truthy only when the answer is correct, so the
solutions notebooks can `assert check(...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

LEVELS = ("easy", "medium", "hard")


@dataclass(frozen=True)
class Feedback:
    """The verdict on one exercise answer."""

    exercise: str
    status: str  # "correct", "wrong" or "not attempted"
    message: str

    def __bool__(self) -> bool:
        return self.status == "correct"

    def __str__(self) -> str:
        mark = {"correct": "✅", "wrong": "❌", "not attempted": "⏳"}[self.status]
        return f"{mark} exercise {self.exercise}: {self.status}. {self.message}".rstrip()

    def _repr_html_(self) -> str:
        color = {"correct": "#1a7f37", "wrong": "#cf222e", "not attempted": "#9a6700"}[self.status]
        return f'<div style="color:{color};font-family:monospace">{self}</div>'


@dataclass(frozen=True)
class Exercise:
    """A registered exercise: its id ("NN.k"), level, task text and checker."""

    id: str
    level: str
    task: str
    checker: Callable[..., str | None]  # returns None when right, else a hint


EXERCISES: dict[str, Exercise] = {}


def exercise(id: str, level: str, task: str):
    """Register a checker: it returns None for a correct answer, or a hint saying what to look at."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}")

    def register(fn: Callable[..., str | None]) -> Callable[..., str | None]:
        EXERCISES[id] = Exercise(id, level, task, fn)
        return fn

    return register


def check(id: str, *answers) -> Feedback:
    """Check answers to exercise `id`; print and return the feedback (never raises)."""
    _load_checkers()
    if id not in EXERCISES:
        fb = Feedback(id, "wrong", f"no such exercise; known: {', '.join(sorted(EXERCISES))}")
    elif not answers or any(a is None or a is ... for a in answers):
        fb = Feedback(id, "not attempted", f"Hint: {EXERCISES[id].task}")
    else:
        try:
            hint = EXERCISES[id].checker(*answers)
        except Exception as exc:  # a learner's broken answer is feedback, not a crash
            hint = f"checking your answer raised {type(exc).__name__}: {exc}"
        fb = Feedback(id, "wrong", hint) if hint else Feedback(id, "correct", "Well done.")
    print(fb)
    return fb


def _load_checkers() -> None:
    import ftcourse.exercises  # noqa: F401  (registers every notebook's checkers)
