"""Preference pairs: failure types, synthetic rejections, harvesting and validation."""

import pytest

from ftcourse import CourseError
from ftcourse.preference import (
    FAILURES,
    failure,
    failure_rates,
    harvest_pairs,
    loops,
    synthetic_rejections,
    validate_pairs,
)

REQUEST = "Reserve a table. Immediately."
REFERENCE = "When you have a moment, could you please reserve a table?"


def record(request=REQUEST, reference=REFERENCE):
    return {
        "input": request,
        "messages": [
            {"role": "user", "content": f"Rewrite this request politely.\n\n{request}"},
            {"role": "assistant", "content": reference},
        ],
    }


@pytest.mark.parametrize(
    "answer, kind",
    [
        (REFERENCE, None),
        ("Could you please reserve a tabling?", "mangled word"),
        ("Could you please reserve something?", "dropped word"),
        ("Reserve a table now.", "impolite"),
        ("Could you reserve a table immediately, please?", "impolite"),
        ("Could you please please please reserve?", "looping"),
    ],
)
def test_failure_names_how_a_rewrite_went_wrong(answer, kind):
    assert failure(REQUEST, answer) == kind


def test_loops_needs_three_repeats_in_a_row():
    assert loops("thank you thank you thank you")
    assert not loops("please, please reserve it")
    assert not loops("a table and a table")


def test_failure_rates_are_shares_of_all_answers():
    answers = [REFERENCE, "Reserve a table now.", "Could you please reserve something?", REFERENCE]
    rates = failure_rates([REQUEST] * 4, answers)
    assert list(rates) == list(FAILURES)
    assert rates == {"looping": 0, "impolite": 0.25, "mangled word": 0, "dropped word": 0.25}


def test_synthetic_rejections_each_fail_the_way_they_are_named():
    made = synthetic_rejections(REQUEST, REFERENCE)
    assert set(made) == set(FAILURES)
    assert made["impolite"] == REQUEST
    assert made["dropped word"] == "When you have a moment, could you please a table?"
    assert made["mangled word"] == "When you have a moment, could you please reseen a table?"
    for kind, text in made.items():
        assert failure(REQUEST, text) == kind


def test_harvest_pairs_keeps_every_wrong_answer_and_adds_synthetic_ones_round_robin():
    records = [record() for _ in range(6)]
    answers = ["Reserve a table now.", REFERENCE, REFERENCE, REFERENCE, REFERENCE, REFERENCE]
    pairs = harvest_pairs(records, answers, synthetic=3)
    assert [p["source"] for p in pairs] == [
        "model: impolite",
        "synthetic: looping",
        "synthetic: impolite",
        "synthetic: mangled word",
    ]
    assert all(p["chosen"] == [{"role": "assistant", "content": REFERENCE}] for p in pairs)
    assert pairs[0]["rejected"][0]["content"] == "Reserve a table now."
    assert pairs[0]["prompt"] == records[0]["messages"][:1]
    assert validate_pairs(pairs) is pairs


def test_harvest_pairs_without_synthetic_ones_gives_only_the_models_mistakes():
    assert harvest_pairs([record(), record()], [REFERENCE, REFERENCE]) == []


@pytest.mark.parametrize(
    "change, message",
    [
        ({"rejected": []}, r"record 1: field 'rejected' must be a non-empty list"),
        ({"chosen": [{"role": "assistant", "content": " "}]}, r"record 1: chosen\[0\] has no text"),
        (
            {"rejected": [{"role": "user", "content": "x"}]},
            r"record 1: field 'rejected' must be one",
        ),
        ({"prompt": [{"role": "assistant", "content": "x"}]}, r"record 1: the prompt must end"),
        (
            {"rejected": [{"role": "assistant", "content": REFERENCE}]},
            r"record 1: chosen and rejected",
        ),
    ],
)
def test_validate_pairs_names_the_record_and_field(change, message):
    good = harvest_pairs([record()], ["Reserve a table now."])[0]
    with pytest.raises(CourseError, match=r"^my pairs: " + message):
        validate_pairs([good, {**good, **change}], source="my pairs")
