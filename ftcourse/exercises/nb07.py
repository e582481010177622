"""Notebook 07's exercises (your own data): convert a record, score without a reference, find leaks.

The checkers build their own rename records (the notebook's shape: an instruction naming the old
and new name, the code as `input`, the renamed code as `output`), so they need no file.
"""

from __future__ import annotations

import re

from ftcourse.exercises.core import CORRECT, checker, wrong

_CODE = "{v} = 0\nfor item in items:\n    {v} += item\nsubtotal = {v}"


def _record(old: str, new: str, code: str = _CODE) -> dict:
    return {
        "instruction": f"Rename the variable `{old}` to `{new}`.",
        "input": code.format(v=old),
        "output": code.format(v=new),
    }


@checker(
    "07.1",
    "easy",
    "write `to_sharegpt(record)`: the rename record (Alpaca) as "
    '{"conversations": [{"from": "human", ...}, {"from": "gpt", ...}]}, the instruction and the '
    "code in the human turn as `ftcourse.data.to_messages` joins them.",
)
def _07_1(to_sharegpt):
    from ftcourse.data import to_messages, validate

    for record in (_record("tulufa", "zige"), {**_record("total", "n"), "input": ""}):
        got = to_sharegpt(record)
        if not isinstance(got, dict) or "conversations" not in got:
            return wrong('Return a dict with one key, "conversations": a list of turns.')
        try:
            validate([got], fmt="sharegpt")
        except Exception as exc:  # the validator's message names the field
            return wrong(f"Not valid ShareGPT: {exc}. Turns use `from` (human/gpt) and `value`.")
        if to_messages(got) != to_messages(record):
            return wrong(
                "The turns' texts differ from `to_messages(record)`: the human turn is the "
                "instruction, a blank line, then the input (just the instruction when the input "
                "is empty); the gpt turn is the output."
            )
    return CORRECT


def _names(instruction: str) -> tuple[str, str]:
    old, new = re.findall(r"`([^`]+)`", instruction)[:2]
    return old, new


def _renamed(record: dict) -> str:
    old, new = _names(record["instruction"])
    return re.sub(rf"\b{re.escape(old)}\b", new, record["input"])


@checker(
    "07.2",
    "medium",
    "write `score(record, answer)`: True when the answer is the record's input with every "
    "whole-word use of the old name replaced by the new one (names from the instruction), "
    'without reading record["output"].',
)
def _07_2(score):
    record = _record("total", "n_items")  # `subtotal` must stay
    cases = [
        (record["output"], True, "the right rename"),
        (record["output"] + "\n", True, "the right rename with a trailing newline"),
        (record["input"], False, "the code unchanged"),
        (record["output"].replace("subtotal", "subn_items"), False, "`subtotal` renamed too"),
        (record["output"].replace("n_items +=", "total +="), False, "one use left unrenamed"),
    ]
    hidden = {k: v for k, v in record.items() if k != "output"}
    for answer, expected, what in cases:
        try:
            got = score(hidden, answer)
        except KeyError as exc:
            return wrong(f"It read {exc}: compute the expected code from `input` and the names.")
        if bool(got) != expected:
            return wrong(
                f"For {what} it said {got!r}. Replace whole words only: "
                r"`re.sub(rf'\b{re.escape(old)}\b', new, code)`, and compare after `.strip()`."
            )
    return CORRECT


@checker(
    "07.3",
    "hard",
    "write `leaks(train_records, test_records)`: the sorted names (old or new, from the test "
    "records' instructions) that occur as a whole word anywhere in the training records' text.",
)
def _07_3(leaks):
    train = [_record("tulufa", "zige"), _record("kemo_rafi", "bido")]
    test = [_record("zige", "pamu"), _record("rafi", "kemo"), _record("lofi", "su")]
    # zige leaks; "rafi" and "kemo" occur only inside kemo_rafi, a different word; "su" only
    # inside "subtotal"
    expected = ["zige"]
    got = leaks(train, test)
    if not isinstance(got, list):
        return wrong(f"Return a sorted list of names, not a {type(got).__name__}.")
    if got == sorted({"zige", "rafi", "kemo", "su"}) or ("su" in got and "zige" in got):
        return wrong(
            "You matched parts of words: `su` is inside `subtotal`, `kemo` inside `kemo_rafi`. "
            r"Match whole words (`\b` in a regex, or split the text into words with `\w+`)."
        )
    if got != expected:
        return wrong(
            f"Got {got}. Collect both names of every test instruction, then keep those that "
            "appear as a word in any training instruction, input or output."
        )
    return CORRECT


EXERCISES = [_07_1, _07_2, _07_3]
