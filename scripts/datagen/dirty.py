"""The dirty set: polite/train with planted problems, and a manifest of what was planted where.

Notebook 02 runs the course's data checklist (`ftcourse.quality.checklist`) on polite_dirty.jsonl;
tests/test_datasets.py checks that it removes exactly the planted records, each by the check the
manifest names, and keeps polite/train as it was.
"""

from __future__ import annotations

import json
import random

from ftcourse.data import to_messages

from .common import SEED, load_phrases

PHRASES = load_phrases("dirty.json")
FILLER = PHRASES["filler"]  # sentences that pad an output into a length outlier
ONE_WORD_OUTPUTS = PHRASES["one_word_outputs"]


def plant(rng: random.Random, train: list[dict]) -> list[tuple[float, object, str, str, int]]:
    """(position, record, problem, check that must find it, source index in train).

    Each maker takes a copy of a training record and the running number k (which cycles through
    its variants) and returns (bad record, what was done to it).
    Duplicates go right after their source, so the checklist keeps the original.
    """
    out = []

    def add(problem, check, make, count, after_source=False):
        for k in range(count):
            src = rng.randrange(len(train))
            pos = src + rng.uniform(0.01, 0.99) if after_source else rng.uniform(-0.5, len(train))
            record, how = make(dict(train[src]), k)
            out.append((pos, record, f"{problem}: {how}", check, src))

    def near(r, k):  # the same words as the original: spacing, case or punctuation changed
        how = ["extra spaces in input", "input lower-cased", "output punctuation"][k % 3]
        if how == "extra spaces in input":
            r["input"] = "  " + r["input"].replace(" ", "  ", 2)
        elif how == "input lower-cased":
            r["input"] = r["input"].lower()
        else:
            r["output"] = r["output"][:-1] + {"?": ".", ".": "!", "!": "."}[r["output"][-1]]
        return r, how

    def empty(field):
        return lambda r, k: ({**r, field: ["", " ", "\n"][k % 3]}, f"{field} is blank")

    def long(r, k):
        r["output"] += " " + " ".join(rng.choice(FILLER) for _ in range(rng.randint(12, 20)))
        return r, "output padded with filler sentences"

    def short(r, k):
        return {**r, "output": ONE_WORD_OUTPUTS[k % len(ONE_WORD_OUTPUTS)]}, "one-word output"

    def curt(r, k):
        style = ["echo", "shout", "now", "whatever", "asap"][k % 5]
        text = r["output"]
        r["output"] = {
            "echo": r["input"],
            "shout": text.upper() + "!!",
            "now": text + " Now!",
            "whatever": "Whatever. " + text,
            "asap": text + " ASAP.",
        }[style]
        return r, {"echo": "output repeats the curt request"}.get(style, f"curt output ({style})")

    def sharegpt(r, k):
        prompt = r["instruction"] + "\n\n" + r["input"]
        turns = [{"from": "human", "value": prompt}, {"from": "gpt", "value": r["output"]}]
        return {"conversations": turns}, "ShareGPT record in an Alpaca file"

    def messages(r, k):
        return {"messages": to_messages(r)}, "messages record in an Alpaca file"

    def broken(r, k):
        how = [
            "output renamed to response",
            "output is a list",
            "instruction is null",
            "input is a number",
            "record is a bare string",
            "unknown keys",
        ][k % 6]
        if how == "output renamed to response":
            r["response"] = r.pop("output")
        elif how == "output is a list":
            r["output"] = [r["output"]]
        elif how == "instruction is null":
            r["instruction"] = None
        elif how == "input is a number":
            r["input"] = 42
        elif how == "record is a bare string":
            return r["input"], how
        else:
            return {"question": r["input"], "answer": r["output"]}, how
        return r, how

    add(
        "exact duplicate",
        "drop_exact_duplicates",
        lambda r, k: (r, "copy of the record before"),
        20,
        True,
    )
    add("near duplicate", "drop_near_duplicates", near, 20, True)
    add("empty field", "drop_empty", empty("output"), 10)
    add("empty field", "drop_empty", empty("instruction"), 2)
    add("length outlier", "drop_length_outliers", long, 6)
    add("length outlier", "drop_length_outliers", short, 4)
    add("inconsistent tone", "drop_inconsistent_tone", curt, 15)
    add("mixed format", "drop_invalid", sharegpt, 6)
    add("mixed format", "drop_invalid", messages, 4)
    add("malformed", "drop_invalid", broken, 10)
    return out


def make(train: list[dict]) -> tuple[list, dict]:
    """The polite training set with planted problems, and a manifest of what was planted where.

    tests/test_datasets.py checks that the checklist removes exactly the planted records.
    """
    rng = random.Random(SEED + 3)
    planted = plant(rng, train)
    rows = sorted(
        [(float(i), r, None, None, None) for i, r in enumerate(train)] + planted,
        key=lambda row: row[0],
    )
    records = [row[1] for row in rows]
    where = {int(row[0]): n for n, row in enumerate(rows) if row[2] is None}  # train -> here
    manifest = {
        "base": "polite/train.jsonl",
        "records": len(records),
        "planted": [
            {"index": n, "problem": row[2], "check": row[3], "source": where[row[4]]}
            for n, row in enumerate(rows)
            if row[2] is not None
        ],
    }
    return records, manifest


def manifest_json(manifest: dict) -> str:
    """The manifest as JSON, one planted problem a line (a diff then shows what moved):

    {"base": "polite/train.jsonl", "records": 1297, "planted": [
      {"index": 40, "problem": "...", "check": "drop_invalid", "source": 988},
      ...
    ]}
    """

    def value(v) -> str:
        if isinstance(v, list):
            return "[\n" + ",\n".join("  " + json.dumps(item) for item in v) + "\n]"
        return json.dumps(v)

    return "{" + ", ".join(f"{json.dumps(k)}: {value(v)}" for k, v in manifest.items()) + "}\n"
