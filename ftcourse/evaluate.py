"""Held-out evaluation: generate through the chat template, score each answer, summarise."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ftcourse.sandbox import run_tests


def prompt_messages(messages: list[dict]) -> list[dict]:
    """The conversation up to (not including) the final assistant answer."""
    if messages and messages[-1]["role"] == "assistant":
        return messages[:-1]
    return messages


@torch.no_grad()
def generate(
    model,
    tokenizer,
    conversations: list[list[dict]],
    max_new_tokens: int = 128,
    batch_size: int = 16,
    progress: bool = True,
) -> list[str]:
    """Greedy answers for each conversation, batched with left padding, stopping at EOS."""
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # new tokens follow the prompt
    answers = []
    try:
        batches = range(0, len(conversations), batch_size)
        for start in tqdm(batches, desc="generating", disable=not progress, leave=False):
            enc = tokenizer.apply_chat_template(
                conversations[start : start + batch_size],
                add_generation_prompt=True,
                padding=True,
                return_tensors="pt",
                return_dict=True,
            ).to(model.device)
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
            new = out[:, enc["input_ids"].shape[1] :]
            answers += tokenizer.batch_decode(new, skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return [a.strip() for a in answers]


def extract_code(answer: str) -> str:
    """The Python code in an answer: the first fenced block if there is one, else the whole text."""
    fenced = re.search(r"```(?:python)?\n(.*?)(?:```|$)", answer, re.S)
    return fenced.group(1) if fenced else answer


def score_bugfix(record: dict, answer: str) -> bool:
    """A fix counts when the answered function passes all of the record's unit tests (sandboxed)."""
    return run_tests(extract_code(answer), list(record["tests"]), timeout=5.0).passed


def score_polite(record: dict, answer: str) -> bool:
    """A rewrite counts when it is polite and keeps the request's content words (see data/README.md)."""
    from ftcourse.data import polite_score

    return polite_score(record["input"], answer)


SCORERS: dict[str, Callable[[dict, str], bool]] = {"bugfix": score_bugfix, "polite": score_polite}
# Answers are short (polite <= 40 tokens, a fixed function <= 60): a margin, not a novel.
MAX_NEW_TOKENS = {"polite": 64, "bugfix": 96}


@dataclass
class EvalResult:
    """Held-out score of one model on one task, with every answer kept for inspection."""

    task: str
    label: str
    accuracy: float
    n: int
    seconds: float
    answers: list[str] = field(repr=False)
    correct: list[bool] = field(repr=False)

    def examples(self, k: int = 3, wrong: bool = False) -> list[tuple[int, str]]:
        """The first `k` (index, answer) pairs that were right (or wrong)."""
        picks = [(i, a) for i, (a, ok) in enumerate(zip(self.answers, self.correct)) if ok != wrong]
        return picks[:k]


def evaluate(
    model,
    tokenizer,
    task: str,
    records: list[dict],
    label: str = "",
    max_new_tokens: int | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> EvalResult:
    """Generate an answer for each held-out record and score it with the task's rule."""
    if task not in SCORERS:
        raise ValueError(f"no scoring rule for task {task!r}; known: {sorted(SCORERS)}")
    start = time.perf_counter()
    prompts = [prompt_messages(r["messages"]) for r in records]
    was_training = model.training
    model.eval()
    max_new_tokens = max_new_tokens or MAX_NEW_TOKENS[task]
    answers = generate(model, tokenizer, prompts, max_new_tokens, batch_size, progress)
    model.train(was_training)
    correct = [SCORERS[task](r, a) for r, a in zip(records, answers)]
    seconds = time.perf_counter() - start
    return EvalResult(
        task, label, sum(correct) / max(len(correct), 1), len(records), seconds, answers, correct
    )


def results_table(results: list[EvalResult]) -> str:
    """A markdown table of held-out accuracies."""
    lines = ["| task | model | held-out accuracy | n | seconds |", "|---|---|---:|---:|---:|"]
    lines += [
        f"| {r.task} | {r.label} | {r.accuracy:.0%} | {r.n} | {r.seconds:.0f} |" for r in results
    ]
    return "\n".join(lines)
