"""Checked exercises: every notebook's exercises, one module each, and `check` to mark an answer.

In a notebook:

    from ftcourse.exercises import check

    answer = None  # your code here
    check("04.1", answer)

`check` never raises: an unfinished exercise shows "not attempted" and the notebook keeps running
top to bottom. The returned `Feedback` is truthy only when the answer is correct, so the solutions
notebooks can `assert check(...)`.
"""

from __future__ import annotations

from ftcourse.exercises import nb00, nb01, nb02, nb03, nb04, nb04b, nb05, nb06, nb07, nb08
from ftcourse.exercises.core import LEVELS, Exercise, Feedback, Verdict

__all__ = ["EXERCISES", "LEVELS", "Exercise", "Feedback", "check"]

EXERCISES: dict[str, Exercise] = {
    e.id: e
    for module in (nb00, nb01, nb02, nb03, nb04, nb04b, nb05, nb06, nb07, nb08)
    for e in module.EXERCISES
}


def check(id: str, *answers) -> Feedback:
    """Check answers to exercise `id`; show and return the feedback (never raises)."""
    if id not in EXERCISES:
        fb = Feedback(id, "wrong", f"no such exercise; known: {', '.join(sorted(EXERCISES))}")
    elif not answers or any(a is None or a is ... for a in answers):
        fb = Feedback(id, "not attempted", f"Hint: {EXERCISES[id].task}")
    else:
        try:
            verdict = EXERCISES[id].checker(*answers)
        except Exception as exc:  # a learner's broken answer is feedback, not a crash
            verdict = Verdict(False, f"checking your answer raised {type(exc).__name__}: {exc}")
        if not isinstance(verdict, Verdict):
            raise TypeError(
                f"the checker of exercise {id} returned {verdict!r}, not a Verdict: "
                "it must return CORRECT or wrong(hint)"
            )
        fb = (
            Feedback(id, "correct", "Well done.")
            if verdict.correct
            else Feedback(id, "wrong", verdict.hint)
        )
    fb.show()
    return fb
