"""The bugfix set: a small Python function with one planted bug, and the function fixed.

bugfix.json holds the templates: a correct function with {slots}, the one-replacement bugs it can
get, and the calls its tests make. A record fills the slots with the split's own names (the test
split's share no word with training), plants one bug, and writes tests from what the correct
function returns: they pass on the fix and fail on the bug, checked here for every record.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from .common import SEED, Deduper, collect_splits, common_words, load_phrases, stable_choice

SIZES = (1200, 250)  # (train, test)
PHRASES = load_phrases("bugfix.json")
INSTRUCTIONS = PHRASES["instructions"]
NAMES = PHRASES["names"]  # split -> pool -> names (a pair pool holds pairs, like (low, high))
SLOTS = PHRASES["slots"]  # slot -> (pool, part): part 0 or 1 of a pair, or None for a name


@dataclass(frozen=True)
class Template:
    """A correct function with {slots}, its possible bugs, the calls its tests make, and names.

    Each bug is (kind, correct text, buggy text): one replacement, so exactly one bug.
    """

    code: str
    bugs: tuple[tuple[str, str, str], ...]
    calls: tuple[str, ...]
    names: dict[str, tuple[str, ...]]  # split -> function names, with slots


TEMPLATES = [
    Template(
        code="\n".join(t["code"]),
        bugs=tuple(tuple(bug) for bug in t["bugs"]),
        calls=tuple(t["calls"]),
        names={split: tuple(names) for split, names in t["names"].items()},
    )
    for t in PHRASES["templates"]
]


def pick_names(rng: random.Random, template: Template, split: str) -> dict[str, str]:
    """Names for every slot the template uses, all different from each other."""
    text = template.code + "".join(b[2] for b in template.bugs) + "".join(template.names[split])
    used = set(re.findall(r"{(\w+)}", text)) - {"f"}
    pools = NAMES[split]
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


def bugfix_record(rng: random.Random, split: str, dedupe: Deduper) -> dict | None:
    template = rng.choice(TEMPLATES)
    kind, right, wrong = rng.choice(template.bugs)
    names = pick_names(rng, template, split)
    code = template.code.format(**names)
    right, wrong = right.format(**names), wrong.format(**names)
    assert code.count(right) == 1, (code, right)
    buggy = code.replace(right, wrong)
    record = {"instruction": stable_choice(INSTRUCTIONS, buggy), "input": buggy, "output": code}
    if not dedupe.add(record):
        return None
    namespace: dict = {}
    exec(code, namespace)
    f = names["f"]
    tests = [f"assert {f}({c}) == {eval(f'{f}({c})', namespace)!r}" for c in template.calls]
    assert passes(code, tests) and not passes(buggy, tests), (code, buggy)
    return {**record, "entry_point": f, "tests": tests, "bug": kind}


def make() -> dict[str, list[dict]]:
    rng = random.Random(SEED + 1)
    dedupe = Deduper(common_words(*INSTRUCTIONS, *(t.code for t in TEMPLATES)))
    return collect_splits(lambda split: bugfix_record(rng, split, dedupe), SIZES)
