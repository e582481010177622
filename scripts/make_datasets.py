"""Write the course's datasets into data/ (see data/README.md). Seeded: same script, same bytes.

    python scripts/make_datasets.py             # rewrites data/polite, bugfix, python_qa and dirty
    python scripts/make_datasets.py --out DIR   # writes them under DIR instead

Held-out splits of `polite` and `bugfix` use their own words and names (verbs, nouns, people,
function and variable names) that never occur in the training split, so a model only passes them
if it learned the skill, not the training sentences. Every record is checked here as it is made:
polite answers pass `polite_score`, bug fixes pass their tests while the buggy input fails them,
and no record is a near duplicate of an earlier one (in either split).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftcourse.data import (  # noqa: E402
    STOPWORDS,
    polite_score,
    save_jsonl,
    to_messages,
    validate,
    word_set,
    words,
)

SEED = 2024
NEAR_DUPLICATE = 0.8  # the same threshold as ftcourse.data.drop_near_duplicates
SIZES = {  # (train, test)
    "polite": (1200, 250),
    "bugfix": (1200, 250),
    "python_qa": (600, 120),
}


def stable_choice(options: list, text: str, salt: str = ""):
    """An option picked by a hash of the text: the same text always gets the same option."""
    digest = hashlib.sha256((salt + text).encode()).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]


class Deduper:
    """Accepts a record only when no accepted record shares `NEAR_DUPLICATE` of its words.

    The rule of `ftcourse.data.drop_near_duplicates`, made fast for thousands of candidates:
    word sets become bit masks (intersection = popcount of an AND), and prefix filtering keeps
    comparisons few: with every set sorted in one fixed order (rare-looking words first, the
    `common` frame words last), two sets with Jaccard >= t share a word among the first
    |set| - ceil(t * |set|) + 1 words of each, so only those words are indexed and looked up.
    """

    def __init__(self, common: set[str]) -> None:
        self.common = common
        self.bits: dict[str, int] = {}
        self.index: dict[str, list[tuple[int, int]]] = {}
        self.seen: set[int] = set()

    def add(self, record: dict) -> bool:
        ws = word_set(record)
        mask = sum(1 << self.bits.setdefault(w, len(self.bits)) for w in ws)
        if mask in self.seen:  # the commonest case, and the cheapest to spot
            return False
        order = sorted(ws, key=lambda w: (w in self.common, -len(w), w))
        prefix = order[: len(ws) - math.ceil(NEAR_DUPLICATE * len(ws)) + 1]
        for other, size in {pair for w in prefix for pair in self.index.get(w, ())}:
            shared = (mask & other).bit_count()
            if shared / (len(ws) + size - shared) >= NEAR_DUPLICATE:  # Jaccard, as in ftcourse.data
                return False
        for w in prefix:
            self.index.setdefault(w, []).append((mask, len(ws)))
        self.seen.add(mask)
        return True


def common_words(*texts: str) -> set[str]:
    """The words of the fixed phrasings (instructions, frames): shared by many records."""
    return set(words(" ".join(texts))) | STOPWORDS


def collect(make, n: int, max_tries: int = 50) -> list[dict]:
    """Call make() until it returned n records (it returns None for a near duplicate)."""
    records = []
    for _ in range(n * max_tries):
        record = make()
        if record is not None:
            records.append(record)
            if len(records) == n:
                return records
    raise RuntimeError(f"only {len(records)} of {n} distinct records: add vocabulary")


# ================================================================ polite

# Content words are split between the splits; "frame" words (the, my, to, by, now...) are shared.
POLITE_WORDS = {
    "train": {
        "doc_verbs": "review print sign check update finish proofread approve archive translate "
        "summarize format scan upload edit read correct submit".split(),
        "give_verbs": "send forward mail give hand".split(),
        "doc_nouns": "report invoice contract slides memo proposal spreadsheet agenda minutes "
        "budget receipt schedule newsletter brochure checklist timesheet handbook roadmap".split(),
        "doc_adjs": "quarterly final latest monthly signed updated weekly annual draft".split(),
        "thing_verbs": "bring move clean fix charge pack carry lock label".split(),
        "thing_nouns": "chairs laptop projector boxes keys printer monitor cables tablet camera "
        "desk whiteboard mugs folders".split(),
        "thing_adjs": "spare old broken blue heavy".split(),
        "book_verbs": "book reserve cancel confirm reschedule arrange".split(),
        "book_nouns": [
            "meeting room",
            "flight",
            "table",
            "taxi",
            "hotel room",
            "train ticket",
            "conference call",
            "dentist appointment",
            "car",
            "desk booking",
        ],
        "people_verbs": "call remind tell ask".split(),
        "names": "Maria Tom Priya Ahmed Lena Carlos Yuki Sam Olivia Ben Fatima Jonas Chloe Diego "
        "Mei Omar Sara Leo Nina Raj".split(),
        "teams": "finance sales design legal marketing support".split(),
        "times": [
            "today",
            "tonight",
            "by Monday",
            "by Tuesday",
            "by Wednesday",
            "before noon",
            "this week",
            "this morning",
        ],
    },
    "test": {
        "doc_verbs": "copy digitize revise annotate publish photocopy staple shred fax circulate "
        "validate rename".split(),
        "give_verbs": "email pass lend".split(),
        "doc_nouns": "estimate manuscript questionnaire itinerary transcript blueprint "
        "certificate warranty syllabus ledger portfolio prospectus inventory diagram".split(),
        "doc_adjs": "preliminary corrected yearly complete detailed original printed".split(),
        "thing_verbs": "wipe polish unpack fetch refill repair tidy stack unplug".split(),
        "thing_nouns": "stapler headphones microphone tripod scanner speakers lamp ladder umbrella "
        "toolbox kettle drawer".split(),
        "thing_adjs": "wooden plastic dusty silver portable".split(),
        "book_verbs": "postpone organize plan secure rebook".split(),
        "book_nouns": [
            "venue",
            "shuttle",
            "workshop",
            "interview",
            "ferry crossing",
            "catering order",
            "guided tour",
            "seminar",
            "bus",
        ],
        "people_verbs": "phone notify warn inform".split(),
        "names": "Ingrid Kofi Beatriz Dmitri Aisha Hiroshi Marta Tariq Elif Sven Amara Pablo Zara "
        "Kenji Lucia Arjun".split(),
        "teams": "research logistics security procurement payroll compliance".split(),
        "times": [
            "tomorrow",
            "by Thursday",
            "by Friday",
            "before lunch",
            "this afternoon",
            "next month",
        ],
    },
}
DETERMINERS = ["the", "the", "my", "our", "your"]
CURT_PREFIXES = ["", "", "", "Just ", "I need you to ", "You need to ", "I want you to "]
CURT_SUFFIXES = [
    "",
    "",
    " Now.",
    " ASAP.",
    " Right now.",
    " Quickly.",
    " Hurry up.",
    " Do it now.",
    " Immediately.",
]
POLITE_FRAMES = [
    "Could you please {core}?",
    "Would you please {core}?",
    "Could you {core}, please?",
    "Would you kindly {core}?",
    "I would appreciate it if you could {core}.",
    "When you have a moment, could you please {core}?",
    "Please {core}. Thank you!",
]
POLITE_INSTRUCTIONS = [
    "Rewrite this request politely.",
    "Make this request polite.",
    "Rephrase the following request in a polite tone.",
    "Turn this curt request into a polite one.",
]


def noun_phrase(rng: random.Random, noun: str, adjs: list[str]) -> str:
    adj = rng.choice(adjs) + " " if rng.random() < 0.4 else ""
    return f"{rng.choice(DETERMINERS)} {adj}{noun}"


def polite_core(rng: random.Random, w: dict) -> str:
    """The request without its curt wrapping: 'send the final report to Maria by Monday'."""
    kind = rng.choice(["doc", "give", "thing", "book", "people"])
    if kind == "people":
        topic = rng.choice(w["doc_nouns"] + w["book_nouns"])
        core = f"{rng.choice(w['people_verbs'])} {rng.choice(w['names'])} about the {topic}"
    elif kind == "book":
        noun = rng.choice(w["book_nouns"])
        article = rng.choice(["the", "an" if noun[0] in "aeiou" else "a"])
        core = f"{rng.choice(w['book_verbs'])} {article} {noun}"
    else:
        group = rng.choice(["doc", "thing"]) if kind == "give" else kind
        obj = noun_phrase(rng, rng.choice(w[f"{group}_nouns"]), w[f"{group}_adjs"])
        verb = rng.choice(w["give_verbs" if kind == "give" else f"{kind}_verbs"])
        core = f"{verb} {obj}"
    if kind == "give":
        to = rng.choice(["me", "name", "team"])
        who = rng.choice(w["names"]) if to == "name" else f"the {rng.choice(w['teams'])} team"
        core = core.replace(" ", " me ", 1) if to == "me" else f"{core} to {who}"
    elif kind != "people" and rng.random() < 0.3:
        who = rng.choice(w["names"]) if rng.random() < 0.5 else f"the {rng.choice(w['teams'])} team"
        core += f" for {who}"
    if rng.random() < 0.4:
        core += " " + rng.choice(w["times"])
    return core


def polite_record(rng: random.Random, w: dict, dedupe: Deduper) -> dict | None:
    core = polite_core(rng, w)
    name = rng.choice(w["names"]) if rng.random() < 0.25 else ""
    prefix, suffix = rng.choice(CURT_PREFIXES), rng.choice(CURT_SUFFIXES)
    request = prefix + core + rng.choice([".", ".", "!"]) + suffix
    if name:
        request = (
            f"{name}, {request if request.startswith('I ') else request[0].lower() + request[1:]}"
        )
    else:
        request = request[0].upper() + request[1:]
    polite = stable_choice(POLITE_FRAMES, request).format(core=core)
    if name:
        polite = f"{name}, {polite if polite.startswith('I ') else polite[0].lower() + polite[1:]}"
    record = {
        "instruction": stable_choice(POLITE_INSTRUCTIONS, request, salt="instruction"),
        "input": request,
        "output": polite,
    }
    if not dedupe.add(record):
        return None
    assert polite_score(request, polite), record
    assert not polite_score(request, request), record  # the curt request itself must fail
    return record


def make_polite() -> dict[str, list[dict]]:
    rng = random.Random(SEED)
    dedupe = Deduper(
        common_words(*POLITE_FRAMES, *POLITE_INSTRUCTIONS, *CURT_PREFIXES, *CURT_SUFFIXES)
    )
    return {
        split: collect(lambda w=POLITE_WORDS[split]: polite_record(rng, w, dedupe), n)
        for split, n in zip(("train", "test"), SIZES["polite"], strict=True)
    }


# ================================================================ bugfix

# Identifier pools; the held-out split's names share no word (split at "_") with the training names.
BUG_NAMES = {
    "train": {
        "seq": [
            ("prices", "price"),
            ("scores", "score"),
            ("weights", "weight"),
            ("ages", "age"),
            ("values", "value"),
            ("numbers", "number"),
            ("items", "item"),
            ("counts", "count"),
            ("sizes", "size"),
            ("amounts", "amount"),
            ("marks", "mark"),
            ("points", "point"),
            ("costs", "cost"),
            ("heights", "height"),
            ("speeds", "speed"),
            ("steps", "step"),
        ],
        "texts": [
            ("words", "word"),
            ("names", "name"),
            ("lines", "line"),
            ("tags", "tag"),
            ("keys", "key"),
            ("notes", "note"),
        ],
        "num": ["n", "num", "limit", "threshold", "level", "cap", "x"],
        "acc": ["result", "total", "acc", "running", "answer"],
        "out": ["seen", "unique", "out", "kept"],
        "idx": ["i", "idx", "pos", "k"],
        "text": ["text", "word", "line", "name", "sentence", "s"],
        "char": ["ch", "char", "letter"],
        "table": ["table", "lookup", "mapping", "stock", "cache"],
        "key": ["key", "field", "entry"],
        "pair": [("a", "b"), ("x", "y"), ("left", "right"), ("first", "second")],
        "bounds": [
            ("low", "high"),
            ("lower", "upper"),
            ("min_value", "max_value"),
            ("start", "end"),
        ],
    },
    "test": {
        "seq": [
            ("readings", "reading"),
            ("votes", "vote"),
            ("deposits", "deposit"),
            ("distances", "distance"),
            ("salaries", "salary"),
            ("grades", "grade"),
            ("temps", "temp"),
            ("lengths", "length"),
            ("ratings", "rating"),
            ("balances", "balance"),
            ("fees", "fee"),
            ("doses", "dose"),
            ("pages", "page"),
            ("laps", "lap"),
        ],
        "texts": [
            ("phrases", "phrase"),
            ("labels", "label"),
            ("titles", "title"),
            ("tokens", "token"),
            ("slogans", "slogan"),
        ],
        "num": ["m", "bound", "cutoff", "quota", "margin", "z"],
        "acc": ["tally", "agg", "subtotal", "outcome", "accum"],
        "out": ["distinct", "collected", "found", "fresh"],
        "idx": ["j", "slot", "cursor", "ix"],
        "text": ["phrase", "label", "caption", "title", "message", "txt"],
        "char": ["glyph", "symbol", "c"],
        "table": ["registry", "ledger", "directory", "catalog", "inventory"],
        "key": ["ident", "code", "sku"],
        "pair": [("p", "q"), ("u", "v"), ("lhs", "rhs"), ("alpha", "beta")],
        "bounds": [("floor", "ceiling"), ("bottom", "top"), ("least", "most"), ("lo", "hi")],
    },
}
BUG_INSTRUCTIONS = [
    "Fix the bug in this function.",
    "This function has a bug. Fix it.",
    "Find and fix the bug in this Python function.",
    "Correct the mistake in this function.",
]


@dataclass(frozen=True)
class Template:
    """A correct function with {slots}, its possible bugs, the calls its tests make, and names.

    Each bug is (kind, correct text, buggy text): one replacement, so exactly one bug.
    """

    code: str
    bugs: tuple[tuple[str, str, str], ...]
    calls: tuple[str, ...]
    names: tuple[tuple[str, ...], tuple[str, ...]]  # function names for (train, test), with slots


T = Template
TEMPLATES = [
    T(
        "def {f}({xs}):\n    {acc} = 0\n    for {x} in {xs}:\n        {acc} += {x}\n    return {acc}",
        (
            ("wrong constant", "{acc} = 0", "{acc} = 1"),
            ("wrong operator", "{acc} += {x}", "{acc} -= {x}"),
            ("wrong return value", "return {acc}", "return {x}"),
        ),
        ("[1, 2, 3]", "[]", "[10]", "[-4, 9, 5]"),
        (
            ("total_{xs}", "add_up_{xs}", "sum_{xs}"),
            ("tally_{xs}", "accumulate_{xs}", "combine_{xs}"),
        ),
    ),
    T(
        "def {f}({xs}):\n    {acc} = 1\n    for {x} in {xs}:\n        {acc} *= {x}\n    return {acc}",
        (
            ("wrong constant", "{acc} = 1", "{acc} = 0"),
            ("wrong operator", "{acc} *= {x}", "{acc} += {x}"),
            ("wrong return value", "return {acc}", "return {x}"),
        ),
        ("[2, 3, 4]", "[]", "[7]", "[-1, 5]"),
        (("multiply_{xs}", "product_of_{xs}"), ("scale_{xs}", "times_{xs}")),
    ),
    T(
        "def {f}({xs}, {n}):\n    {acc} = 0\n    for {x} in {xs}:\n        if {x} > {n}:\n"
        "            {acc} += 1\n    return {acc}",
        (
            ("wrong comparison", "{x} > {n}", "{x} >= {n}"),
            ("wrong comparison", "{x} > {n}", "{x} < {n}"),
            ("wrong constant", "{acc} += 1", "{acc} += 2"),
        ),
        ("[1, 5, 3, 8], 3", "[], 0", "[2, 2, 2], 2", "[10, -1], 0"),
        (("count_above", "how_many_over"), ("tally_exceeding", "exceeding")),
    ),
    T(
        "def {f}({xs}):\n    {acc} = {xs}[0]\n    for {x} in {xs}[1:]:\n        if {x} > {acc}:\n"
        "            {acc} = {x}\n    return {acc}",
        (
            ("wrong comparison", "{x} > {acc}", "{x} < {acc}"),
            ("off-by-one", "{xs}[0]", "{xs}[1]"),
            ("off-by-one", "{xs}[1:]", "{xs}[2:]"),
            ("wrong return value", "return {acc}", "return {x}"),
        ),
        ("[3, 9, 4]", "[5]", "[-2, -7]", "[1, 2, 8, 6]", "[7, 1, 3]"),
        (("largest_{x}", "max_{x}"), ("biggest_{x}", "peak_{x}")),
    ),
    T(
        "def {f}({xs}, {n}):\n    for {i} in range(len({xs})):\n        if {xs}[{i}] == {n}:\n"
        "            return {i}\n    return -1",
        (
            ("wrong comparison", "] == {n}", "] != {n}"),
            ("off-by-one", "len({xs}))", "len({xs}) - 1)"),
            ("wrong constant", "return -1", "return 0"),
            ("wrong return value", "return {i}\n", "return {n}\n"),
        ),
        ("[4, 7, 9], 7", "[4, 7, 9], 9", "[], 1", "[5, 5], 5", "[2, 3], 8"),
        (("position_of_{x}", "find_{x}"), ("locate_{x}", "seek_{x}")),
    ),
    T(
        "def {f}({n}):\n    return {n} % 2 == 0",
        (
            ("wrong constant", "== 0", "== 1"),
            ("wrong operator", "% 2", "// 2"),
            ("wrong constant", "% 2", "% 3"),
        ),
        ("4", "7", "0", "-3", "10", "9"),
        (("is_even", "check_even"), ("divisible_by_two", "evenness")),
    ),
    T(
        "def {f}({xs}):\n    if not {xs}:\n        return 0\n    return sum({xs}) / len({xs})",
        (
            ("wrong operator", ") / len", ") // len"),
            ("wrong variable", "sum({xs}) / len({xs})", "len({xs}) / sum({xs})"),
            ("wrong condition", "if not {xs}", "if {xs}"),
        ),
        ("[1, 2]", "[]", "[4, 4, 5]", "[10]"),
        (("average_{xs}", "mean_{x}"), ("typical_{x}", "midpoint_{xs}")),
    ),
    T(
        "def {f}({n}, {lo}, {hi}):\n    return max({lo}, min({n}, {hi}))",
        (
            ("wrong function", "max({lo}, min(", "min({lo}, max("),
            ("wrong variable", "min({n}, {hi})", "min({n}, {lo})"),
        ),
        ("5, 0, 10", "-3, 0, 10", "42, 0, 10", "7, 7, 9"),
        (("clamp", "clip_{n}"), ("restrict", "confine_{n}")),
    ),
    T(
        "def {f}({s}):\n    return {s}[::-1]",
        (("wrong constant", "[::-1]", "[::1]"), ("wrong slice", "[::-1]", "[:-1]")),
        ("'abc'", "''", "'xy'"),
        (("reverse_{s}", "backwards"), ("mirror_{s}", "flipped")),
    ),
    T(
        "def {f}({s}, {c}):\n    {acc} = 0\n    for {c2} in {s}:\n        if {c2} == {c}:\n"
        "            {acc} += 1\n    return {acc}",
        (
            ("wrong comparison", "{c2} == {c}", "{c2} != {c}"),
            ("wrong constant", "{acc} = 0", "{acc} = 1"),
            ("wrong return value", "return {acc}", "return {c2}"),
        ),
        ("'banana', 'a'", "'', 'x'", "'hello', 'l'", "'abc', 'z'"),
        (("count_{c}", "occurrences"), ("frequency", "instance_tally")),
    ),
    T(
        "def {f}({n}):\n    {acc} = 1\n    for {i} in range(2, {n} + 1):\n        {acc} *= {i}\n    return {acc}",
        (
            ("off-by-one", "{n} + 1)", "{n})"),
            ("wrong operator", "{acc} *= {i}", "{acc} += {i}"),
            ("wrong constant", "{acc} = 1", "{acc} = 0"),
        ),
        ("0", "1", "4", "5"),
        (("factorial", "factorial_of"), ("permutations", "arrangements")),
    ),
    T(
        "def {f}({n}):\n    return sum(range(1, {n} + 1))",
        (("off-by-one", "{n} + 1", "{n}"), ("wrong constant", "range(1,", "range(2,")),
        ("1", "4", "10", "0"),
        (("sum_to_{n}", "triangle"), ("triangular", "gauss_series")),
    ),
    T(
        "def {f}({xs}):\n    return [{x} for {x} in {xs} if {x} > 0]",
        (
            ("wrong comparison", "{x} > 0", "{x} >= 0"),
            ("wrong comparison", "{x} > 0", "{x} < 0"),
            ("wrong constant", "{x} > 0", "{x} > 1"),
        ),
        ("[3, -1, 0, 5]", "[]", "[-2, -4]", "[1]"),
        (("positive_{xs}", "keep_positive"), ("upside_only", "gains_among_{xs}")),
    ),
    T(
        "def {f}({xs}):\n    return [{x} * 2 for {x} in {xs}]",
        (
            ("wrong operator", "{x} * 2", "{x} + 2"),
            ("wrong constant", "{x} * 2", "{x} * 3"),
            ("wrong operator", "{x} * 2", "{x} ** 2"),
        ),
        ("[1, 2, 3]", "[]", "[-4]", "[0, 10]"),
        (("double_{xs}", "twice_{xs}"), ("doubled", "duplicate_each")),
    ),
    T(
        "def {f}({xs}):\n    return {xs}[len({xs}) - 1]",
        (("off-by-one", "len({xs}) - 1", "len({xs})"), ("off-by-one", "- 1]", "- 2]")),
        ("[1, 2, 3]", "[9]", "['a', 'b']"),
        (("last_{x}", "final_{x}"), ("trailing_{x}", "newest_{x}")),
    ),
    T(
        "def {f}({s}):\n    return len({s}.split())",
        (
            ("wrong expression", "len({s}.split())", "len({s})"),
            ("wrong argument", ".split()", ".split(',')"),
        ),
        ("'one two three'", "''", "'hi'", "'a  b'"),
        (("word_count", "count_words"), ("token_tally", "token_length")),
    ),
    T(
        "def {f}({s}):\n    return {s} == {s}[::-1]",
        (("wrong comparison", " == ", " != "), ("wrong slice", "[::-1]", "[1:]")),
        ("'level'", "'abc'", "''", "'ab'"),
        (("is_palindrome", "reads_same"), ("symmetric", "mirrored")),
    ),
    T(
        "def {f}({n}):\n    return {n} * 9 / 5 + 32",
        (
            ("wrong operator", "+ 32", "- 32"),
            ("wrong constant", "9 / 5", "5 / 9"),
            ("wrong operator", "* 9", "+ 9"),
        ),
        ("0", "100", "-40", "37"),
        (("to_fahrenheit", "celsius_to_fahrenheit"), ("thermometer_reading", "thermometer_scale")),
    ),
    T(
        "def {f}({a}, {b}):\n    return 2 * ({a} + {b})",
        (
            ("missing parentheses", "2 * ({a} + {b})", "2 * {a} + {b}"),
            ("wrong operator", "({a} + {b})", "({a} * {b})"),
            ("wrong constant", "2 * (", "4 * ("),
        ),
        ("3, 4", "0, 0", "1, 10", "2.5, 1"),
        (("perimeter", "rectangle_perimeter"), ("border_length", "fence_needed")),
    ),
    T(
        "def {f}({a}, {b}):\n    if {a} > {b}:\n        return {a}\n    return {b}",
        (
            ("wrong comparison", "{a} > {b}", "{a} < {b}"),
            ("wrong variable", "        return {a}", "        return {b}"),
        ),
        ("3, 9", "9, 3", "5, 5", "-1, -8"),
        (("larger", "bigger_of"), ("greater_one", "winner")),
    ),
    T(
        "def {f}({n}):\n    if {n} < 0:\n        return -{n}\n    return {n}",
        (
            ("wrong comparison", "{n} < 0", "{n} > 0"),
            ("wrong return value", "return -{n}", "return {n}"),
        ),
        ("-5", "5", "0", "-12"),
        (("absolute", "magnitude_of"), ("distance_from_zero", "unsigned")),
    ),
    T(
        "def {f}({d}, {k}):\n    if {k} in {d}:\n        return {d}[{k}]\n    return 0",
        (
            ("wrong condition", "if {k} in", "if {k} not in"),
            ("wrong constant", "return 0", "return None"),
            ("wrong return value", "return {d}[{k}]", "return {k}"),
        ),
        ("{'a': 3}, 'a'", "{'a': 3}, 'b'", "{}, 'x'", "{'x': 0, 'y': 7}, 'y'"),
        (("get_or_default", "lookup_count"), ("fetch_quantity", "quantity_for")),
    ),
    T(
        "def {f}({ws}, {n}):\n    return len([{w} for {w} in {ws} if len({w}) > {n}])",
        (
            ("wrong comparison", "len({w}) > {n}", "len({w}) >= {n}"),
            ("wrong comparison", "len({w}) > {n}", "len({w}) < {n}"),
            ("wrong variable", "len({w}) > {n}", "len({ws}) > {n}"),
        ),
        ("['hi', 'hello', 'hey'], 2", "[], 3", "['abc'], 3", "['a', 'bb', 'ccc'], 1"),
        (("count_long_{ws}", "long_ones"), ("verbose_{ws}", "lengthy")),
    ),
    T(
        'def {f}({ws}):\n    return ", ".join({ws})',
        (("wrong constant", '", "', '","'), ("wrong constant", '", "', '" "')),
        ("['a', 'b', 'c']", "[]", "['x']"),
        (("join_{ws}", "comma_list"), ("glue_{ws}", "csv_row")),
    ),
    T(
        "def {f}({n}):\n    return [{i} * {i} for {i} in range({n})]",
        (
            ("off-by-one", "range({n})", "range({n} + 1)"),
            ("wrong operator", "{i} * {i}", "{i} + {i}"),
            ("off-by-one", "range({n})", "range(1, {n})"),
        ),
        ("0", "3", "5"),
        (("squares", "square_numbers"), ("perfect_powers", "quadratics")),
    ),
    T(
        'def {f}({s}):\n    return sum(1 for {c} in {s}.lower() if {c} in "aeiou")',
        (
            ("wrong constant", '"aeiou"', '"aeio"'),
            ("wrong method", ".lower()", ".upper()"),
            ("wrong condition", ' in "aeiou"', ' not in "aeiou"'),
        ),
        ("'Hello'", "''", "'sky'", "'AEIOU'", "'queue'"),
        (("count_vowels", "vowel_count"), ("open_sounds", "vocalic")),
    ),
    T(
        "def {f}({xs}):\n    return {xs}[len({xs}) // 2]",
        (("wrong operator", "// 2", "/ 2"), ("wrong constant", "// 2", "// 3")),
        ("[1, 2, 3]", "[4, 5, 6, 7, 8]", "[9]"),
        (("middle_{x}", "centre_of"), ("median_pick", "halfway")),
    ),
    T(
        "def {f}({a}, {b}):\n    return {a} ** {b}",
        (("wrong operator", " ** ", " * "), ("wrong variable", "{a} ** {b}", "{b} ** {a}")),
        ("2, 3", "5, 0", "3, 2"),
        (("power", "raise_to"), ("exponentiate", "lift")),
    ),
    T(
        "def {f}({n}, {lo}, {hi}):\n    return {lo} <= {n} <= {hi}",
        (
            ("wrong comparison", "{lo} <= {n}", "{lo} < {n}"),
            ("wrong comparison", "{n} <= {hi}", "{n} < {hi}"),
            ("wrong variable", "{n} <= {hi}", "{n} <= {lo}"),
        ),
        ("5, 1, 10", "1, 1, 10", "10, 1, 10", "0, 1, 10", "11, 1, 10"),
        (("in_range", "within"), ("inside_span", "contained")),
    ),
    T(
        "def {f}({xs}):\n    {out} = []\n    for {x} in {xs}:\n        if {x} not in {out}:\n"
        "            {out}.append({x})\n    return {out}",
        (
            ("wrong condition", "not in", "in"),
            ("wrong return value", "return {out}", "return {xs}"),
        ),
        ("[1, 2, 1, 3]", "[]", "[5, 5]"),
        (("dedupe_{xs}", "without_repeats"), ("distinct_{xs}", "drop_copies")),
    ),
    T(
        "def {f}({a}, {b}):\n    return round({a} / {b} * 100, 1)",
        (
            ("wrong constant", "* 100", "* 10"),
            ("wrong variable", "{a} / {b}", "{b} / {a}"),
            ("wrong constant", ", 1)", ", 0)"),
        ),
        ("1, 4", "1, 3", "2, 2"),
        (("percent", "as_percentage"), ("portion", "proportion")),
    ),
    T(
        "def {f}({s}):\n    return len({s}) > 0 and {s}[0].isupper()",
        (
            ("wrong operator", " and ", " or "),
            ("off-by-one", "[0]", "[1]"),
            ("wrong method", ".isupper()", ".islower()"),
        ),
        ("'Hello'", "'hello'", "''", "'A'"),
        (("starts_upper", "is_capitalized"), ("initial_capital", "proper_noun")),
    ),
    T(
        'def {f}({n}):\n    if {n} >= 50:\n        return "pass"\n    return "fail"',
        (
            ("wrong comparison", ">= 50", "> 50"),
            ("wrong constant", "50", "60"),
            ("wrong return value", 'return "pass"', 'return "fail"'),
        ),
        ("50", "49", "75", "0", "55"),
        (("pass_mark", "pass_or_fail"), ("verdict", "exam_outcome")),
    ),
    T(
        "def {f}({d}):\n    {acc} = 0\n    for {k} in {d}:\n        {acc} += {d}[{k}]\n    return {acc}",
        (
            ("wrong variable", "{acc} += {d}[{k}]", "{acc} += {k}"),
            ("wrong operator", "{acc} += ", "{acc} -= "),
            ("wrong constant", "{acc} = 0", "{acc} = 1"),
        ),
        ("{'a': 1, 'b': 2}", "{}", "{'x': 5}"),
        (("sum_values", "stock_total"), ("aggregate", "holdings")),
    ),
    T(
        "def {f}({xs}, {n}):\n    return {xs}[:{n}]",
        (("wrong slice", "[:{n}]", "[{n}:]"), ("off-by-one", "[:{n}]", "[:{n} - 1]")),
        ("[1, 2, 3, 4], 2", "[], 3", "[7, 8], 5"),
        (("first_{xs}", "head"), ("leading_{xs}", "opening")),
    ),
    T(
        "def {f}({xs}):\n    return len([{x} for {x} in {xs} if {x} % 2 == 0])",
        (("wrong constant", "== 0", "== 1"), ("wrong constant", "% 2", "% 3")),
        ("[1, 2, 3, 4]", "[]", "[6, 9, 12]"),
        (("count_even", "evens_in"), ("paired", "divisible_tally")),
    ),
    T(
        "def {f}({n}):\n    return sum(int({c}) for {c} in str({n}))",
        (
            ("wrong function", "return sum(", "return max("),
            ("wrong function", "int({c})", "len({c})"),
        ),
        ("123", "0", "99"),
        (("digit_sum", "sum_of_digits"), ("crossfoot", "numeral_mass")),
    ),
    T(
        "def {f}({a}, {b}):\n    return {a} + {b}",
        (("wrong operator", " + ", " - "), ("wrong operator", " + ", " * ")),
        ("2, 3", "0, 0", "-1, 5"),
        (("add", "plus"), ("combined", "together")),
    ),
]
SLOTS = {  # slot -> (pool, part): a pair pool gives two slots
    "xs": ("seq", 0),
    "x": ("seq", 1),
    "ws": ("texts", 0),
    "w": ("texts", 1),
    "n": ("num", None),
    "acc": ("acc", None),
    "out": ("out", None),
    "i": ("idx", None),
    "s": ("text", None),
    "c": ("char", None),
    "c2": ("char", None),
    "d": ("table", None),
    "k": ("key", None),
    "a": ("pair", 0),
    "b": ("pair", 1),
    "lo": ("bounds", 0),
    "hi": ("bounds", 1),
}


def pick_names(rng: random.Random, template: Template, pools: dict, split: int) -> dict[str, str]:
    """Names for every slot the template uses, all different from each other."""
    text = template.code + "".join(b[2] for b in template.bugs) + "".join(template.names[split])
    used = set(re.findall(r"{(\w+)}", text)) - {"f"}
    while True:
        chosen, names = {}, {}
        for slot in sorted(used):
            pool, part = SLOTS[slot]
            if pool not in chosen or part is None:
                chosen[pool] = rng.choice(pools[pool])
            names[slot] = chosen[pool] if part is None else chosen[pool][part]
        names["f"] = rng.choice(template.names[split]).format(**names)
        if len(set(names.values())) == len(names):
            return names


def passes(code: str, tests: list[str]) -> bool:
    """Run the function and its assert statements; any failure or exception means False."""
    namespace: dict = {}
    try:
        exec(code, namespace)
        for test in tests:
            exec(test, namespace)
    except Exception:
        return False
    return True


def bugfix_record(rng: random.Random, split: int, dedupe: Deduper) -> dict | None:
    template = rng.choice(TEMPLATES)
    kind, right, wrong = rng.choice(template.bugs)
    names = pick_names(rng, template, BUG_NAMES[("train", "test")[split]], split)
    code = template.code.format(**names)
    right, wrong = right.format(**names), wrong.format(**names)
    assert code.count(right) == 1, (code, right)
    buggy = code.replace(right, wrong)
    record = {"instruction": stable_choice(BUG_INSTRUCTIONS, buggy), "input": buggy, "output": code}
    if not dedupe.add(record):
        return None
    namespace: dict = {}
    exec(code, namespace)
    f = names["f"]
    tests = [f"assert {f}({c}) == {eval(f'{f}({c})', namespace)!r}" for c in template.calls]
    assert passes(code, tests) and not passes(buggy, tests), (code, buggy)
    return {**record, "entry_point": f, "tests": tests, "bug": kind}


def make_bugfix() -> dict[str, list[dict]]:
    rng = random.Random(SEED + 1)
    dedupe = Deduper(common_words(*BUG_INSTRUCTIONS, *(t.code for t in TEMPLATES)))
    return {
        split: collect(lambda s=s: bugfix_record(rng, s, dedupe), n)
        for s, (split, n) in enumerate(zip(("train", "test"), SIZES["bugfix"], strict=True))
    }


# ================================================================ python_qa

# (question, answer, [(follow-up question, answer), ...]): written for the course, checked by hand.
CONCEPTS = [
    (
        "What's the difference between a list and a tuple in Python?",
        "A list is mutable: you can append, remove and replace its items. A tuple is immutable: once "
        "created, its items cannot be replaced, which is why a tuple of hashable items can be a "
        "dictionary key and a list cannot.",
        [
            (
                "When should I use a tuple then?",
                "Use a tuple for a fixed group of values that belong together, like a point `(x, y)` or "
                "several values returned from a function. Use a list for a collection that grows or changes.",
            ),
            (
                "How do I write a tuple with a single item?",
                "Add a trailing comma: `(42,)`. Without the comma, `(42)` is just the number 42 in parentheses.",
            ),
        ],
    ),
    (
        "What is a dictionary in Python?",
        "A dict maps keys to values, like `ages = {'ana': 31, 'bo': 25}`. Looking up `ages['ana']` is "
        "fast on average whatever the size, keys must be hashable, and a dict keeps insertion order.",
        [
            (
                "How do I avoid a KeyError for a missing key?",
                "Use `d.get(key)`, which returns None, or a default you pass: `d.get(key, 0)`. Or test "
                "first with `if key in d:`.",
            ),
            (
                "How do I loop over keys and values together?",
                "Use `for key, value in d.items():`. Looping over the dict itself gives only the keys.",
            ),
        ],
    ),
    (
        "What is a set used for?",
        "A set holds unique, hashable items in no particular order. It removes duplicates, so "
        "`set([1, 1, 2])` is `{1, 2}`, and `x in s` is fast on average however big the set is.",
        [
            (
                "How do I create an empty set?",
                "Call `set()`. Writing `{}` creates an empty dict, not a set.",
            ),
            (
                "How do I find the items two sets have in common?",
                "Take the intersection: `a & b` or `a.intersection(b)`. `a | b` is the union and `a - b` "
                "the items of `a` that are not in `b`.",
            ),
        ],
    ),
    (
        "What is a list comprehension?",
        "A compact way to build a list from an iterable: `[x * x for x in range(5)]` gives "
        "`[0, 1, 4, 9, 16]`. An `if` at the end filters items: `[w for w in words if w]`.",
        [
            (
                "Is it faster than a for loop?",
                "Usually a little, but choose it for clarity: when the expression grows long, a plain loop "
                "reads better.",
            ),
            (
                "Can I build a dict the same way?",
                "Yes: `{name: len(name) for name in names}` is a dict comprehension, and "
                "`{n % 3 for n in nums}` a set comprehension.",
            ),
        ],
    ),
    (
        "What is a generator in Python?",
        "A function containing `yield` returns a generator: an iterator that produces values one at "
        "a time, only when asked. It keeps its state between values, so it can walk through a huge "
        "file without holding it all in memory.",
        [
            (
                "What is a generator expression?",
                "A comprehension in parentheses, like `(x * x for x in nums)`. It yields items lazily, so "
                "`sum(x * x for x in nums)` never builds a list.",
            ),
            (
                "Can I loop over the same generator twice?",
                "No. Once exhausted it yields nothing more; call the generator function again to start over.",
            ),
        ],
    ),
    (
        "What is a decorator in Python?",
        "A decorator is a function that takes a function and returns a replacement, usually a "
        "wrapper that adds behaviour. Writing `@timer` above `def f` is shorthand for `f = timer(f)`.",
        [
            (
                "Why do people use functools.wraps in decorators?",
                "`@functools.wraps(func)` on the wrapper copies the original function's name and "
                "docstring, so help() and tracebacks still show the real function.",
            ),
            (
                "Can a decorator take arguments?",
                "Yes, with one more level of functions: `@retry(times=3)` first calls `retry(times=3)`, "
                "which returns the actual decorator.",
            ),
        ],
    ),
    (
        "What do *args and **kwargs mean in a function definition?",
        "`*args` collects extra positional arguments into a tuple, and `**kwargs` collects extra "
        "keyword arguments into a dict. The names are only a convention; the stars do the work.",
        [
            (
                "Can I use the stars when calling a function too?",
                "Yes: `f(*items)` spreads a list into positional arguments, and `f(**options)` spreads a "
                "dict into keyword arguments.",
            ),
            (
                "In what order must the parameters come?",
                "Regular parameters, then `*args`, then keyword-only parameters, then `**kwargs`: "
                "`def f(a, b, *args, flag=False, **kwargs)`.",
            ),
        ],
    ),
    (
        "Why is a mutable default argument a problem?",
        "Default values are evaluated once, when the function is defined. With "
        "`def add(item, bucket=[])`, every call that omits `bucket` shares the same list, so items "
        "pile up from call to call.",
        [
            (
                "What should I write instead?",
                "Use None as the default and create the list inside the function: `if bucket is None: "
                "bucket = []`.",
            ),
            (
                "Are numbers or tuples as defaults a problem too?",
                "No. Immutable defaults such as numbers, strings, tuples and None cannot be changed in "
                "place, so sharing them is harmless.",
            ),
        ],
    ),
    (
        "What is the difference between `is` and `==`?",
        "`==` compares values; `is` checks whether two names refer to the very same object. Two "
        "separate lists with equal items are `==` but not `is`.",
        [
            (
                "When should I use `is`?",
                "For singletons, above all None: write `if x is None`. Compare numbers and strings with `==`.",
            ),
            (
                "Why does `is` sometimes work for small numbers?",
                "CPython caches small integers from -5 to 256, so equal small ints are often the same "
                "object. That is an implementation detail: don't rely on it.",
            ),
        ],
    ),
    (
        "What does the `with` statement do?",
        "It runs a block inside a context manager, which sets something up and is guaranteed to "
        "clean it up, even when an exception occurs. `with open(path) as f:` closes the file when "
        "the block ends.",
        [
            (
                "How do I write my own context manager?",
                "Define `__enter__` and `__exit__` on a class, or decorate a generator function with "
                "`contextlib.contextmanager` and `yield` once where the block should run.",
            ),
            (
                "Can one with statement manage two files?",
                "Yes: `with open(a) as src, open(b, 'w') as dst:` opens both and closes them in reverse order.",
            ),
        ],
    ),
    (
        "How do I handle an exception in Python?",
        "Put the risky code in a `try` block and name the exception you expect, as in "
        "`except ValueError:`. An `else` block runs when nothing was raised, and `finally` runs in "
        "every case.",
        [
            (
                "Is a bare `except:` a good idea?",
                "No. It also catches KeyboardInterrupt and SystemExit and hides real bugs. Catch the "
                "specific exceptions you know how to handle.",
            ),
            (
                "How do I raise my own error?",
                "Use `raise ValueError('size must be positive')`, or define `class MyError(Exception): pass` "
                "and raise that.",
            ),
        ],
    ),
    (
        "What does `__init__` do in a class?",
        "`__init__` initialises a new instance: Python creates the object, then calls "
        "`__init__(self, ...)` with the arguments you passed to the class. It usually sets "
        "attributes such as `self.name = name`.",
        [
            (
                "What is `self`?",
                "The instance the method was called on: `obj.method(x)` runs `Class.method(obj, x)`, so "
                "the first parameter receives the object.",
            ),
            (
                "What is the difference between a class attribute and an instance attribute?",
                "A class attribute is defined in the class body and shared by all instances; an instance "
                "attribute is set on `self` and belongs to one object.",
            ),
        ],
    ),
    (
        "What is a dataclass?",
        "`@dataclasses.dataclass` writes the boilerplate of a class that mainly holds data: from "
        "the annotated fields it generates `__init__`, `__repr__` and `__eq__`.",
        [
            (
                "How do I give a dataclass field a list as its default?",
                "Use `field(default_factory=list)`, so every instance gets its own new list.",
            ),
            (
                "Can a dataclass be immutable?",
                "Yes: with `@dataclass(frozen=True)`, assigning to a field raises an error, and the "
                "instances become hashable.",
            ),
        ],
    ),
    (
        "What is a lambda in Python?",
        "A small anonymous function written as a single expression: `lambda x: x * 2`. It is handy "
        "as a short argument, as in `sorted(names, key=lambda n: n.lower())`.",
        [
            (
                "Can a lambda contain several statements?",
                "No, only one expression. For anything longer, write a normal `def` function with a name.",
            ),
            (
                "Is there something simpler than a lambda for sort keys?",
                "Often `operator.itemgetter`: `sorted(rows, key=itemgetter(1))` sorts rows by their "
                "second item.",
            ),
        ],
    ),
    (
        "How do I get the index while looping over a list?",
        "Use `enumerate`: `for i, item in enumerate(items):` gives the index and the item together, "
        "counting from 0.",
        [
            (
                "Can it count from 1 instead?",
                "Yes, pass a start value: `enumerate(items, start=1)`.",
            ),
            (
                "How do I loop over two lists at the same time?",
                "Use `zip(a, b)`, which pairs the items up and stops at the shorter list; with "
                "`strict=True` it raises an error if the lengths differ.",
            ),
        ],
    ),
    (
        "What is an f-string?",
        "A string literal with an `f` prefix whose expressions in braces are evaluated: "
        "`f'{name} is {age} years old'`.",
        [
            (
                "How do I show a float with two decimals in an f-string?",
                "Add a format spec after a colon: `f'{price:.2f}'` turns 3.14159 into '3.14'.",
            ),
            (
                "Is there a quick way to print a variable together with its name?",
                "Yes: `f'{total=}'` gives 'total=42'.",
            ),
        ],
    ),
    (
        "Why do I get UnboundLocalError when I change a global variable inside a function?",
        "Assigning to a name anywhere in a function makes that name local to the function, so "
        "reading it before the assignment fails; Python does not fall back to the global.",
        [
            (
                "How can I change the global variable then?",
                "Declare it with `global count` at the top of the function. Passing values in and "
                "returning results is usually cleaner.",
            ),
            (
                "What does `nonlocal` do?",
                "In a nested function, `nonlocal x` lets you assign to the `x` of the enclosing function "
                "instead of creating a new local variable.",
            ),
        ],
    ),
    (
        "Does slicing a list make a copy?",
        "Yes: `items[:]` or `items[1:3]` builds a new list. It is a shallow copy: the new list "
        "refers to the same objects as the old one.",
        [
            (
                "What is the difference between a shallow and a deep copy?",
                "A shallow copy copies only the outer container, so nested lists are shared. "
                "`copy.deepcopy` copies the nested objects too.",
            ),
            (
                "How do I get a reversed list without changing the original?",
                "Use `items[::-1]` or `list(reversed(items))`. `items.reverse()` reverses in place and "
                "returns None.",
            ),
        ],
    ),
    (
        "What is the difference between `sort()` and `sorted()`?",
        "`list.sort()` sorts the list in place and returns None. `sorted(iterable)` returns a new "
        "sorted list, works on any iterable and leaves the original unchanged.",
        [
            (
                "How do I sort in descending order?",
                "Pass `reverse=True` to either `sort` or `sorted`.",
            ),
            (
                "Is Python's sort stable?",
                "Yes: items that compare equal keep their original order, so you can sort by a secondary "
                "key first and then by the main key.",
            ),
        ],
    ),
    (
        "What is a virtual environment?",
        "An isolated folder with its own Python interpreter and installed packages, so each project "
        "can have its own versions. Create one with `python -m venv .venv` and activate it before "
        "installing packages.",
        [
            (
                "How do I record the package versions I installed?",
                "Run `pip freeze > requirements.txt`; later `pip install -r requirements.txt` installs "
                "the same versions.",
            ),
            (
                "Should I commit the .venv folder to git?",
                "No: it is large and specific to one machine. Commit the requirements file and add "
                "`.venv` to `.gitignore`.",
            ),
        ],
    ),
    (
        "What does `if __name__ == '__main__':` do?",
        "It runs the block only when the file is executed as a script. When the file is imported, "
        "`__name__` holds the module's name, so the block is skipped.",
        [
            (
                "Why is that useful?",
                "The same file can be both a library and a command: importing it gives you its functions "
                "without running the script part.",
            ),
            (
                "How do I run a module inside a package as a script?",
                "Use `python -m package.module`, which sets up the import path and runs the module with "
                "`__name__` set to '__main__'.",
            ),
        ],
    ),
    (
        "What is None in Python?",
        "None is Python's single 'no value' object. A function without a `return` statement returns "
        "None, and None is a common default meaning 'not given'.",
        [
            (
                "How should I test whether a variable is None?",
                "With `is`: `if result is None:`. A plain `if not result:` would also treat 0, '' and [] "
                "as missing.",
            ),
            (
                "What type does None have?",
                "Its type is `NoneType`, and None is the only instance of it.",
            ),
        ],
    ),
    (
        "What is the difference between an iterable and an iterator?",
        "An iterable is anything you can loop over, like a list. An iterator is the object doing "
        "the walking: each `next()` call returns the next item until StopIteration is raised. "
        "`iter(my_list)` gives an iterator over a list.",
        [
            (
                "Why is my iterator empty the second time I loop over it?",
                "An iterator is used up as you go. Keep the iterable, such as the list, and loop over it "
                "again, or store the items in a list first.",
            ),
            (
                "How do I take only the first few items of an iterator?",
                "Use `itertools.islice(it, 5)`, which works even on endless iterators.",
            ),
        ],
    ),
    (
        "Can I change one character of a string?",
        "No, strings are immutable. Build a new string instead, for example "
        "`s[:3] + 'X' + s[4:]` or `s.replace('a', 'b')`.",
        [
            (
                "Is building a string with += in a loop slow?",
                "It can be, because each `+=` may copy the whole string. Collect the pieces in a list and "
                "call `''.join(pieces)` once.",
            ),
            (
                "How do I turn a string into a list of characters?",
                "Call `list('abc')`, which gives `['a', 'b', 'c']`.",
            ),
        ],
    ),
    (
        "Why is 0.1 + 0.2 not equal to 0.3 in Python?",
        "Floats are stored in binary, and 0.1 and 0.2 have no exact binary form, so their sum is "
        "0.30000000000000004. Compare floats with a tolerance instead of `==`.",
        [
            (
                "How do I compare two floats then?",
                "Use `math.isclose(a, b)`, which allows a small relative difference.",
            ),
            (
                "What if I need exact decimal amounts, like money?",
                "Use `decimal.Decimal('0.1')`, created from strings rather than floats, or count in "
                "whole cents.",
            ),
        ],
    ),
    (
        "Do type hints change how Python runs my code?",
        "No. Annotations like `def area(r: float) -> float:` are stored but not enforced at run "
        "time. Tools such as mypy and your editor use them to find mistakes before you run the code.",
        [
            (
                "How do I annotate a list of strings?",
                "Write `list[str]`; a value that may be missing is `str | None`.",
            ),
            (
                "Where can I see a function's annotations?",
                "In its `__annotations__` attribute, or through `inspect.signature(func)`.",
            ),
        ],
    ),
    (
        "What is the difference between `import math` and `from math import sqrt`?",
        "`import math` binds the module's name, so you write `math.sqrt(2)`. `from math import sqrt` "
        "binds only `sqrt`, so you write `sqrt(2)`.",
        [
            (
                "Is `from math import *` a good idea?",
                "Rarely: it pours many names into your namespace, can silently shadow your own, and hides "
                "where each name comes from.",
            ),
            (
                "Does importing a module twice run its code twice?",
                "No. The first import runs it and caches it in `sys.modules`; later imports reuse the "
                "cached module.",
            ),
        ],
    ),
    (
        "How do I build file paths that work on every operating system?",
        "Use `pathlib.Path`: `Path('data') / 'raw' / 'file.csv'` joins the parts with the right "
        "separator for the system.",
        [
            (
                "How do I read a whole text file with pathlib?",
                "Call `Path('notes.txt').read_text(encoding='utf-8')`; `write_text` does the opposite.",
            ),
            (
                "How do I list all the CSV files in a folder?",
                "Use `Path('data').glob('*.csv')`, or `rglob('*.csv')` to search subfolders as well.",
            ),
        ],
    ),
    (
        "Does range() create a list?",
        "No. `range(10)` is a lazy sequence that computes its numbers on demand, so even "
        "`range(10**9)` takes almost no memory. Wrap it in `list()` when you need a real list.",
        [
            (
                "Why does range(1, 5) stop at 4?",
                "The stop value is excluded, so `range(a, b)` has exactly `b - a` numbers and consecutive "
                "ranges fit together without overlapping.",
            ),
            (
                "How do I count backwards with range?",
                "Give a negative step: `range(10, 0, -1)` counts from 10 down to 1.",
            ),
        ],
    ),
    (
        "When should I use threads and when processes in Python?",
        "In the standard CPython build the global interpreter lock lets one thread run Python code "
        "at a time, so threads help while waiting for the network or disk but not for heavy "
        "computation. For CPU-bound work, use processes.",
        [
            (
                "What is the easiest way to run tasks in parallel?",
                "`concurrent.futures`: create a `ThreadPoolExecutor` or `ProcessPoolExecutor` and call "
                "`executor.map(func, items)`.",
            ),
            (
                "Where does asyncio fit in?",
                "asyncio runs many waiting tasks in one thread, switching at each `await`. It suits lots "
                "of network I/O, not CPU-heavy work.",
            ),
        ],
    ),
]
QA_SYSTEM = [
    None,
    None,
    "You are a helpful Python tutor.",
    "You answer questions about Python briefly and accurately.",
]
QA_ASK = [
    "What does `{e}` evaluate to in Python?",
    "What is the result of `{e}`?",
    "In Python, what do I get from `{e}`?",
    "What value does `{e}` produce?",
]
QA_FOLLOW = ["And `{e}`?", "What about `{e}`?", "Then what does `{e}` give?"]
QA_WORDS = [
    "python",
    "banana",
    "keyboard",
    "notebook",
    "variable",
    "library",
    "lambda",
    "iterator",
    "module",
    "package",
    "string",
    "integer",
    "compiler",
    "syntax",
    "kernel",
    "tensor",
    "adapter",
    "network",
    "gradient",
    "sample",
]


FALSY_OR_NOT = ["0", "''", "' '", "'0'", "[]", "[0]", "0.0", "None", "{}"]


def _ordinal(k: int) -> str:
    return {1: "last", 2: "second", 3: "third", 4: "fourth", 5: "fifth"}[k]


def expression(rng: random.Random, family: str | None = None) -> tuple[str, str, str]:
    """(family, expression, explanation) for one computed question (of `family`, if given)."""
    a, b = rng.randint(7, 60), rng.randint(2, 9)
    w = rng.choice(QA_WORDS)
    i = rng.randint(0, len(w) - 3)
    j = rng.randint(i + 1, len(w))
    k = rng.randint(1, 4)
    nums = rng.sample(range(1, 30), rng.randint(3, 5))
    families = {
        "floor division": (
            f"{a} // {b}",
            f"`//` is floor division: {a} / {b} is {a / b:.4g}, rounded down to {a // b}.",
        ),
        "modulo": (f"{a} % {b}", f"`%` gives the remainder: {a} = {b} * {a // b} + {a % b}."),
        "negative floor division": (
            f"-{a} // {b}",
            f"Floor division rounds toward negative "
            f"infinity: -{a} / {b} is {-a / b:.4g}, and the next whole "
            f"number below it is {-a // b}.",
        ),
        "power": (
            f"{b} ** {k + 1}",
            f"`**` raises {b} to the power {k + 1}: {' * '.join([str(b)] * (k + 1))}.",
        ),
        "true division": (
            f"{a} / {b}",
            "`/` always returns a float in Python 3, even when the division is exact.",
        ),
        "string slice": (
            f"'{w}'[{i}:{j}]",
            f"The slice starts at index {i} and stops before "
            f"index {j}, so it takes {j - i} character{'s' * (j - i > 1)}.",
        ),
        "string reverse": (f"'{w}'[::-1]", "A step of -1 walks through the string backwards."),
        "negative index": (
            f"'{w}'[-{k}]",
            "Negative indexes count from the end: -1 is the "
            "last character" + (f", so -{k} is the {_ordinal(k)} from the end." if k > 1 else "."),
        ),
        "upper": (f"'{w}'.upper()", "`upper` returns a new string with every letter in capitals."),
        "capitalize": (
            f"'{w}'.capitalize()",
            "`capitalize` upper-cases the first character and lower-cases the rest.",
        ),
        "count": (f"'{w}'.count('{w[i]}')", f"`count` returns how many times '{w[i]}' occurs."),
        "find": (
            f"'{w}'.find('{w[j - 1]}')",
            "`find` returns the index of the first match, or "
            "-1 when there is none (`index` would raise ValueError instead).",
        ),
        "replace": (
            f"'{w}'.replace('{w[i]}', '_')",
            f"`replace` returns a new string with every "
            f"'{w[i]}' replaced; the original string is unchanged.",
        ),
        "split": (
            f"'{w},{a},{b}'.split(',')",
            "`split(',')` cuts the string at each comma and returns a list of strings.",
        ),
        "join": (
            f"'-'.join({list(w[: k + 1])!r})",
            "`join` puts the separator between the items, which must all be strings.",
        ),
        "sorted": (f"sorted({nums})", "`sorted` returns a new list in ascending order."),
        "sorted reverse": (
            f"sorted({nums}, reverse=True)",
            "`reverse=True` sorts from largest to smallest.",
        ),
        "list index": (f"{nums}[-1]", "Index -1 is the last item of the list."),
        "list slice": (
            f"{nums}[1:3]",
            "The slice takes the items at indexes 1 and 2; the stop index 3 is excluded.",
        ),
        "range": (
            f"list(range({b}, {b + a // 3}, {k + 1}))",
            f"range starts at {b}, steps by {k + 1} and stops before {b + a // 3}.",
        ),
        "max": (f"max({nums})", "`max` returns the largest item."),
        "sum": (f"sum({nums})", "`sum` adds the items up, starting from 0."),
        "round": (
            f"round({b}.5)",
            f"Python rounds halves to the nearest even number, so {b}.5 becomes {round(b + 0.5)}.",
        ),
        "truthiness": (
            f"bool({rng.choice(FALSY_OR_NOT)})",
            "Zero, None and empty containers (the empty string too) are falsy; "
            "everything else is truthy, even '0', ' ' and [0].",
        ),
        "int parsing": (
            f"int('{a}') + {b}",
            "`int()` turns the string into a number first; "
            "adding a number to a string directly would raise TypeError.",
        ),
        "int truncation": (
            f"int({a}.{b})",
            "`int()` drops the fractional part (it truncates toward zero); use `round()` to round.",
        ),
        "membership": (f"'{w[i:j]}' in '{w}'", "`in` on strings checks for a substring."),
        "chained comparison": (
            f"{b} < {a} < {a + b * (k - 2)}",
            f"A chain means {b} < {a} and {a} < {a + b * (k - 2)}, both tested.",
        ),
        "dict get": (
            f"{{'{w}': {a}}}.get('{rng.choice([w, w[:3]])}', 0)",
            "`get` returns the value for a key, or the default when the key is missing.",
        ),
        "string repeat": (f"'{w[:3]}' * {k + 1}", "Multiplying a string by an integer repeats it."),
        "list concat": (f"{nums[:2]} + {nums[2:]}", "`+` joins two lists into a new list."),
        "type": (f"type({a} / {b})", "`/` always produces a float, so the result is a float."),
        "divmod": (
            f"divmod({a}, {b})",
            "`divmod` returns the quotient and the remainder together, as a tuple.",
        ),
        "set size": (
            f"len({{{', '.join(map(str, nums + nums[:2]))}}})",
            "A set keeps one copy of each value, so the repeated numbers count once.",
        ),
        "str concat": (
            f"str({a}) + str({b})",
            "Both numbers become strings, and `+` on strings concatenates them.",
        ),
        "comprehension": (
            f"[x * {b} for x in range({k + 1})]",
            f"The comprehension multiplies each number from 0 to {k} by {b}.",
        ),
        "zip": (f"list(zip({nums[:2]}, '{w[:2]}'))", "`zip` pairs items up by position."),
        "any": (f"any([0, '', {a}])", "`any` is True when at least one item is truthy."),
    }
    family = family or rng.choice(sorted(families))
    return (family, *families[family])


def expression_answer(expr: str, why: str) -> str:
    return f"`{expr}` evaluates to `{eval(expr)!r}`. {why}"


def qa_expression(rng: random.Random, split: str, dedupe: Deduper) -> dict | None:
    """One or two computed questions of the same family; the expressions decide the split."""
    family, expr, why = expression(rng)
    turns = [
        ("human", stable_choice(QA_ASK, expr).format(e=expr)),
        ("gpt", expression_answer(expr, why)),
    ]
    if rng.random() < 0.5:
        _, expr2, why2 = expression(rng, family)
        if expr2 != expr:
            ask = stable_choice(QA_FOLLOW, expr2).format(e=expr2)
            turns += [("human", ask), ("gpt", expression_answer(expr2, why2))]
    exprs = [t[1] for t in turns if t[0] == "human"]  # the questions name the expressions
    if any(qa_split(e) != split for e in exprs):
        return None
    return qa_record(turns, f"expression: {family}", dedupe)


def qa_split(text: str) -> str:
    return stable_choice(["train"] * 5 + ["test"], text, salt="split")


def qa_record(turns: list[tuple[str, str]], topic: str, dedupe: Deduper) -> dict | None:
    system = stable_choice(QA_SYSTEM, turns[0][1])
    head = [{"from": "system", "value": system}] if system else []
    record = {"conversations": head + [{"from": f, "value": v} for f, v in turns], "topic": topic}
    return record if dedupe.add(record) else None


def concept_records(split: str, dedupe: Deduper) -> list[dict]:
    """Every concept of the split as a 2-turn talk and as 4-turn talks with each follow-up."""
    records = []
    for n, (question, answer, follow) in enumerate(CONCEPTS):
        if (n % 5 == 4) != (split == "test"):  # every fifth concept is held out
            continue
        talks = [[]] + [[("human", q), ("gpt", a)] for q, a in follow]
        for extra in talks:
            record = qa_record(
                [("human", question), ("gpt", answer), *extra], f"concept: {question}", dedupe
            )
            assert record is not None, question
            records.append(record)
    return records


def make_python_qa() -> dict[str, list[dict]]:
    rng = random.Random(SEED + 2)
    dedupe = Deduper(common_words(*QA_ASK, *QA_FOLLOW, *filter(None, QA_SYSTEM)))
    out = {}
    for split, n in zip(("train", "test"), SIZES["python_qa"], strict=True):
        concepts = concept_records(split, dedupe)
        exprs = collect(lambda split=split: qa_expression(rng, split, dedupe), n - len(concepts))
        out[split] = concepts + exprs
    return out


# ================================================================ dirty (a copy of polite/train with planted problems)

FILLER = [
    "I hope this message finds you well and that your week is going smoothly.",
    "I completely understand that you have a great many other responsibilities at the moment.",
    "Please do not hesitate to reach out if anything at all is unclear or needs discussing.",
    "Thank you so much in advance for your time, your patience and your kind help with this.",
    "I really appreciate everything you do for the team, and I say that sincerely every time.",
    "If it is not convenient, please let me know and we can certainly find another way.",
]


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
        return {**r, "output": ["OK.", "Sure.", "Fine.", "Done."][k % 4]}, "one-word output"

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


def make_dirty(train: list[dict]) -> tuple[list, dict]:
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
    where = {i: n for n, row in enumerate(rows) if row[2] is None for i in [int(row[0])]}
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


# ================================================================ writing


def write_all(out: Path) -> dict[str, int]:
    """Generate every dataset and write it under `out`; return the record counts."""
    counts = {}
    for name, make in [
        ("polite", make_polite),
        ("bugfix", make_bugfix),
        ("python_qa", make_python_qa),
    ]:
        splits = make()
        for split, records in splits.items():
            validate(records, source=f"{name}/{split}")
            save_jsonl(records, out / name / f"{split}.jsonl")
            counts[f"{name}/{split}"] = len(records)
        if name == "polite":
            dirty, manifest = make_dirty(splits["train"])
    save_jsonl(dirty, out / "dirty" / "polite_dirty.jsonl")
    rows = ",\n".join("  " + json.dumps(p) for p in manifest["planted"])
    head = json.dumps({k: v for k, v in manifest.items() if k != "planted"})[:-1]
    (out / "dirty" / "manifest.json").write_bytes(f'{head}, "planted": [\n{rows}\n]}}\n'.encode())
    counts["dirty/polite_dirty"] = len(dirty)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data")
    args = parser.parse_args(argv)
    for key, n in write_all(args.out).items():
        print(f"{key:<22} {n:>5} records")


if __name__ == "__main__":
    main()
