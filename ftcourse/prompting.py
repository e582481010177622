"""Prompting baselines, measured: zero-shot, few-shot and retrieval prompts against a fine-tune.

The prompts each strategy sends, and what each one costs.

Every strategy is a plain function from a held-out record to the `messages` conversation the model
sees. The examples a prompt carries are earlier user/assistant turns, the way chat models are shown
demonstrations:

    zero_shot(record)                  the request alone
    few_shot(record, examples, k)      the same k training examples before every request
    retrieval(record, retriever, k)    the k training examples most like this request (BM25)

`compare` runs each strategy on the same held-out records and measures accuracy, prompt tokens per
request, latency per request and the one-off cost; `winner` and `versus` read the result, the
second with a paired test (`ftcourse.evaluate.mcnemar`). A task is a course task's name or a
`ftcourse.tasks.Task` of your own (notebook 06's knowledge task is one: `ftcourse.docstore`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ftcourse.data import words
from ftcourse.errors import CourseError
from ftcourse.evaluate import EvalResult, evaluate, generate, mcnemar, prompt_messages
from ftcourse.tasks import Task, scored_task

# ---------------------------------------------------------------- building prompts


def zero_shot(record: dict) -> list[dict]:
    """The record's own prompt: every turn before the reference answer."""
    return list(prompt_messages(record["messages"]))


def demonstration(example: dict) -> list[dict]:
    """A training example as a user/assistant exchange to show the model before the real request."""
    return [{"role": m["role"], "content": m["content"]} for m in example["messages"]]


def few_shot(record: dict, examples: list[dict], k: int = 2) -> list[dict]:
    """The first `k` of `examples` as earlier exchanges, then the record's prompt."""
    if k < 0 or k > len(examples):
        raise CourseError(f"k={k} examples asked for, but {len(examples)} were given.")
    turns = [turn for example in examples[:k] for turn in demonstration(example)]
    return turns + zero_shot(record)


def query_text(record: dict) -> str:
    """What a record asks: the text of its prompt turns (the reference answer is not part of it)."""
    return "\n".join(m["content"] for m in zero_shot(record))


class Retriever:
    """BM25 search over examples by their words (`rank_bm25.BM25Okapi`): by default the words of
    their prompts; `text` picks another text to search (`ftcourse.docstore.DocStore` does)."""

    def __init__(self, examples: list[dict], text: Callable[[dict], str] = query_text):
        from rank_bm25 import BM25Okapi

        if not examples:
            raise CourseError("A retriever needs at least one example to search.")
        self.examples = list(examples)
        self.bm25 = BM25Okapi([words(text(e)) for e in self.examples])

    def scores(self, query: str) -> list[float]:
        """The BM25 score of every example for `query` (higher: more words in common, rarer ones)."""
        return self.bm25.get_scores(words(query)).tolist()

    def search(self, query: str, k: int = 2) -> list[tuple[int, float]]:
        """The `k` best (index, score) pairs, best first; ties keep the examples' order."""
        scores = self.scores(query)
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        return [(i, scores[i]) for i in order[:k]]

    def nearest(self, record: dict, k: int = 2) -> list[dict]:
        """The `k` examples most similar to a record's prompt, best first."""
        return [self.examples[i] for i, _ in self.search(query_text(record), k)]


def retrieval(record: dict, retriever: Retriever, k: int = 2) -> list[dict]:
    """Retrieval-augmented prompt: the `k` nearest training examples, most similar closest to the request."""
    return few_shot(record, retriever.nearest(record, k)[::-1], k)


def prompt_tokens(tokenizer, conversation: list[dict]) -> int:
    """Tokens the model reads for one request: the conversation in the chat template, ready to answer."""
    enc = tokenizer.apply_chat_template(
        conversation, add_generation_prompt=True, enable_thinking=False, return_dict=True
    )
    return len(enc["input_ids"])


# ---------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Strategy:
    """One way of answering: how the prompt is built, which adapter runs it, what it cost up front."""

    name: str
    build: Callable[[dict], list[dict]]  # held-out record -> the conversation sent
    adapter: str | None = None  # an adapter loaded in the model; None: the base model
    one_off_seconds: float = 0.0  # paid once before the first request (training, indexing)


@dataclass
class Measured:
    """One strategy's numbers on the held-out records."""

    name: str
    accuracy: float
    n: int
    form_rate: float  # share of answers in the task's form (`Task.in_form`), right or wrong
    stop_rate: float  # share of answers that ended with EOS
    prompt_tokens: float  # mean over the requests
    latency_s: float  # median seconds for one request on its own (batch of 1)
    one_off_seconds: float
    result: EvalResult = field(repr=False)


def as_records(records: list[dict], build: Callable[[dict], list[dict]]) -> list[dict]:
    """Copies of `records` whose `messages` are the strategy's prompt plus the reference answer.

    `evaluate` drops the last assistant turn and generates from what is left, so it sees exactly
    the strategy's prompt; the task's other fields (the request, the unit tests) stay for scoring.
    """
    out = []
    for record in records:
        answer = record["messages"][-1]
        if answer["role"] != "assistant":
            raise CourseError("Each held-out record must end with the reference assistant answer.")
        out.append({**record, "messages": build(record) + [answer]})
    return out


def _latency(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int) -> float:
    """Median wall-clock seconds to answer one prompt alone, after one warm-up request."""
    generate(model, tokenizer, prompts[:1], max_new_tokens, batch_size=1, progress=False)
    times = []
    for prompt in prompts:
        start = time.perf_counter()
        generate(model, tokenizer, [prompt], max_new_tokens, batch_size=1, progress=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare(
    model,
    tokenizer,
    task: str | Task,
    records: list[dict],
    strategies: list[Strategy],
    latency_requests: int = 5,
    max_new_tokens: int | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> list[Measured]:
    """Measure each strategy on the same held-out records.

    Accuracy and the EOS stop rate come from `evaluate` (batched), the form rate from the task's form rule.
    Latency is the median of `latency_requests` requests answered one at a time, so it includes
    reading the prompt and generating until EOS (or the token budget), as a user would wait.
    An adapter named by a strategy is activated for it (`ftcourse.inference.using_adapter`).
    `max_new_tokens` defaults to the task's answer budget (`Task.max_new_tokens`).
    """
    from ftcourse.inference import using_adapter

    if not records:
        raise CourseError("compare needs at least one held-out record.")
    rule = task if isinstance(task, Task) else scored_task(task)
    max_new_tokens = max_new_tokens or rule.max_new_tokens
    rows = []
    for strategy in strategies:
        held_out = as_records(records, strategy.build)
        prompts = [prompt_messages(r["messages"]) for r in held_out]
        with using_adapter(model, strategy.adapter):
            result = evaluate(
                model,
                tokenizer,
                task,
                held_out,
                strategy.name,
                max_new_tokens,
                batch_size,
                progress,
            )
            latency = _latency(
                model, tokenizer, prompts[: max(latency_requests, 1)], max_new_tokens
            )
        lengths = [prompt_tokens(tokenizer, p) for p in prompts]
        rows.append(
            Measured(
                strategy.name,
                result.accuracy,
                result.n,
                statistics.mean(map(rule.in_form, result.answers)),
                result.stop_rate,
                statistics.mean(lengths),
                latency,
                strategy.one_off_seconds,
                result,
            )
        )
    return rows


def winner(rows: list[Measured]) -> Measured:
    """The most accurate strategy; on a tie, the one with the shorter prompts, then the first listed."""
    return min(rows, key=lambda r: (-r.accuracy, r.prompt_tokens))


def versus(a: Measured, b: Measured) -> tuple[float, str]:
    """The paired exact test of two strategies on the same items: (p-value, a sentence saying it)."""
    if a.result.n != b.result.n:
        raise CourseError(f"{a.name} and {b.name} were not measured on the same records.")
    p = mcnemar(a.result.correct, b.result.correct)
    verdict = "beyond noise" if p < 0.05 else "not beyond noise"
    return p, (
        f"{a.name} {a.accuracy:.0%} vs {b.name} {b.accuracy:.0%} on the same {a.n} items: "
        f"McNemar p = {p:.3g}, {verdict}"
    )


def comparison_table(rows: list[Measured], notes: dict[str, tuple[str, str]] | None = None) -> str:
    """The measured rows as a markdown table; `notes` adds (best for, limitations) per strategy."""
    from ftcourse.docblocks import markdown_table

    header = ["method", "held-out accuracy", "answers in form", "stop at EOS"]
    header += ["prompt tokens / request", "latency / request", "one-off cost"]
    table = []
    for r in rows:
        cells = [
            r.name,
            f"{r.accuracy:.0%} (n={r.n})",
            f"{r.form_rate:.0%}",
            f"{r.stop_rate:.0%}",
            f"{r.prompt_tokens:.0f}",
            f"{1000 * r.latency_s:.0f} ms",
            _seconds(r.one_off_seconds) if r.one_off_seconds else "none",
        ]
        table.append(cells + (list(notes.get(r.name, ("", ""))) if notes else []))
    if notes:
        header += ["best for", "limitations"]
    return markdown_table(header, table, right_from=1, right_to=len(header) - 2 * bool(notes))


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s" if s >= 0.1 else f"{1000 * s:.0f} ms"
