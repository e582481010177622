"""The committed datasets in data/: reproducible, valid, checkable, and held out for real."""

import ast
import builtins
import importlib.util
import json
import sys

import pytest
from transformers import AutoTokenizer

from ftcourse.data import load_records, to_messages, validate
from ftcourse.paths import BASE_MODEL_DIR, DATA_DIR, REPO_ROOT
from ftcourse.profiles import PROFILES
from ftcourse.quality import checklist, drop_near_duplicates, near_duplicate_pairs, run_checklist
from ftcourse.sandbox import run_tests
from ftcourse.tasks import content_words, polite_score

TASKS = {  # name: (minimum train, minimum test, the keys every record has)
    "polite": (1000, 200, ["instruction", "input", "output"]),
    "bugfix": (1000, 200, ["instruction", "input", "output", "entry_point", "tests", "bug"]),
    "python_qa": (500, 100, ["conversations", "topic"]),
}
GENERATED = ["polite", "bugfix", "python_qa", "dirty"]


def load(task: str, split: str) -> list[dict]:
    return load_records(DATA_DIR / task / f"{split}.jsonl")


def generator():
    spec = importlib.util.spec_from_file_location(
        "make_datasets", REPO_ROOT / "scripts" / "make_datasets.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_datasets"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_generator_reproduces_data_byte_for_byte(tmp_path):
    generator().write_all(tmp_path)
    for folder in GENERATED:
        committed = sorted(p.name for p in (DATA_DIR / folder).iterdir())
        assert committed == sorted(p.name for p in (tmp_path / folder).iterdir())
        for name in committed:
            same = (DATA_DIR / folder / name).read_bytes() == (
                tmp_path / folder / name
            ).read_bytes()
            assert same, f"data/{folder}/{name} differs: rerun python scripts/make_datasets.py"


@pytest.mark.parametrize("task", TASKS)
def test_sizes_schema_and_validity(task):
    min_train, min_test, keys = TASKS[task]
    train, test = load(task, "train"), load(task, "test")
    assert len(train) >= min_train and len(test) >= min_test
    assert all(list(r) == keys for r in train + test)
    assert validate(train) == validate(test) == ("sharegpt" if task == "python_qa" else "alpaca")


@pytest.mark.parametrize("task", TASKS)
def test_held_out_never_overlaps_training_even_nearly(task):
    train, test = load(task, "train"), load(task, "test")
    assert near_duplicate_pairs(test, train) == []
    for split in (train, test):  # and each split passes the course's own near-duplicate check
        assert drop_near_duplicates(split)[1] == []


def test_polite_held_out_uses_words_training_never_saw():
    train, test = load("polite", "train"), load("polite", "test")
    seen = set().union(*(content_words(r["input"] + " " + r["output"]) for r in train))
    new = set().union(*(content_words(r["input"]) for r in test))
    assert seen & new == set()
    assert len(new) > 80  # verbs, nouns, adjectives, names, teams, times


def identifier_words(code: str) -> set[str]:
    """Words of the function, argument and variable names (split at '_'), builtins excluded."""
    names = set()
    for node in ast.walk(ast.parse(code)):
        names |= {
            getattr(node, "name", None) if isinstance(node, ast.FunctionDef) else None,
            getattr(node, "arg", None),
            getattr(node, "id", None),
        }
    names -= {None, *dir(builtins)}
    return {w for n in names for w in n.split("_") if w}


def test_bugfix_held_out_uses_names_training_never_saw():
    train, test = load("bugfix", "train"), load("bugfix", "test")
    seen = set().union(*(identifier_words(r["input"] + "\n" + r["output"]) for r in train))
    new = set().union(*(identifier_words(r["input"] + "\n" + r["output"]) for r in test))
    assert seen & new == set()
    assert len(new) > 60


def test_polite_answers_pass_the_score_and_requests_fail_it():
    for r in load("polite", "train") + load("polite", "test"):
        assert polite_score(r["input"], r["output"]), r
        assert not polite_score(r["input"], r["input"]), r


def test_bugfix_tests_pass_on_the_fix_and_fail_on_the_bug():
    records = load("bugfix", "train") + load("bugfix", "test")
    # every record in-process; a sample through the evaluator's sandbox, which scores the models
    passes = generator().passes
    for r in records:
        assert passes(r["output"], r["tests"]), r["output"]
        assert not passes(r["input"], r["tests"]), r["input"]
    for r in records[::150]:
        assert run_tests(r["output"], r["tests"]).passed, r["output"]
        assert not run_tests(r["input"], r["tests"]).passed, r["input"]
        assert ast.parse(r["output"]).body[0].name == r["entry_point"]
        assert 2 <= len(r["output"].splitlines()) <= 6
        diff = [
            a != b for a, b in zip(r["input"].splitlines(), r["output"].splitlines(), strict=True)
        ]
        assert sum(diff) == 1, "exactly one line holds the bug"


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(BASE_MODEL_DIR)


@pytest.mark.parametrize("task, ceiling", [("polite", 150), ("bugfix", 150), ("python_qa", 256)])
def test_examples_fit_the_cpu_profile(task, ceiling, tokenizer):
    records = load(task, "train") + load(task, "test")
    texts = [tokenizer.apply_chat_template(to_messages(r), tokenize=False) for r in records]
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    assert max(lengths) <= min(ceiling, PROFILES["cpu-tiny"].max_length)


def test_checklist_finds_every_planted_problem_and_nothing_else(tokenizer):
    dirty = load_records(DATA_DIR / "dirty" / "polite_dirty.jsonl")
    manifest = json.loads((DATA_DIR / "dirty" / "manifest.json").read_text())
    kept, report = run_checklist(dirty, checklist(tokenizer, PROFILES["cpu-tiny"].max_length))
    planted = [(p["index"], p["check"]) for p in manifest["planted"]]
    assert sorted((r.index, r.check) for r in report) == planted
    assert kept == load("polite", "train")
    problems = {p["problem"].split(":")[0] for p in manifest["planted"]}
    assert problems == {
        "exact duplicate",
        "near duplicate",
        "empty field",
        "length outlier",
        "inconsistent tone",
        "mixed format",
        "malformed",
    }
