"""Notebook 07's exercises (your own data): convert, score, find leaks, repair a slipped file.

The checkers build their own rename records (the notebook's shape: an instruction naming the old
and new name, the code as `input`, the renamed code as `output`), so they need no file. 07.4's
file comes from `slipped_file`, so that its solution needs nothing another notebook wrote.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

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


# 07.4: a file whose outputs slipped by one record, as when one cell of a spreadsheet's output
# column is deleted and the cells below move up. Every record stays valid, so nothing refuses it.
SLIP_FROM = 120  # the first record whose output is the next record's
STEPS = 60  # each of the exercise's two training runs (--max-steps)
_SNIPPETS = (
    _CODE,
    "{v} = load()\nprint({v})",
    "def area({v}):\n    return {v} * {v}",
    "if {v} is None:\n    {v} = []",
)


def _made_up(rng: random.Random) -> str:
    return "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(3))


def renames(n: int, seed: int) -> list[dict]:
    """`n` rename records with made-up names, each on one of four snippets."""
    rng, out = random.Random(seed), []
    while len(out) < n:
        old, new = _made_up(rng), _made_up(rng)
        if old != new:
            out.append(_record(old, new, rng.choice(_SNIPPETS)))
    return out


def slipped(records: list[dict], start: int = SLIP_FROM) -> list[dict]:
    """The records with each output from `start` on replaced by the next record's (one lost)."""
    moved = [
        {**r, "output": after["output"]} for r, after in zip(records[start:], records[start + 1 :])
    ]
    return records[:start] + moved


def slipped_file(folder: str | Path) -> Path:
    """07.4's file: 300 rename records whose outputs slip by one from record `SLIP_FROM` on."""
    path = Path(folder) / "renames_slipped.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in slipped(renames(301, seed=3))))
    return path


# 07.4's bars, measured on cpu-tiny (STEPS steps): best validation loss 1.80 on the slipped file,
# 0.57 on its intact records (the slipped ones dropped), 0.74 with every output rebuilt
LOSS_MAX = 1.0  # the repaired file's best validation loss, at most
RATIO_MIN = 1.5  # the slipped file's over the repaired file's, at least


@checker(
    "07.4",
    "hard",
    "write `repair(records)`: the slipped file's records with every record whose output is not "
    "the rename its instruction asks for dropped (or its output rebuilt from its input), then run "
    "the cell: it trains on both files and passes their two best validation losses.",
)
def _07_4(repair, loss):
    records = renames(40, seed=7)
    broken = slipped(records, 25)  # another place than the file's: the slip is found, not known
    got = repair([dict(r) for r in broken])
    if not isinstance(got, list) or not all(isinstance(r, dict) for r in got):
        return wrong("Return a list of records (dicts), the ones to train on.")
    if any(r.get("output", "").strip() != _renamed(r).strip() for r in got):
        return wrong(
            "Some records kept have an output that is another record's code: compare each "
            "output with its input renamed as its instruction says (07.2's rule), not with "
            "a fixed record number."
        )
    if len(got) < 25:
        return wrong(
            f"{len(got)} of the 25 intact records are left: keep every record whose output is "
            "its own rename; only those from the slip on are wrong."
        )
    if not isinstance(loss, dict) or set(loss) != {"slipped", "repaired"}:
        return wrong('Pass the losses the cell measured: {"slipped": ..., "repaired": ...}.')
    if loss["repaired"] > LOSS_MAX:
        return wrong(
            f"Trained on your repaired file the best validation loss is {loss['repaired']:.2f}, "
            f"above {LOSS_MAX}: did the cell train on what `repair` returned, for {STEPS} steps "
            "on cpu-tiny?"
        )
    if loss["slipped"] < RATIO_MIN * loss["repaired"]:
        return wrong(
            f"The slipped file's validation loss ({loss['slipped']:.2f}) should be far above the "
            f"repaired one's ({loss['repaired']:.2f}): did each run train on its own file?"
        )
    return CORRECT


EXERCISES = [_07_1, _07_2, _07_3, _07_4]
