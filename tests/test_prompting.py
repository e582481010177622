"""ftcourse.prompting: prompts for zero-shot, few-shot and retrieval, token counts, and compare().

Retrieval and prompt building are checked on hand-made records; `compare` runs a tiny random Llama
with the course tokenizer on three polite records, so it takes a few seconds.
"""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoTokenizer, LlamaForCausalLM

from ftcourse import CourseError
from ftcourse.architectures import tiny_llama_config
from ftcourse.evaluate import EvalResult
from ftcourse.paths import BASE_MODEL_DIR
from ftcourse.prompting import (
    Measured,
    Retriever,
    Strategy,
    as_records,
    compare,
    comparison_table,
    few_shot,
    prompt_tokens,
    query_text,
    retrieval,
    versus,
    winner,
    zero_shot,
)
from ftcourse.tasks import bugfix_form, polite_form, score_polite

# peft reads a property transformers 5 renamed; the warning is about peft, not about this code
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated")


def record(request: str, answer: str = "Could you please do it?") -> dict:
    return {
        "input": request,
        "messages": [
            {"role": "user", "content": f"Make this request polite.\n\n{request}"},
            {"role": "assistant", "content": answer},
        ],
    }


CORPUS = [
    record("Water the office plants. Now.", "Could you please water the office plants?"),
    record("Send the invoice to Maria. ASAP.", "Would you kindly send the invoice to Maria?"),
    record("Book a meeting room for Friday.", "Could you book a meeting room for Friday, please?"),
    record("Send the slides. Now.", "Please send the slides. Thank you!"),
]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(BASE_MODEL_DIR)


# ---------------------------------------------------------------- building prompts


def test_zero_shot_drops_the_reference_answer():
    prompt = zero_shot(CORPUS[0])
    assert prompt == CORPUS[0]["messages"][:1]
    assert prompt is not CORPUS[0]["messages"]  # a copy: building a prompt never edits the data


def test_few_shot_puts_k_fixed_examples_before_the_request():
    query = record("Print the report. Hurry up.")
    prompt = few_shot(query, CORPUS, k=2)
    assert [m["role"] for m in prompt] == ["user", "assistant", "user", "assistant", "user"]
    assert prompt[:4] == CORPUS[0]["messages"] + CORPUS[1]["messages"]
    assert prompt[-1] == query["messages"][0]
    assert few_shot(query, CORPUS, k=0) == zero_shot(query)
    assert few_shot(record("Other."), CORPUS, k=2)[:4] == prompt[:4]  # the same for every request
    with pytest.raises(CourseError, match="5 examples"):
        few_shot(query, CORPUS, k=5)


def test_retriever_ranks_by_shared_rare_words():
    retriever = Retriever(CORPUS)
    best = retriever.search("Please send the invoice", k=2)
    assert best[0][0] == 1  # "send" and "invoice" both match; "invoice" is rare
    assert best[1][0] == 3  # "send" alone
    assert best[0][1] > best[1][1] > 0
    scores = retriever.scores("meeting room")
    assert max(range(len(scores)), key=scores.__getitem__) == 2
    assert retriever.scores("zebra xylophone") == [0.0] * len(CORPUS)
    # nothing in common: ties keep the corpus order, so the result is still deterministic
    assert [i for i, _ in retriever.search("zebra", k=3)] == [0, 1, 2]


def test_retrieval_prompt_puts_the_most_similar_example_next_to_the_request():
    query = record("Send the invoice to the bank.")
    prompt = retrieval(query, Retriever(CORPUS), k=2)
    assert prompt[2:4] == CORPUS[1]["messages"]  # best match, right before the request
    assert prompt[0:2] == CORPUS[3]["messages"]
    assert prompt[-1] == query["messages"][0]
    assert "invoice" in query_text(query) and "invoice" not in query_text({"messages": prompt[:2]})


def test_retriever_needs_examples():
    with pytest.raises(CourseError):
        Retriever([])


# ---------------------------------------------------------------- counting tokens


def test_prompt_tokens_counts_the_template_and_the_generation_prompt(tokenizer):
    conversation = zero_shot(CORPUS[0])
    text = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|assistant|>\n")
    n = prompt_tokens(tokenizer, conversation)
    assert n == len(tokenizer(text, add_special_tokens=False)["input_ids"])
    content = len(tokenizer(conversation[0]["content"], add_special_tokens=False)["input_ids"])
    assert n > content  # role tags, BOS and the assistant header cost tokens too


def test_every_example_makes_every_request_longer(tokenizer):
    query = record("Print the report. Hurry up.")
    lengths = [prompt_tokens(tokenizer, few_shot(query, CORPUS, k)) for k in range(4)]
    assert lengths == sorted(lengths) and len(set(lengths)) == 4
    # an exchange costs at least its answer plus EOS
    answer = len(tokenizer(CORPUS[0]["messages"][1]["content"])["input_ids"])
    assert lengths[1] - lengths[0] > answer


# ---------------------------------------------------------------- measuring


def test_form_rules_check_the_style_not_the_content():
    assert polite_form("Could you please water the plants?")
    assert polite_form("Would you kindly do something else entirely?")  # content is not checked
    assert not polite_form("Water the plants. Now.")
    assert not polite_form("Could you please water the plants ASAP?")  # curt word
    assert bugfix_form("def f(x):\n    return x + 1")
    assert bugfix_form("```python\ndef f(x):\n    return x\n```")
    assert not bugfix_form("Return a string for a string.")


def test_as_records_hands_evaluate_exactly_the_strategy_prompt():
    build = lambda r: few_shot(r, CORPUS, 1)  # noqa: E731
    held_out = as_records(CORPUS[2:], build)
    for original, rec in zip(CORPUS[2:], held_out):
        assert rec["messages"][:-1] == build(original)
        assert rec["messages"][-1] == original["messages"][-1]
        assert rec["input"] == original["input"]  # what the scorer reads stays
    assert CORPUS[2]["messages"][0]["role"] == "user" and len(CORPUS[2]["messages"]) == 2
    with pytest.raises(CourseError, match="reference assistant answer"):
        as_records([{"messages": CORPUS[0]["messages"][:1]}], zero_shot)


def tiny_model(vocab: int):
    torch.manual_seed(0)
    config = tiny_llama_config(
        vocab_size=vocab,
        max_position_embeddings=512,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    return LlamaForCausalLM(config).eval()


def test_compare_measures_every_strategy(tokenizer):
    model = tiny_model(len(tokenizer))
    config = LoraConfig(
        r=8, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )  # random A and B: an adapter that changes the answers, so switching it on can be seen
    model = get_peft_model(model, config, adapter_name="polite")
    held_out = [record("Print the report. Now.", "Could you please print the report?")] * 2
    strategies = [
        Strategy("zero-shot", zero_shot),
        Strategy("few-shot", lambda r: few_shot(r, CORPUS, 2)),
        Strategy("LoRA", zero_shot, adapter="polite", one_off_seconds=12.5),
    ]
    rows = compare(
        model, tokenizer, "polite", held_out, strategies, latency_requests=1, max_new_tokens=8
    )
    assert [r.name for r in rows] == ["zero-shot", "few-shot", "LoRA"]
    assert all(r.n == 2 and len(r.result.answers) == 2 and r.latency_s > 0 for r in rows)
    for r in rows:  # each share recounted from the answers themselves
        answers = r.result.answers
        assert r.accuracy == sum(score_polite(h, a) for h, a in zip(held_out, answers)) / 2
        assert r.form_rate == sum(map(polite_form, answers)) / 2
        assert r.stop_rate == sum(r.result.stopped) / 2 and len(r.result.stopped) == 2
    assert rows[1].prompt_tokens > rows[0].prompt_tokens == rows[2].prompt_tokens
    assert [r.one_off_seconds for r in rows] == [0, 0, 12.5]
    assert rows[0].result.answers != rows[2].result.answers  # the adapter was really switched on
    assert model.active_adapter == "polite"
    table = comparison_table(rows, {"LoRA": ("a consistent style", "needs training")})
    assert table.count("\n") == 4 and "12 s" in table and "a consistent style" in table
    with pytest.raises(CourseError):
        compare(model, tokenizer, "polite", [], strategies)
    with pytest.raises(CourseError, match="python_qa"):
        compare(model, tokenizer, "python_qa", held_out, strategies)


def test_compare_shares_are_exact_on_fixed_answers(monkeypatch, tokenizer, mode_model):
    """Generation replaced by fixed answers: each row's accuracy, form and stop rate are exact."""
    held_out = [
        record("Print the report. Now.", "Could you please print the report?"),
        record("Call Tom. ASAP.", "Could you please call Tom?"),
        record("Lock the door.", "Could you please lock the door?"),
        record("Send the slides. Now.", "Could you please send the slides?"),
    ]
    zero = [  # (answer, stopped at EOS): right / in form, wrong / curt / no marker at all
        ("Could you please print the report?", True),
        ("Could you please help me?", False),
        ("Lock the door. Now.", True),
        ("Send the slides.", True),
    ]
    request = {r["messages"][0]["content"]: i for i, r in enumerate(held_out)}

    def fake_generate(
        model, tokenizer, prompts, max_new_tokens, batch_size=16, progress=True, stops=None
    ):
        mine = [request[p[-1]["content"]] for p in prompts]
        if len(prompts[0]) > 1:  # few-shot: here the examples make every answer right, and stop
            picked = [(held_out[i]["messages"][-1]["content"], True) for i in mine]
        else:
            picked = [zero[i] for i in mine]
        if stops is not None:
            stops += [stopped for _, stopped in picked]
        return [answer for answer, _ in picked]

    monkeypatch.setattr("ftcourse.evaluate.generate", fake_generate)
    monkeypatch.setattr("ftcourse.prompting.generate", fake_generate)
    strategies = [
        Strategy("zero-shot", zero_shot),
        Strategy("few-shot", lambda r: few_shot(r, CORPUS, 2)),
    ]
    rows = compare(mode_model, tokenizer, "polite", held_out, strategies, latency_requests=2)
    shares = [(r.accuracy, r.form_rate, r.stop_rate, r.n) for r in rows]
    assert shares == [(0.25, 0.5, 0.75, 4), (1.0, 1.0, 1.0, 4)]
    assert rows[0].result.correct == [True, False, False, False]
    table = comparison_table(rows)
    assert "| zero-shot | 25% (n=4) | 50% | 75% |" in table


def test_compare_scores_a_task_object_by_its_own_rule(monkeypatch, tokenizer, mode_model):
    """A `Task` outside the registry (notebook 06's knowledge task) is scored by its `score`."""
    from ftcourse.docstore import STDLIB_PARAMS, closed_book

    held_out = [
        {
            "question": q,
            "answer": a,
            "messages": closed_book({"question": q}) + [{"role": "assistant", "content": a}],
        }
        for q, a in [
            ("What are the parameters of f?", "x, y=1"),
            ("What are the parameters of g?", "s"),
        ]
    ]
    fixed = {
        "What are the parameters of f?": "x, y=1",
        "What are the parameters of g?": "def g(s):",
    }

    def fake_generate(
        model, tokenizer, prompts, max_new_tokens, batch_size=16, progress=True, stops=None
    ):
        if stops is not None:
            stops += [True] * len(prompts)
        return [fixed[p[-1]["content"]] for p in prompts]

    monkeypatch.setattr("ftcourse.evaluate.generate", fake_generate)
    monkeypatch.setattr("ftcourse.prompting.generate", fake_generate)
    (row,) = compare(
        mode_model, tokenizer, STDLIB_PARAMS, held_out, [Strategy("zero-shot", zero_shot)]
    )
    assert (row.accuracy, row.form_rate, row.n) == (0.5, 0.5, 2)
    assert row.result.task == "stdlib_params" and row.result.correct == [True, False]


def measured(name: str, correct: list[bool], tokens: float = 10.0) -> Measured:
    result = EvalResult(
        "polite",
        name,
        sum(correct) / len(correct),
        len(correct),
        0.0,
        [""] * len(correct),
        correct,
        [],
    )
    return Measured(name, result.accuracy, result.n, 0.0, 0.0, tokens, 0.0, 0.0, result)


def test_winner_is_the_most_accurate_then_the_shortest_prompt():
    a = measured("a", [True, True, False], tokens=50)
    b = measured("b", [True, False, True], tokens=20)
    c = measured("c", [False, False, True])
    assert winner([a, c]) is a
    assert winner([a, b, c]) is b  # a tie on accuracy: the shorter prompts win


def test_versus_reports_the_paired_p_value_and_noise():
    strong = measured("LoRA", [True] * 8 + [False] * 2)
    weak = measured("zero-shot", [False] * 10)
    p, text = versus(strong, weak)
    assert p == pytest.approx(2 / 2**8)  # 8 discordant pairs, all one way
    assert "LoRA 80% vs zero-shot 0%" in text and "beyond noise" in text and "not" not in text
    p, text = versus(measured("x", [True, False] * 5), measured("y", [False, True] * 5))
    assert p == 1.0 and "not beyond noise" in text
    with pytest.raises(CourseError):
        versus(strong, measured("short", [True]))
