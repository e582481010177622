"""The task registry and its scoring rules, with fixed answers: right, wrong, malformed, looping,
non-stopping. These rules produce every accuracy the notebooks assert."""

import time

import pytest

from ftcourse import CourseError
from ftcourse import evaluate as ev
from ftcourse.tasks import (
    SCORED,
    TASKS,
    extract_code,
    get_task,
    load_task,
    score_bugfix,
    score_polite,
    scored_task,
)

BUGFIX = load_task("bugfix", "test")[0]  # instance_tally: `subtotal = 1` should be 0
POLITE = load_task("polite", "test")[0]  # "Hiroshi, just postpone a catering order by Thursday..."


def test_every_task_has_its_data_and_the_scored_ones_their_rules():
    assert set(TASKS) == {"polite", "bugfix", "python_qa"} and SCORED == ("polite", "bugfix")
    for task in TASKS.values():
        assert len(load_task(task.name, "train")) > 0 and len(load_task(task.name, "test")) > 0
        if task.scored:
            assert task.in_form and 32 <= task.max_new_tokens <= 256
    with pytest.raises(CourseError, match="Tasks: polite, bugfix, python_qa"):
        get_task("poetry")
    with pytest.raises(CourseError, match="no scoring rule"):
        scored_task("python_qa")


@pytest.mark.parametrize(
    "answer, code",
    [
        ("def f():\n    return 1", "def f():\n    return 1"),
        ("Here:\n```python\ndef f():\n    return 1\n```\nDone.", "def f():\n    return 1\n"),
        ("```\ndef f():\n    return 1\n```", "def f():\n    return 1\n"),
        (
            "```python\ndef f():\n    return 1",
            "def f():\n    return 1",
        ),  # cut off: no closing fence
    ],
)
def test_extract_code_takes_the_fenced_block_or_the_whole_answer(answer, code):
    assert extract_code(answer) == code


def test_bugfix_right_answer_passes_in_any_wrapping():
    fix = BUGFIX["output"]
    assert score_bugfix(BUGFIX, fix)
    assert score_bugfix(BUGFIX, f"The fix:\n```python\n{fix}\n```")


@pytest.mark.parametrize(
    "why, answer",
    [
        ("the bug left in", BUGFIX["input"]),
        ("malformed code", "def instance_tally(caption, c):\n    return ("),
        ("prose, no code", "Start the count at zero instead of one."),
        ("another function's name", BUGFIX["output"].replace("instance_tally", "tally")),
        ("empty", ""),
    ],
)
def test_bugfix_wrong_answers_fail(why, answer):
    assert not score_bugfix(BUGFIX, answer), why


def test_bugfix_answer_that_loops_forever_fails_within_the_time_limit():
    looping = "def instance_tally(caption, c):\n    while True:\n        pass"
    start = time.perf_counter()
    assert not score_bugfix(BUGFIX, looping)
    assert time.perf_counter() - start < 15, "the sandbox's 5 s limit must stop it"


@pytest.mark.parametrize(
    "answer, right",
    [
        (POLITE["output"], True),
        ("Hiroshi, could you please postpone a catering order by Thursday?", True),
        ("Could you please postpone a catering order by Thursday?", False),  # dropped "Hiroshi"
        ("Hiroshi, postpone a catering order by Thursday.", False),  # no politeness marker
        ("Hiroshi, could you postpone a catering order by Thursday? Hurry up.", False),  # curt
        ("Could you please help me?", False),  # polite, but not the request
        ("", False),
    ],
)
def test_polite_rule_on_fixed_answers(answer, right):
    assert score_polite(POLITE, answer) is right


def test_evaluate_scores_fixed_answers_and_counts_the_stops(monkeypatch, mode_model):
    """evaluate() with generation replaced by fixed answers: accuracy and stop rate are exact."""
    answers = [BUGFIX["output"], BUGFIX["input"], "def instance_tally(c", BUGFIX["output"] * 3]
    stopped = [True, True, True, False]  # the last one ran out of tokens (repeating itself)

    def fake_generate(model, tokenizer, prompts, max_new_tokens, batch_size, progress, stops):
        assert max_new_tokens == get_task("bugfix").max_new_tokens and len(prompts) == 4
        assert all(p[-1]["role"] == "user" for p in prompts), "the reference answer is not shown"
        stops += stopped
        return answers

    model = mode_model
    monkeypatch.setattr(ev, "generate", fake_generate)
    result = ev.evaluate(model, None, "bugfix", [BUGFIX] * 4, label="fixed")
    assert result.correct == [True, False, False, False]
    assert result.accuracy == 0.25 and result.stop_rate == 0.75 and result.n == 4
    assert model.training, "evaluate puts the model back in the mode it found it in"
    table = ev.results_table([result])
    assert "| bugfix | fixed | 25% | 75% | 4 |" in table
    with pytest.raises(CourseError, match="no scoring rule"):
        ev.evaluate(model, None, "python_qa", [])


def test_training_splits_cut_the_committed_training_split_like_notebook_02(tmp_path):
    from ftcourse.data import load_records, split_and_save
    from ftcourse.paths import DATA_DIR
    from ftcourse.tasks import training_splits

    train, validation = training_splits("bugfix")
    assert (len(train), len(validation)) == (1080, 120)
    assert not set(train["input"]) & set(validation["input"])
    records = load_records(DATA_DIR / "bugfix" / "train.jsonl")
    split_and_save(records, tmp_path / "bugfix", test_fraction=0.1, seed=0)
    saved_train, saved_validation = training_splits("bugfix", tmp_path)
    assert (
        saved_validation["input"] == validation["input"] and saved_train["input"] == train["input"]
    )
