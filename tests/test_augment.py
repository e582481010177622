"""Renamed copies of bugfix records: still correct, still buggy, and no held-out name leaks in."""

import random
import re

import pytest
from test_datasets import generator, identifier_words

from ftcourse.augment import bound_names, rename, rename_record, with_renamed_copies
from ftcourse.data import load_records
from ftcourse.errors import CourseError
from ftcourse.paths import DATA_DIR

TRAIN = load_records(DATA_DIR / "bugfix" / "train.jsonl")


def skeleton(code: str) -> str:
    """The code with every name blanked: what renaming must leave unchanged."""
    return re.sub(r"[A-Za-z_]\w*", "N", code)


def test_rename_leaves_strings_attributes_and_keyword_arguments_alone():
    code = 'def f(key, text):\n    return sorted(text.split(), key=len)[key] + "key"'
    renamed = rename(code, {"f": "ka", "key": "lo", "text": "mi", "split": "no"})
    assert renamed == 'def ka(lo, mi):\n    return sorted(mi.split(), key=len)[lo] + "key"'


def test_bound_names_are_the_function_arguments_and_variables():
    code = "def total(xs, start=0):\n    acc = start\n    for x in xs:\n        acc += x\n    return acc"
    assert bound_names(code) == ["total", "xs", "start", "acc", "x"]


def test_every_renamed_training_record_is_still_fixed_by_its_output_and_broken_by_its_input():
    passes = generator().passes
    copies = with_renamed_copies(TRAIN, copies=1, seed=0)
    trained_names = {t["entry_point"] for t in TRAIN}
    renamed = [r for r in copies if r["entry_point"] not in trained_names]
    assert len(renamed) == len(TRAIN) and len(copies) == 2 * len(TRAIN)
    for r in renamed:
        assert passes(r["output"], r["tests"]), r
        assert not passes(r["input"], r["tests"]), r
    originals = {skeleton(t["input"]) for t in TRAIN}
    assert all(skeleton(r["input"]) in originals for r in renamed)  # only the names changed


def test_made_up_names_share_no_word_with_the_held_out_split():
    test = load_records(DATA_DIR / "bugfix" / "test.jsonl")
    held_out = set().union(*(identifier_words(r["input"] + "\n" + r["output"]) for r in test))
    copies = with_renamed_copies(TRAIN, copies=3, seed=0)
    made_up = set().union(*(identifier_words(r["output"]) for r in copies))
    assert made_up & held_out == set()


def test_renamed_copies_are_seeded():
    a = with_renamed_copies(TRAIN[:50], copies=2, seed=1)
    assert a == with_renamed_copies(TRAIN[:50], copies=2, seed=1)
    assert a != with_renamed_copies(TRAIN[:50], copies=2, seed=2)


def test_a_record_that_cannot_be_renamed_says_which_and_why():
    good = rename_record(TRAIN[0], random.Random(0))
    assert good["entry_point"] != TRAIN[0]["entry_point"]
    bad = {**TRAIN[1], "entry_point": "not_defined_here"}
    with pytest.raises(CourseError, match="record 1: .*entry_point 'not_defined_here'"):
        with_renamed_copies([TRAIN[0], bad], copies=1)
    no_tests = {k: v for k, v in TRAIN[2].items() if k != "tests"}
    with pytest.raises(CourseError, match="record 0: .*'tests'"):
        with_renamed_copies([no_tests], copies=1)
