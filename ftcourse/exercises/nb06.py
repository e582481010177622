"""Notebook 06's exercises (capstone): prompt tokens, examples that fit, a token budget, recall@k.

Expected answers come from `ftcourse.prompting`, `ftcourse.docstore`, the notebook's tokenizer (its
profile's) and the committed polite and stdlib_docs data.
"""

from __future__ import annotations

from ftcourse.exercises.core import CORRECT, checker, wrong

TASK = "polite"


def _tokenizer(course: bool = False):
    """The notebook's tokenizer (its profile's), or the course model's."""
    from transformers import AutoTokenizer

    from ftcourse.ownmodel import notebook_profile
    from ftcourse.paths import BASE_MODEL_DIR

    return AutoTokenizer.from_pretrained(
        BASE_MODEL_DIR if course else notebook_profile().model_path
    )


def _window() -> int:
    """The notebook's `window`: the model's `max_position_embeddings`, capped at the profile's `max_length`."""
    from transformers import AutoConfig

    from ftcourse.ownmodel import notebook_profile

    profile = notebook_profile()
    context = AutoConfig.from_pretrained(profile.model_path).max_position_embeddings
    return min(context, profile.max_length)


def _split(split: str) -> list[dict]:
    from ftcourse.tasks import load_task

    return list(load_task(TASK, split))


@checker(
    "06.1",
    "easy",
    "set `answer` to the number of prompt tokens the few-shot prompt with the first 3 training "
    "examples needs for held-out record 0 (`test_set[0]`).",
)
def _06_1(answer):
    from ftcourse.prompting import few_shot, prompt_tokens

    tokenizer, train, test = _tokenizer(), _split("train"), _split("test")
    prompt = few_shot(test[0], train, 3)
    expected = prompt_tokens(tokenizer, prompt)
    text = "".join(m["content"] for m in prompt)
    if answer == len(tokenizer(text, add_special_tokens=False)["input_ids"]):
        return wrong(
            "You counted the texts alone: the chat template adds role tags and EOS to every turn."
        )
    if answer == prompt_tokens(tokenizer, few_shot(test[0], train, 2)):
        return wrong("That is 2 examples; pass k=3.")
    if answer != expected:
        return wrong(
            "Build it with `few_shot(test_set[0], train_set, 3)` and count it with `prompt_tokens`."
        )
    return CORRECT


@checker(
    "06.2",
    "medium",
    "set `answer` to the largest number k of fixed training examples for which the few-shot prompt "
    "of `test_set[0]` still leaves room for a 64-token answer within `window` positions (the "
    "model's `max_position_embeddings`, capped at the profile's `max_length`).",
)
def _06_2(answer):
    from ftcourse.prompting import few_shot, prompt_tokens
    from ftcourse.tasks import get_task

    tokenizer, train, test = _tokenizer(), _split("train"), _split("test")
    window = _window()
    room = get_task(TASK).max_new_tokens  # the 64 tokens an answer may take
    k = 0
    while prompt_tokens(tokenizer, few_shot(test[0], train, k + 1)) + room <= window:
        k += 1
    if answer == k + 1:
        return wrong(
            f"With {k + 1} examples prompt + answer pass {window} positions: one too many."
        )
    if answer != k:
        return wrong(
            f"Add examples while `prompt_tokens(...) + {room} <= window` ({window}) holds, and "
            "keep the last k that fitted."
        )
    return CORRECT


@checker(
    "06.3",
    "hard",
    "write `answer(record, retriever, tokenizer, k, budget)`: the retrieval prompt with as many of "
    "the k nearest examples as fit in `budget` prompt tokens (drop the least similar first; if "
    "not even the request alone fits, return the request alone).",
)
def _06_3(answer):
    from ftcourse.prompting import Retriever, prompt_tokens, retrieval

    tokenizer, train, test = _tokenizer(course=True), _split("train"), _split("test")
    retriever = Retriever(train[:300])
    for record, k, budget in [
        (test[0], 3, 1000),
        (test[1], 3, 120),
        (test[2], 4, 90),
        (test[3], 2, 5),
    ]:
        expected = retrieval(record, retriever, 0)
        for j in range(k, 0, -1):
            if prompt_tokens(tokenizer, retrieval(record, retriever, j)) <= budget:
                expected = retrieval(record, retriever, j)
                break
        got = answer(record, retriever, tokenizer, k, budget)
        if not (isinstance(got, list) and got and got[-1] == expected[-1]):
            shape = f"a {type(got).__name__} of {len(got)}" if isinstance(got, list) else repr(got)
            return wrong(
                f"with k={k} and a budget of {budget} tokens you returned {shape}, expected "
                f"{(len(expected) - 1) // 2} example(s) and the request. Return the prompt as a "
                "list of messages that ends with the request itself, as "
                "`retrieval(record, retriever, j)` builds it (the request alone when j=0)."
            )
        n_got, n_exp = (len(got) - 1) // 2, (len(expected) - 1) // 2
        if got != expected and n_got == n_exp:
            return wrong(
                f"with k={k} and a budget of {budget} tokens you kept {n_got} example(s), as "
                "expected, but not the right ones: drop the least similar first, so keep the "
                "j nearest (`retrieval(record, retriever, j)`)."
            )
        if got != expected:
            return wrong(
                f"with k={k} and a budget of {budget} tokens you returned {n_got} example(s), "
                f"expected {n_exp}. Try j = k, k-1, ..., 0 nearest examples with "
                "`retrieval(record, retriever, j)` and keep the first whose `prompt_tokens` fit."
            )
    return CORRECT


@checker(
    "06.4",
    "easy",
    "set `answer` to the smallest k for which the document store's recall@k over all held-out "
    "`stdlib_params` questions (`test_q`) is 100%.",
)
def _06_4(answer):
    from ftcourse.docstore import DocStore, load_docs, load_questions, recall_at_k

    store, questions = DocStore(load_docs()), load_questions("test")
    k = 1
    while recall_at_k(store, questions, k) < 1.0:
        k += 1
    if isinstance(answer, float):
        return wrong("The answer is a number of documents k (an int), not a recall.")
    if answer == k - 1:
        missed = round((1 - recall_at_k(store, questions, k - 1)) * len(questions))
        return wrong(
            f"recall@{k - 1} misses {missed} question(s): their own document is not among the "
            f"first {k - 1}."
        )
    if answer != k:
        return wrong(
            "Compute `recall_at_k(store, test_q, k)` for k = 1, 2, ... and keep the first k "
            "where it is 1.0."
        )
    return CORRECT


EXERCISES = [_06_1, _06_2, _06_3, _06_4]
