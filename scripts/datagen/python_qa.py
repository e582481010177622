"""The python_qa set: short ShareGPT conversations about Python, written or computed.

Two kinds of conversation: the hand-written concepts of python_qa.json (a question, its answer,
and each follow-up as a 4-turn variant; every fifth concept is held out for the test split), and
computed questions ("What does `7 // 2` evaluate to?") whose answers Python itself evaluates,
sent to a split by a hash of the expression. A few get a system prompt.
"""

from __future__ import annotations

import random

from .common import SEED, SPLITS, Deduper, collect, common_words, load_phrases, stable_choice

SIZES = (600, 120)  # (train, test)
PHRASES = load_phrases("python_qa.json")
CONCEPTS = PHRASES["concepts"]  # {"question", "answer", "follow_ups": [{"question", "answer"}]}
SYSTEM = PHRASES["system"]  # None: no system prompt
ASK = PHRASES["ask"]
FOLLOW = PHRASES["follow"]
WORDS = PHRASES["words"]
FALSY_OR_NOT = PHRASES["falsy_or_not"]


def _ordinal(k: int) -> str:
    return {1: "last", 2: "second", 3: "third", 4: "fourth", 5: "fifth"}[k]


def expression(rng: random.Random, family: str | None = None) -> tuple[str, str, str]:
    """(family, expression, explanation) for one computed question (of `family`, if given)."""
    a, b = rng.randint(7, 60), rng.randint(2, 9)
    w = rng.choice(WORDS)
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
        ("human", stable_choice(ASK, expr).format(e=expr)),
        ("gpt", expression_answer(expr, why)),
    ]
    if rng.random() < 0.5:
        _, expr2, why2 = expression(rng, family)
        if expr2 != expr:
            ask = stable_choice(FOLLOW, expr2).format(e=expr2)
            turns += [("human", ask), ("gpt", expression_answer(expr2, why2))]
    exprs = [t[1] for t in turns if t[0] == "human"]  # the questions name the expressions
    if any(qa_split(e) != split for e in exprs):
        return None
    return qa_record(turns, f"expression: {family}", dedupe)


def qa_split(text: str) -> str:
    return stable_choice(["train"] * 5 + ["test"], text, salt="split")


def qa_record(turns: list[tuple[str, str]], topic: str, dedupe: Deduper) -> dict | None:
    system = stable_choice(SYSTEM, turns[0][1])
    head = [{"from": "system", "value": system}] if system else []
    record = {"conversations": head + [{"from": f, "value": v} for f, v in turns], "topic": topic}
    return record if dedupe.add(record) else None


def concept_records(split: str, dedupe: Deduper) -> list[dict]:
    """Every concept of the split as a 2-turn talk and as 4-turn talks with each follow-up."""
    records = []
    for n, concept in enumerate(CONCEPTS):
        if (n % 5 == 4) != (split == "test"):  # every fifth concept is held out
            continue
        question, answer = concept["question"], concept["answer"]
        follow_ups = [
            [("human", f["question"]), ("gpt", f["answer"])] for f in concept["follow_ups"]
        ]
        for extra in [[], *follow_ups]:
            turns = [("human", question), ("gpt", answer), *extra]
            record = qa_record(turns, f"concept: {question}", dedupe)
            assert record is not None, question
            records.append(record)
    return records


def make() -> dict[str, list[dict]]:
    rng = random.Random(SEED + 2)
    dedupe = Deduper(common_words(*ASK, *FOLLOW, *filter(None, SYSTEM)))
    out = {}
    for split, n in zip(SPLITS, SIZES, strict=True):
        concepts = concept_records(split, dedupe)
        exprs = collect(lambda split=split: qa_expression(rng, split, dedupe), n - len(concepts))
        out[split] = concepts + exprs
    return out
