"""What an exercise is: its id, level and task, the checker's verdict, and the feedback shown.

A checker returns a `Verdict` explicitly: `CORRECT`, or `wrong("a hint saying what to look at")`.
Returning anything else (a forgotten `return` gives None) is a bug in the checker, and `check`
reports it as one instead of calling a wrong answer right.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

LEVELS = ("easy", "medium", "hard")


@dataclass(frozen=True)
class Verdict:
    """A checker's judgement of one answer: right, or wrong with a hint."""

    correct: bool
    hint: str = ""


CORRECT = Verdict(True)


def wrong(hint: str) -> Verdict:
    """The verdict for a wrong answer, with a hint that says what to look at."""
    return Verdict(False, hint)


@dataclass(frozen=True)
class Exercise:
    """An exercise: its id ("NN.k": notebook, number), level, task text and checker."""

    id: str
    level: str
    task: str
    checker: Callable[..., Verdict]


def checker(id: str, level: str, task: str) -> Callable[[Callable[..., Verdict]], Exercise]:
    """Turn a checker function into an `Exercise` (each notebook module lists its own)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}")
    return lambda fn: Exercise(id, level, task, fn)


@dataclass(frozen=True)
class Feedback:
    """The verdict on one exercise answer, as the learner sees it."""

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

    def show(self) -> None:
        """Show the feedback once: coloured in a notebook (not again as the cell's value), else printed."""
        shell = _ipython()
        if shell is None:
            print(self)
            return
        from IPython.display import HTML, display

        display(HTML(self._repr_html_()))
        object.__setattr__(self, "_shown_in", shell.execution_count)

    def _ipython_display_(self) -> None:
        # the value of the cell that called check(): already shown there
        shell = _ipython()
        if getattr(self, "_shown_in", None) != (shell and shell.execution_count):
            from IPython.display import HTML, display

            display(HTML(self._repr_html_()))


def _ipython():
    """The running IPython shell, or None outside one."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()
