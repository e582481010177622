"""Using adapters: switch between them on one base, answer with one, time them, look inside the weights.

A `PeftModel` can hold several adapters on one copy of the base weights. `using_adapter` runs a
block with one of them active (or none, for "base") and restores the previous state; `answer_with`
and `adapter_switcher` answer a prompt through that; `token_latency` times variants of a model
(adapter off, on, merged in) that may share one copy of the weights.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from html import escape
from pathlib import Path

import torch

from ftcourse.errors import CourseError

BASE = "base"  # the name `answer_with` and `using_adapter` give to "no adapter at all"

# ---------------------------------------------------------------- switching


def adapter_names(model) -> list[str]:
    """The choices `answer_with` accepts: "base", then every adapter loaded into `model`."""
    return [BASE, *getattr(model, "peft_config", {})]


@contextmanager
def _keep_requires_grad(model) -> Iterator[None]:
    """peft's `disable_adapter` and `set_adapter` can leave adapter weights trainable: undo that."""
    before = {name: p.requires_grad for name, p in model.named_parameters()}
    try:
        yield
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(before.get(name, False))


@contextmanager
def using_adapter(model, adapter_name: str | None) -> Iterator[None]:
    """Run the block with one adapter active (or none, for "base"), then restore the previous one."""
    if adapter_name in (None, BASE):
        if not hasattr(model, "disable_adapter"):  # a plain or merged model is its own base
            yield
            return
        with _keep_requires_grad(model), model.disable_adapter():
            yield
        return
    if adapter_name not in getattr(model, "peft_config", {}):
        raise CourseError(
            f"No adapter named {adapter_name!r} is loaded. Choose one of "
            f"{', '.join(adapter_names(model))}, or load it first with "
            f"`model.load_adapter(folder, adapter_name={adapter_name!r})`."
        )
    previous = model.active_adapter
    with _keep_requires_grad(model):
        model.set_adapter(adapter_name)
        try:
            yield
        finally:
            model.set_adapter(previous)


def answer_with(
    model, tokenizer, adapter_name: str, prompt: str | list[dict], max_new_tokens: int = 96
) -> str:
    """The greedy answer to one user message (or a conversation) with the named adapter active."""
    from ftcourse.evaluate import generate

    conversation = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    with using_adapter(model, adapter_name):
        return generate(model, tokenizer, [conversation], max_new_tokens, progress=False)[0]


def adapter_switcher(model, tokenizer, prompt: str = "", max_new_tokens: int = 96):
    """A dropdown of adapters and a prompt box over `answer_with`; `.result` holds the answer."""
    import ipywidgets as w

    from ftcourse.widgets import form

    def show(adapter_name: str, prompt: str) -> str:
        answer = answer_with(model, tokenizer, adapter_name, prompt, max_new_tokens)
        print(f"[{adapter_name}] {answer}")
        return answer

    return form(
        show,
        adapter_name=w.Dropdown(options=adapter_names(model), description="adapter"),
        prompt=w.Textarea(
            value=prompt, description="prompt", continuous_update=False, layout={"width": "90%"}
        ),
    )


def side_by_side(prompts: list[str], answers: dict[str, list[str]], marks=None) -> str:
    """An HTML table: one row per prompt, one column per model; `marks` prefixes each answer.

    `marks` maps a model name to one short string per prompt (e.g. "✓" or "✗"), or is None.
    """
    head = "".join(f"<th>{escape(name)}</th>" for name in answers)
    rows = []
    for i, prompt in enumerate(prompts):
        cells = []
        for name, texts in answers.items():
            mark = (marks or {}).get(name)
            prefix = f"<b>{escape(_mark_text(mark[i]))}</b>\n" if mark else ""
            cells.append(f"<td><pre>{prefix}{escape(texts[i])}</pre></td>")
        rows.append(f"<tr><td><pre>{escape(prompt)}</pre></td>{''.join(cells)}</tr>")
    style = "<style>.ftc-sbs td,.ftc-sbs th{text-align:left;vertical-align:top}</style>"
    return f'{style}<table class="ftc-sbs"><tr><th>prompt</th>{head}</tr>{"".join(rows)}</table>'


def save_merged(model, tokenizer, folder: str | Path) -> Path:
    """Save a model (e.g. `merge_and_unload`'s) and its tokenizer to `folder` in one go, never torn."""
    from ftcourse.paths import saving_dir

    with saving_dir(folder) as new:
        model.save_pretrained(new)
        tokenizer.save_pretrained(new)
    return Path(folder)


# ---------------------------------------------------------------- latency


@torch.no_grad()
def _seconds_per_token(model, inputs: dict, new_tokens: int) -> float:
    from ftcourse.evaluate import GREEDY

    start = time.perf_counter()
    model.generate(
        **inputs,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,  # ignore EOS: every run produces the same number of tokens
        pad_token_id=model.config.pad_token_id,
        **GREEDY,
    )
    if inputs["input_ids"].is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / new_tokens


@contextmanager
def merged_adapter(model) -> Iterator[None]:
    """Run the block with the active adapter merged into the base weights (`merge_adapter`), then unmerge."""
    model.merge_adapter()
    try:
        yield
    finally:
        model.unmerge_adapter()


def token_latency(
    variants: dict, tokenizer, prompt: str, new_tokens: int = 32, runs: int = 5
) -> dict[str, list[float]]:
    """Seconds per generated token for each variant, `runs` times each.

    A variant is a model, or a (model, context) pair: `context()` is entered around each timing,
    e.g. `lambda: using_adapter(model, "base")` or `lambda: merged_adapter(model)`, so several variants can
    share one copy of the weights. They take turns (a, b, c, a, b, c, ...) after one warm-up each,
    so a slowdown of the machine mid-measurement hits all of them alike; compare medians.
    """
    from contextlib import nullcontext

    pairs = {n: v if isinstance(v, tuple) else (v, nullcontext) for n, v in variants.items()}
    conversation = [{"role": "user", "content": prompt}]
    inputs = tokenizer.apply_chat_template(
        conversation,
        add_generation_prompt=True,
        enable_thinking=False,  # Qwen3: answer at once; templates without it ignore it
        return_tensors="pt",
        return_dict=True,
    )
    for model, context in pairs.values():
        model.eval()
        with context():
            _seconds_per_token(model, inputs.to(model.device), 2)  # warm-up: first allocations
    times = {name: [] for name in pairs}
    for _ in range(runs):
        for name, (model, context) in pairs.items():
            with context():
                times[name].append(_seconds_per_token(model, inputs.to(model.device), new_tokens))
    return times


def median_ms(times: dict[str, list[float]]) -> dict[str, float]:
    """Median milliseconds per token for each entry of `token_latency`'s result."""
    return {name: 1000 * statistics.median(ts) for name, ts in times.items()}


def median_ratio(times: dict[str, list[float]], name: str, baseline: str) -> float:
    """How `name`'s time compares with `baseline`'s: the median of their ratios round by round.

    Each round times the variants one right after another, so a machine busy with something else
    slows both sides of a ratio alike; the median then sets aside the rounds a burst hit unevenly.
    """
    return statistics.median(a / b for a, b in zip(times[name], times[baseline], strict=True))


# ---------------------------------------------------------------- weights


def dequantized_weight(module) -> torch.Tensor:
    """The weight a layer computes with, as float32: 4-bit (bitsandbytes) weights are unpacked."""
    weight = module.get_base_layer().weight if hasattr(module, "get_base_layer") else module.weight
    if getattr(weight, "quant_state", None) is not None:
        import bitsandbytes.functional as bnbf

        return bnbf.dequantize_4bit(weight.data, weight.quant_state).float()
    return weight.detach().float()


def _mark_text(mark) -> str:
    """A pass/fail mark as text: booleans become a tick or a cross."""
    return {True: "✓", False: "✗"}.get(mark, str(mark)) if isinstance(mark, bool) else str(mark)
