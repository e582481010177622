"""Notebook 02's exercises (data): a ShareGPT record, near duplicates, a shouting check.

Expected answers come from `ftcourse.data` and the committed data (the `polite` training set,
the dirty copy and its manifest of planted problems).
"""

from __future__ import annotations

from ftcourse.exercises.core import CORRECT, checker, wrong

NEAR_THRESHOLD = 0.6
MIN_SHOUT_LETTERS = 10  # "OK." is short, not shouting (the length check catches it)


def _polite_train() -> list:
    """The clean `polite` training set (what notebook 02's checklist leaves of the dirty copy)."""
    from ftcourse.data import load_records
    from ftcourse.paths import DATA_DIR

    return load_records(DATA_DIR / "polite" / "train.jsonl")


@checker(
    "02.1",
    "easy",
    "set `answer` to a ShareGPT record with a system prompt and two questions, each with its answer.",
)
def _02_1(answer):
    from ftcourse.data import record_format, validate
    from ftcourse.errors import CourseError

    fmt = record_format(answer)
    if fmt != "sharegpt":
        kind = fmt or type(answer).__name__
        what = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}" + (" record" if fmt else "")
        return wrong(
            f"That is {what}. ShareGPT is "
            '{"conversations": [{"from": "system", "value": ...}, {"from": "human", ...}, ...]}.'
        )
    try:
        validate([answer], source="answer")
    except CourseError as err:
        return wrong(f"`validate([answer])` says: {err}")
    roles = [turn["from"] for turn in answer["conversations"]]
    if roles[0] != "system":
        return wrong(f"The roles are {roles}: the system prompt comes first, as a 'system' turn.")
    if roles.count("gpt") != 2:
        return wrong(f"The roles are {roles}: two questions need two 'human' and two 'gpt' turns.")
    return CORRECT


@checker(
    "02.2",
    "medium",
    f"set `answer` to the number of records of the clean `polite` set that `drop_near_duplicates` "
    f"removes at threshold {NEAR_THRESHOLD} (instead of the default 0.8).",
)
def _02_2(answer):
    from ftcourse.quality import drop_near_duplicates

    records = _polite_train()
    kept, removed = drop_near_duplicates(records, threshold=NEAR_THRESHOLD)
    if answer == len(removed):
        return CORRECT
    if answer == len(kept):
        return wrong(f"{answer} records are kept; count the removed ones (the report).")
    if answer == len(drop_near_duplicates(records)[1]):
        return wrong(
            f"{answer} is the count at the default threshold 0.8: pass threshold={NEAR_THRESHOLD}."
        )
    return wrong(
        f"Not {answer}: run `drop_near_duplicates(clean, threshold={NEAR_THRESHOLD})` and count "
        "the records in its report (the second element)."
    )


@checker(
    "02.3",
    "hard",
    "write a check `answer(records)` in the checklist's style, returning (kept records, list of "
    "Removed(index, 'drop_shouting', reason)) for answers with at least "
    f"{MIN_SHOUT_LETTERS} letters of which more than half are capitals.",
)
def _02_3(answer):
    import json

    from ftcourse.data import load_records
    from ftcourse.paths import DATA_DIR
    from ftcourse.quality import Removed, drop_empty, drop_invalid, run_checklist

    def alpaca(output):
        return {"instruction": "Make this request polite.", "input": "Call me.", "output": output}

    cases = [  # (answer text, shouting?)
        ("Could you please call me?", False),
        ("COULD YOU PLEASE CALL ME?!!", True),
        ("COULD you please call me?", False),
        ("COULD YOU PLEASE call me soon?", True),
        ("ABCDEFGHIJklmnopqrst", False),  # exactly half: not more than half
        ("OK.", False),  # too short to shout
        ("Could you call the NASA HQ?", False),
    ]
    records = [alpaca(text) for text, _ in cases]
    result = answer(list(records))
    if not (isinstance(result, tuple) and len(result) == 2):
        return wrong("Return a pair like every check: (kept records, list of Removed).")
    kept, removed = result
    if not all(isinstance(r, Removed) for r in removed):
        return wrong("Report each removed record as `Removed(index, 'drop_shouting', reason)`.")
    if any(r.check != "drop_shouting" or not r.reason for r in removed):
        return wrong("Each Removed needs check='drop_shouting' and a reason saying what was wrong.")
    got = {r.index for r in removed}
    for i, (text, shouting) in enumerate(cases):
        if (i in got) != shouting:
            verdict = "removed" if i in got else "kept"
            letters = [c for c in text if c.isalpha()]
            caps = sum(c.isupper() for c in letters)
            return wrong(
                f"You {verdict} {text!r} ({caps} of {len(letters)} letters are capitals). Remove "
                f"an answer when it has at least {MIN_SHOUT_LETTERS} letters and capitals are "
                "more than half of them; index is the record's position in `records`."
            )
    if kept != [r for i, r in enumerate(records) if i not in got]:
        return wrong("Return the records you did not remove, in their order, as the first element.")

    dirty = load_records(DATA_DIR / "dirty" / "polite_dirty.jsonl")
    manifest = json.loads((DATA_DIR / "dirty" / "manifest.json").read_text())
    shouted = {p["index"] for p in manifest["planted"] if "shout" in p["problem"]}
    _, report = run_checklist(dirty, [drop_empty, drop_invalid, answer])
    found = {r.index for r in report if r.check == "drop_shouting"}
    if found != shouted:
        return wrong(
            f"On the dirty set you removed records {sorted(found)}; the manifest's shouted ones "
            f"are {sorted(shouted)}: the rule passed the seven examples above but not the real "
            "data. Count letters (not characters) in the answer, and compare capitals with them."
        )
    return CORRECT


EXERCISES = [_02_1, _02_2, _02_3]
