"""What every generator shares: the seed, the phrase files, hash picks and the near-duplicate guard.

Each dataset module draws records at random (seeded) until it has enough; `Deduper` turns down a
record that shares too many words with one already made, in either split, and `collect` keeps
drawing. Choices that must not depend on the random stream (which instruction a record gets)
are made by `stable_choice`, from a hash of the record's text.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path

from ftcourse.data import words
from ftcourse.quality import jaccard, word_set
from ftcourse.tasks import STOPWORDS

SEED = 2024  # each dataset seeds its own generator from it: SEED, SEED + 1, ...
SPLITS = ("train", "test")
NEAR_DUPLICATE = 0.8  # the default threshold of ftcourse.quality.drop_near_duplicates


def load_phrases(name: str) -> dict:
    """The phrase file next to this module (`polite.json`, ...): a dataset's words and templates."""
    return json.loads(Path(__file__).with_name(name).read_text(encoding="utf-8"))


def stable_choice(options: list, text: str, salt: str = ""):
    """An option picked by a hash of the text: the same text always gets the same option."""
    digest = hashlib.sha256((salt + text).encode()).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]


def common_words(*texts: str) -> set[str]:
    """The words of the fixed phrasings (instructions, frames): shared by many records."""
    return set(words(" ".join(texts))) | STOPWORDS


class Deduper:
    """Accepts a record only when no accepted record shares `NEAR_DUPLICATE` of its words.

    The rule of `ftcourse.quality.drop_near_duplicates` (its `word_set` and `jaccard`), made fast for
    thousands of candidates by prefix filtering: with every word set sorted in one fixed order
    (rare-looking words first, the `common` frame words last), two sets with Jaccard >= t share a
    word among the first |set| - ceil(t * |set|) + 1 words of each, so only those words are
    indexed, and a record is compared only with the records that share one of them.
    """

    def __init__(self, common: set[str]) -> None:
        self.common = common
        self.index: dict[str, list[frozenset[str]]] = {}
        self.seen: set[frozenset[str]] = set()

    def add(self, record: dict) -> bool:
        ws = word_set(record)
        if ws in self.seen:  # the commonest case, and the cheapest to spot
            return False
        order = sorted(ws, key=lambda w: (w in self.common, -len(w), w))
        prefix = order[: len(ws) - math.ceil(NEAR_DUPLICATE * len(ws)) + 1]
        candidates = {other for w in prefix for other in self.index.get(w, ())}
        if any(jaccard(ws, other) >= NEAR_DUPLICATE for other in candidates):
            return False
        for w in prefix:
            self.index.setdefault(w, []).append(ws)
        self.seen.add(ws)
        return True


def collect(make: Callable[[], dict | None], n: int, max_tries: int = 50) -> list[dict]:
    """Call make() until it returned n records (it returns None for a near duplicate)."""
    records = []
    for _ in range(n * max_tries):
        record = make()
        if record is not None:
            records.append(record)
            if len(records) == n:
                return records
    raise RuntimeError(f"only {len(records)} of {n} distinct records: add vocabulary")


def collect_splits(make: Callable[[str], dict | None], sizes: tuple[int, int]) -> dict[str, list]:
    """{"train": records, "test": records}, collected in that order by make(split)."""
    return {
        split: collect(lambda split=split: make(split), n)
        for split, n in zip(SPLITS, sizes, strict=True)
    }
