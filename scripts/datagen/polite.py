"""The polite set: a curt request ("Send me the report now!") and its polite rewrite.

A request is a core ("send the final report to Maria by Monday") built from the split's own words
(polite.json: verbs, nouns, names, teams, times; the test split's share none with training),
wrapped curtly (prefix, punctuation, "ASAP."), and rewritten by putting the same core in a polite
frame ("Could you please {core}?"). Every pair passes `polite_score`; the request itself fails it.
"""

from __future__ import annotations

import random

from ftcourse.tasks import polite_score

from .common import SEED, Deduper, collect_splits, common_words, load_phrases, stable_choice

SIZES = (1200, 250)  # (train, test)
PHRASES = load_phrases("polite.json")
WORDS = PHRASES["words"]  # split -> kind of word -> words
DETERMINERS = PHRASES["determiners"]
CURT_PREFIXES = PHRASES["curt_prefixes"]
CURT_SUFFIXES = PHRASES["curt_suffixes"]
POLITE_FRAMES = PHRASES["polite_frames"]
INSTRUCTIONS = PHRASES["instructions"]


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


def addressed(name: str, text: str) -> str:
    """'Maria, could you...': the text addressed to a name (an opening 'I' keeps its capital)."""
    return f"{name}, {text if text.startswith('I ') else text[0].lower() + text[1:]}"


def polite_record(rng: random.Random, w: dict, dedupe: Deduper) -> dict | None:
    core = polite_core(rng, w)
    name = rng.choice(w["names"]) if rng.random() < 0.25 else ""
    prefix, suffix = rng.choice(CURT_PREFIXES), rng.choice(CURT_SUFFIXES)
    request = prefix + core + rng.choice([".", ".", "!"]) + suffix
    request = addressed(name, request) if name else request[0].upper() + request[1:]
    polite = stable_choice(POLITE_FRAMES, request).format(core=core)
    if name:
        polite = addressed(name, polite)
    record = {
        "instruction": stable_choice(INSTRUCTIONS, request, salt="instruction"),
        "input": request,
        "output": polite,
    }
    if not dedupe.add(record):
        return None
    assert polite_score(request, polite), record
    assert not polite_score(request, request), record  # the curt request itself must fail
    return record


def make() -> dict[str, list[dict]]:
    rng = random.Random(SEED)
    dedupe = Deduper(common_words(*POLITE_FRAMES, *INSTRUCTIONS, *CURT_PREFIXES, *CURT_SUFFIXES))
    return collect_splits(lambda split: polite_record(rng, WORDS[split], dedupe), SIZES)
