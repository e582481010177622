"""Preference pairs: failure types, synthetic rejections, harvesting and validation."""

import warnings

import pytest

from ftcourse import CourseError
from ftcourse.preference import (
    FAILURES,
    failure,
    failure_rates,
    filtered,
    harvest_pairs,
    loops,
    mixed_pairs,
    mixed_set,
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
    tasks = ["reserve a table", "book a taxi", "water the plants", "sign the form", "call Rosa"]
    records = [record()] + [
        record(f"{t.capitalize()}. Now.", f"Could you {t}, please?") for t in tasks
    ]
    answers = ["Reserve a table now."] + [r["messages"][-1]["content"] for r in records[1:]]
    pairs = harvest_pairs(records, answers, synthetic=3)
    assert [p["source"] for p in pairs] == [
        "model: impolite",
        "synthetic: looping",
        "synthetic: impolite",
        "synthetic: mangled word",
    ]
    assert pairs[0]["chosen"] == [{"role": "assistant", "content": REFERENCE}]
    assert [p["prompt"] for p in pairs[1:]] == [r["messages"][:1] for r in records[1:4]]
    assert pairs[0]["rejected"][0]["content"] == "Reserve a table now."
    assert pairs[0]["prompt"] == records[0]["messages"][:1]
    assert validate_pairs(pairs) is pairs


def test_harvest_pairs_makes_only_the_failure_types_asked_for():
    tasks = ["reserve a table", "book a taxi", "water the plants", "sign the form"]
    records = [record(f"{t.capitalize()}. Now.", f"Could you {t}, please?") for t in tasks]
    answers = [r["messages"][-1]["content"] for r in records]
    pairs = harvest_pairs(records, answers, synthetic=4, kinds=("impolite",))
    assert [p["source"] for p in pairs] == ["synthetic: impolite"] * 4
    assert [p["rejected"][0]["content"] for p in pairs] == [r["input"] for r in records]
    with pytest.raises(CourseError, match="'curt' are not failure types|\\['curt'\\]"):
        harvest_pairs(records, answers, synthetic=1, kinds=("curt",))


def test_harvest_pairs_gives_a_repeated_answer_one_pair():
    answers = ["Reserve a table now.", "Reserve a table now.", "Could you reserve?"]
    pairs = harvest_pairs([record()] * 3, answers)
    assert [p["rejected"][0]["content"] for p in pairs] == [
        "Reserve a table now.",
        "Could you reserve?",
    ]


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


def test_harvest_pairs_prefers_the_models_own_right_answer_as_chosen():
    own = "Could you please reserve a table?"
    answers = ["Reserve a table now.", own, "Could you please reserve?"]
    pairs = harvest_pairs([record()] * 3, answers)
    assert [(p["chosen"][0]["content"], p["chosen_from"]) for p in pairs] == [(own, "own")] * 2
    pairs = harvest_pairs([record()] * 3, answers, chosen="reference")
    assert [(p["chosen"][0]["content"], p["chosen_from"]) for p in pairs] == [
        (REFERENCE, "reference")
    ] * 2
    with pytest.raises(CourseError, match="use 'own' or 'reference'"):
        harvest_pairs([record()], answers[:1], chosen="best")


@pytest.mark.parametrize(
    "name, bf16, fp16",
    [("cpu-tiny", False, False), ("t4", False, False), ("gpu-24gb", True, False)],
)
def test_dpo_config_sets_the_profiles_precision_not_trls_bf16_default(tmp_path, name, bf16, fp16):
    from ftcourse.preference import dpo_config
    from ftcourse.profiles import get_profile

    profile = get_profile(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no keyword transformers has deprecated
        args = dpo_config(profile, tmp_path, beta=0.3)
    assert (args.bf16, args.fp16, args.beta) == (bf16, fp16, 0.3)
    assert args.activation_checkpointing == profile.gradient_checkpointing
    assert args.max_length == profile.max_length and args.save_strategy == "no"


# ---------------------------------------------------------------- a mixed training set

REQUESTS = [
    ("Reserve a table. Immediately.", "When you have a moment, could you please reserve a table?"),
    ("Send the report now!", "Could you please send the report?"),
    ("Book a taxi to the airport.", "Could you please book a taxi to the airport?"),
    ("Fix the printer today!", "Could you please fix the printer today?"),
    ("Call the plumber.", "Would you please call the plumber?"),
    ("Water the plants tonight!", "Could you please water the plants tonight?"),
]


def test_mixed_set_makes_the_share_bad_in_the_kinds_asked_for_and_keeps_the_good_answer():
    records = [record(q, a) for q, a in REQUESTS * 5]  # 30 records
    mixed = mixed_set(records, share=0.4, seed=1)
    bad = [r for r in mixed if r["bad"]]
    assert len(bad) == 12 and {r["bad"] for r in bad} == {"impolite", "looping"}
    for r, original in zip(mixed, records):
        answer = r["messages"][-1]["content"]
        assert r["good"] == original["messages"][-1]["content"]
        assert r["messages"][:-1] == original["messages"][:-1]  # the prompt is untouched
        assert failure(r["input"], answer) == (r["bad"] or None), (r["bad"], answer)
    assert mixed_set(records, share=0.4, seed=1) == mixed  # seeded
    assert [r["bad"] for r in mixed_set(records, share=0.4, seed=2)] != [r["bad"] for r in mixed]


def test_filtered_and_mixed_pairs_split_the_set_by_its_bad_records():
    mixed = mixed_set([record(q, a) for q, a in REQUESTS], share=0.5, kinds=("impolite",))
    assert len(filtered(mixed)) == 3 and not any(r["bad"] for r in filtered(mixed))
    pairs = validate_pairs(mixed_pairs(mixed))
    assert len(pairs) == 3 and {p["source"] for p in pairs} == {"mixed: impolite"}
    for p in pairs:
        request = p["prompt"][-1]["content"].split("\n\n")[-1]
        assert p["rejected"][0]["content"] == request  # the curt request returned as it came
        assert failure(request, p["chosen"][0]["content"]) is None


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(share=1.5), "between 0 and 1"), (dict(share=0.1, kinds=("rude",)), "not bad-target")],
)
def test_mixed_set_refuses_what_it_cannot_make(kwargs, message):
    with pytest.raises(CourseError, match=message):
        mixed_set([record()], **kwargs)
