"""ftcourse.data and ftcourse.chat: loading, validation, conversion, the checklist, loss masks."""

import json
import re

import pytest
from transformers import AutoTokenizer

from ftcourse import CourseError
from ftcourse.chat import (
    check_eos,
    loss_mask,
    loss_mask_view,
    render,
    training_template,
    trl_template,
)
from ftcourse.data import (
    detect_format,
    load_records,
    split_and_save,
    to_messages,
    to_prompt_completion,
    validate,
)
from ftcourse.paths import BASE_MODEL_DIR
from ftcourse.quality import (
    check_size,
    drop_empty,
    drop_exact_duplicates,
    drop_inconsistent_tone,
    drop_invalid,
    drop_length_outliers,
    drop_near_duplicates,
    near_duplicate_pairs,
    run_checklist,
)
from ftcourse.tasks import load_task, polite_score

ALPACA = {
    "instruction": "Make this request polite.",
    "input": "Send the memo.",
    "output": "Could you please send the memo?",
}
SHAREGPT = {
    "conversations": [
        {"from": "system", "value": "You are a Python tutor."},
        {"from": "human", "value": "What is a list?"},
        {"from": "gpt", "value": "A mutable sequence."},
        {"from": "human", "value": "And a tuple?"},
        {"from": "gpt", "value": "An immutable one."},
    ]
}


def alpaca(i: int, **changes) -> dict:
    return {
        "instruction": f"Rewrite request {i} politely.",
        "input": f"Send report {i}.",
        "output": f"Could you please send report {i}?",
        **changes,
    }


def turns(*pairs) -> dict:
    return {"conversations": [{"from": f, "value": v} for f, v in pairs]}


class WordTokenizer:
    """One token per word: enough for length checks without a model."""

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [t.split() for t in texts]}


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(BASE_MODEL_DIR)


# ---------------------------------------------------------------- validation: good input


def test_valid_records_pass_and_report_their_format():
    assert validate([ALPACA, alpaca(1)]) == "alpaca"
    assert validate([SHAREGPT]) == "sharegpt"
    assert validate([{"messages": to_messages(SHAREGPT)}]) == "messages"
    assert validate([to_prompt_completion(ALPACA)]) == "prompt_completion"
    assert validate([{"prompt": "2 + 2 =", "completion": " 4"}]) == "prompt_completion"
    assert validate([{"instruction": "Say hi.", "output": "Hi."}]) == "alpaca"  # input is optional
    assert validate([alpaca(1, input="")]) == "alpaca"  # and may be empty


def test_load_json_and_jsonl(tmp_path):
    records = [ALPACA, alpaca(2)]
    (tmp_path / "a.json").write_text(json.dumps(records))
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    assert load_records(tmp_path / "a.json") == records
    assert load_records(tmp_path / "a.jsonl") == records  # blank lines are skipped


# ---------------------------------------------------------------- validation: the malformed table

RECORD_CASES = {  # name: (records, the record index, the field, words the message must contain)
    "missing field": ([alpaca(0), {"instruction": "a", "input": ""}], 1, "output", "missing"),
    "wrong type": ([alpaca(0), alpaca(1, output=5)], 1, "output", "int"),
    "empty string": ([alpaca(0), alpaca(1, output="  ")], 1, "output", "empty"),
    "unknown role": (
        [turns(("human", "hi"), ("assistant", "hello"))],
        0,
        "conversations[1].from",
        "not one of",
    ),
    "two user turns in a row": (
        [turns(("human", "a"), ("human", "b"), ("gpt", "c"))],
        0,
        "conversations[1].from",
        "two 'human' turns in a row",
    ),
    "not ending with the assistant": (
        [turns(("human", "a"), ("gpt", "b"), ("human", "c"))],
        0,
        "conversations[2].from",
        "must end with",
    ),
    "mixed formats": ([alpaca(0), alpaca(1), SHAREGPT], 2, "conversations", "sharegpt"),
    "enormous record": ([alpaca(0, output="x" * 100_000)], 0, "output", "100,000 characters"),
    "record not an object": ([alpaca(0), "Send it."], 1, "", "not an object"),
    "messages with ShareGPT roles": (
        [{"messages": [{"role": "human", "content": "a"}, {"role": "gpt", "content": "b"}]}],
        0,
        "messages[0].role",
        "ShareGPT role",
    ),
    "messages inside conversations": (
        [
            {
                "conversations": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b"},
                ]
            }
        ],
        0,
        "conversations[0].from",
        "role/content",
    ),
}


@pytest.mark.parametrize("case", RECORD_CASES)
def test_malformed_records_name_record_and_field(case):
    records, index, field, words = RECORD_CASES[case]
    with pytest.raises(CourseError) as err:
        validate(records, source="my.jsonl")
    message = str(err.value)
    assert f"my.jsonl: record {index}" in message
    named = re.findall(r"field '([^']*)'", message)  # the first problem's field comes first;
    assert named[:1] == ([field] if field else []), message  # a record of no fields names none
    assert words in message


FILE_CASES = {  # name: (file name, bytes, words the message must contain)
    "not JSON (.json)": (
        "d.json",
        b'[{"instruction": "a", "output": "b"},',
        ["d.json", "line 1", "not valid JSON"],
    ),
    "not JSON (.jsonl line)": (
        "d.jsonl",
        b'{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": }\n',
        ["d.jsonl", "line 2 (record 1)", "not valid JSON"],
    ),
    "not a list": ("d.json", b'{"instruction": "a", "output": "b"}', ["d.json", "not a list"]),
    "invalid UTF-8": (
        "d.jsonl",
        b'{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "caf\xe9"}\n',
        ["d.jsonl", "line 2 (record 1), field 'output'", "not valid UTF-8"],
    ),
    "invalid UTF-8 (.json)": (
        "d.json",
        b'[{"instruction": "a",\n "output": "caf\xe9"}]',
        ["d.json", "line 2", "UTF-8"],
    ),
}


@pytest.mark.parametrize("case", FILE_CASES)
def test_malformed_files_name_file_and_place(case, tmp_path):
    name, raw, words = FILE_CASES[case]
    (tmp_path / name).write_bytes(raw)
    with pytest.raises(CourseError) as err:
        load_records(tmp_path / name)
    for w in words:
        assert w in str(err.value)


def test_every_problem_is_reported_not_only_the_first(tmp_path):
    records = [alpaca(0, output=""), alpaca(1), {"instruction": "x"}, alpaca(3, input=7)]
    with pytest.raises(CourseError) as err:
        validate(records)
    message = str(err.value)
    assert "3 problem(s)" in message
    assert all(f"record {i}" in message for i in (0, 2, 3))
    lines = b'{"a": 1}\nnot json\n{"b": 2}\n{broken\n'
    (tmp_path / "x.jsonl").write_bytes(lines)
    with pytest.raises(CourseError, match=r"(?s)line 2 \(record 1\).*line 4 \(record 3\)"):
        load_records(tmp_path / "x.jsonl")


def test_bad_input_never_raises_a_bare_python_error(tmp_path):
    for bad in [{"instruction": "a"}, {"conversations": "hi"}, {"messages": [None]}, 42, {"x": 1}]:
        with pytest.raises(CourseError):
            to_messages(bad)
    with pytest.raises(CourseError, match="no such file"):
        load_records(tmp_path / "missing.jsonl")
    with pytest.raises(CourseError, match="no records"):
        validate([])
    with pytest.raises(CourseError, match="known format"):
        detect_format([{"question": "a", "answer": "b"}])


# ---------------------------------------------------------------- conversion


def test_alpaca_to_messages_joins_instruction_and_input():
    assert to_messages(ALPACA) == [
        {"role": "user", "content": "Make this request polite.\n\nSend the memo."},
        {"role": "assistant", "content": "Could you please send the memo?"},
    ]
    no_input = to_messages({"instruction": "Say hi.", "input": "", "output": "Hi."})
    assert no_input[0]["content"] == "Say hi."


def test_sharegpt_to_messages_maps_roles_and_keeps_system():
    messages = to_messages(SHAREGPT)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert messages[2]["content"] == "A mutable sequence."
    assert to_messages({"messages": messages}) == messages
    assert to_messages([SHAREGPT, ALPACA])[1] == to_messages(ALPACA)


def test_prompt_completion_splits_at_the_last_answer():
    pc = to_prompt_completion(SHAREGPT)
    assert [m["role"] for m in pc["prompt"]] == ["system", "user", "assistant", "user"]
    assert pc["completion"] == [{"role": "assistant", "content": "An immutable one."}]
    assert to_messages(pc) == to_messages(SHAREGPT)  # and back
    assert to_messages({"prompt": "2 + 2 =", "completion": " 4"})[1] == {
        "role": "assistant",
        "content": " 4",
    }
    assert len(to_prompt_completion([ALPACA, SHAREGPT])) == 2


# ---------------------------------------------------------------- the checklist


def test_exact_duplicates_keep_the_first_copy():
    records = [alpaca(0), alpaca(1), alpaca(0), alpaca(1), alpaca(2)]
    kept, report = drop_exact_duplicates(records)
    assert kept == [alpaca(0), alpaca(1), alpaca(2)]
    assert [(r.index, r.duplicate_of) for r in report] == [(2, 0), (3, 1)]


def test_near_duplicates_ignore_case_spacing_and_punctuation_only():
    original = alpaca(0)
    variants = [
        alpaca(0, input="  SEND   report 0"),  # same words
        alpaca(0, output="Could you please send report 0, thanks?"),  # one word more of ~12
        alpaca(0, input="Call Tom about the invoice."),  # a different request
        {
            "instruction": "Fix the bug.",
            "input": "def f(): return 1",
            "output": "def f(): return 2",
        },
    ]
    kept, report = drop_near_duplicates([original, *variants])
    assert [r.index for r in report] == [1, 2]
    assert all("record 0" in r.reason for r in report)
    assert near_duplicate_pairs([original], [alpaca(0, input="send report 0")])[0][:2] == (0, 0)
    assert near_duplicate_pairs([alpaca(1)], [ALPACA]) == []


def test_length_outliers_by_token_count(tokenizer):
    normal = [alpaca(i) for i in range(20)]
    long = alpaca(99, output="Could you please " + "really " * 200 + "send it?")
    short = alpaca(98, output="OK.")
    kept, report = drop_length_outliers([*normal, long, short], WordTokenizer())
    assert kept == normal
    assert ["above" in report[0].reason, "below" in report[1].reason] == [True, True]
    # max_tokens: a conversation the training max_length would cut off (and lose its EOS)
    kept, report = drop_length_outliers(normal, tokenizer, factor=100, max_tokens=20)
    assert kept == [] and "over max_length 20" in report[0].reason


def test_empty_invalid_and_tone_checks():
    records = [alpaca(0), alpaca(1, output=" "), alpaca(2, instruction=""), alpaca(3, input="")]
    kept, report = drop_empty(records)
    assert [r.index for r in report] == [1, 2] and kept[-1]["input"] == ""  # empty input is fine
    kept, report = drop_invalid([alpaca(0), SHAREGPT, {"instruction": None, "output": "x"}, "text"])
    assert kept == [alpaca(0)] and [r.index for r in report] == [1, 2, 3]
    curt = [
        alpaca(1, output="Send report 1. Now!"),
        alpaca(2, output="Send report 2."),
        alpaca(3, output="COULD YOU PLEASE SEND IT!!"),
    ]
    kept, report = drop_inconsistent_tone([alpaca(0), *curt])
    assert kept == [alpaca(0)] and len(report) == 3


def test_run_checklist_reports_original_indices():
    records = [alpaca(0), alpaca(1, output=""), alpaca(0), alpaca(2), alpaca(2)]
    kept, report = run_checklist(records, [drop_empty, drop_exact_duplicates])
    assert kept == [alpaca(0), alpaca(2)]
    assert [(r.index, r.check, r.duplicate_of) for r in report] == [
        (1, "drop_empty", None),
        (2, "drop_exact_duplicates", 0),
        (4, "drop_exact_duplicates", 3),
    ]
    _, notes = check_size(records, minimum=500)
    assert notes[0].index is None and "only 5 records" in notes[0].reason


def test_split_and_save_is_seeded_and_complete(tmp_path):
    records = [alpaca(i) for i in range(50)]
    paths = split_and_save(records, tmp_path / "a", test_fraction=0.2, seed=3)
    again = split_and_save(records, tmp_path / "b", test_fraction=0.2, seed=3)
    train, val = (load_records(paths[k]) for k in ("train", "validation"))
    assert (len(train), len(val)) == (40, 10)
    assert sorted(map(json.dumps, train + val)) == sorted(map(json.dumps, records))
    assert paths["train"].read_bytes() == again["train"].read_bytes()
    # shuffled, not cut off the end, kept in file order, and the seed picks the split
    picked = [records.index(r) for r in val]
    assert picked == sorted(picked) and picked != list(range(picked[0], picked[0] + 10))
    other = split_and_save(records, tmp_path / "c", test_fraction=0.2, seed=4)
    assert load_records(other["validation"]) != val
    with pytest.raises(CourseError):
        split_and_save(records, tmp_path, test_fraction=1.5)


def test_load_task_gives_trl_messages_and_keeps_fields():
    ds = load_task("bugfix", "test")
    row = ds[0]
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
    assert row["messages"][1]["content"] == row["output"]
    assert row["entry_point"] in row["output"] and row["tests"][0].startswith("assert ")
    qa = load_task("python_qa", "test")
    assert qa[0]["messages"][-1]["role"] == "assistant"
    # no `conversations` column: TRL would rename it to `messages` over ours, keeping human/gpt
    assert "conversations" not in qa.column_names and "topic" in qa.column_names
    with pytest.raises(CourseError, match="Unknown task"):
        load_task("poetry", "train")
    with pytest.raises(CourseError, match="does not exist"):
        load_task("polite", "dev")


# ---------------------------------------------------------------- the polite score


def test_polite_score():
    request = "Send me the budget report by Friday. Now."
    assert polite_score(request, "Could you please send me the budget report by Friday?")
    assert polite_score(
        request, "Maria, I would appreciate it if you could send me the budget report by Friday."
    )
    assert not polite_score(request, "Send me the budget report by Friday.")  # no marker
    assert not polite_score(
        request, "Could you please send me the report by Friday?"
    )  # lost "budget"
    assert not polite_score(
        request, "Could you please send me the budget report by Friday? Now!"
    )  # curt
    # The article's rewrite paraphrases ("handle" -> "process"), which this rule does not accept.
    assert not polite_score(
        "Handle this quickly.", "I would appreciate it if you could process this matter promptly."
    )


# ---------------------------------------------------------------- chat template and loss mask


def test_loss_mask_covers_each_answer_and_its_eos(tokenizer):
    messages = to_messages(SHAREGPT)
    ids, mask, how = loss_mask(tokenizer, messages)
    assert how.startswith("assistant turns")
    trained = tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert trained == "A mutable sequence.<|end|>An immutable one.<|end|>"
    assert check_eos(tokenizer, messages) == 2
    view = loss_mask_view(tokenizer, messages)
    assert "⟦A mutable sequence.<|end|>⟧" in str(view)
    assert view.n_loss == sum(mask) and "<span" in view._repr_html_()


def test_missing_eos_and_raw_sharegpt_roles_are_caught(tokenizer):
    messages = to_messages(ALPACA)
    no_eos = tokenizer.chat_template.replace(" + eos_token", "")
    with pytest.raises(CourseError, match="never learns to stop"):
        check_eos(tokenizer, messages, chat_template=no_eos)
    raw = [{"role": t["from"], "content": t["value"]} for t in SHAREGPT["conversations"]]
    with pytest.raises(CourseError, match="to_messages"):
        render(tokenizer, raw)
    permissive = (
        "{% for m in messages %}{{ m['role'] }}: {% if m['role'] == 'assistant' %}"
        "{% generation %}{{ m['content'] + eos_token }}{% endgeneration %}"
        "{% else %}{{ m['content'] }}{% endif %}\n{% endfor %}"
    )
    assert loss_mask_view(tokenizer, raw, chat_template=permissive).n_loss == 0
    with pytest.raises(CourseError, match="learns nothing"):
        check_eos(tokenizer, raw, chat_template=permissive)


def test_template_without_generation_markers_is_refused_unless_trl_knows_it(tokenizer):
    """trl 1.x swaps in a training template for the templates it knows and raises for the others;
    it never falls back to masking the final answer (which this course once taught)."""
    plain = (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    )
    with pytest.raises(CourseError, match="not training-compatible"):
        loss_mask(tokenizer, to_messages(SHAREGPT), chat_template=plain)
    with pytest.raises(CourseError, match="llama3_training"):
        training_template(tokenizer, trl_template("llama3_1"))
    template, how = training_template(tokenizer, trl_template("qwen2_5"))
    assert template == trl_template("qwen2_5_training") and "trl" in how
    assert tokenizer.chat_template != template, "the tokenizer itself is left as it was"


def test_a_template_with_markers_is_used_as_it_is(tokenizer):
    template, how = training_template(tokenizer)
    assert template == tokenizer.chat_template and "own" in how
