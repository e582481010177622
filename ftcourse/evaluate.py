"""Held-out evaluation: generate through the chat template, score each answer by its task's rule."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ftcourse.tasks import Task, scored_task


def prompt_messages(messages: list[dict]) -> list[dict]:
    """The conversation up to (not including) the final assistant answer."""
    if messages and messages[-1]["role"] == "assistant":
        return messages[:-1]
    return messages


# Greedy decoding whatever the model's generation_config.json says: Instruct models ship sampling
# defaults (the GPU profiles' Qwen3: do_sample, temperature 0.6, top_p 0.95, top_k 20; Qwen2.5 also
# a repetition_penalty of 1.05-1.1) that `generate` applies to every value it is not given, and a
# repetition penalty works against tasks that copy from the prompt. These are transformers' own
# defaults, so nothing is left to the file.
GREEDY = dict(
    do_sample=False, num_beams=1, repetition_penalty=1.0, temperature=1.0, top_p=1.0, top_k=50
)


def stop_ids(model, tokenizer) -> list[int]:
    """Every token that ends an answer: the tokenizer's EOS, then those generation_config stops at."""
    configured = model.generation_config.eos_token_id
    configured = configured if isinstance(configured, list) else [configured]
    return list(dict.fromkeys(i for i in [tokenizer.eos_token_id, *configured] if i is not None))


@torch.no_grad()
def generate(
    model,
    tokenizer,
    conversations: list[list[dict]],
    max_new_tokens: int = 128,
    batch_size: int = 16,
    progress: bool = True,
    stops: list[bool] | None = None,
    temperature: float = 0.0,
) -> list[str]:
    """Greedy answers for each conversation, batched with left padding, stopping at EOS.

    Pass a list as `stops` to learn which answers ended with EOS (rather than running out of tokens).
    A `temperature` above 0 samples instead, from the whole distribution at that temperature.
    """
    decoding = (
        GREEDY
        if temperature <= 0
        else {**GREEDY, "do_sample": True, "temperature": temperature, "top_k": 0}
    )
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # new tokens follow the prompt
    ends = stop_ids(model, tokenizer)
    answers = []
    try:
        batches = range(0, len(conversations), batch_size)
        for start in tqdm(batches, desc="generating", disable=not progress, leave=False):
            enc = tokenizer.apply_chat_template(
                conversations[start : start + batch_size],
                add_generation_prompt=True,
                enable_thinking=False,  # Qwen3: answer at once; templates without it ignore it
                padding=True,
                return_tensors="pt",
                return_dict=True,
            ).to(model.device)
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                eos_token_id=ends,
                pad_token_id=tokenizer.pad_token_id,
                **decoding,
            )
            new = out[:, enc["input_ids"].shape[1] :]
            answers += tokenizer.batch_decode(new, skip_special_tokens=True)
            if stops is not None:
                stops += torch.isin(new, torch.tensor(ends, device=new.device)).any(dim=1).tolist()
    finally:
        tokenizer.padding_side = side
    return [a.strip() for a in answers]


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
    stopped: list[bool] = field(repr=False)  # the answer ended with EOS

    @property
    def stop_rate(self) -> float:
        """Share of answers that ended with EOS instead of running out of tokens."""
        return sum(self.stopped) / max(len(self.stopped), 1)


def evaluate(
    model,
    tokenizer,
    task: str | Task,
    records: list[dict],
    label: str = "",
    max_new_tokens: int | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> EvalResult:
    """Generate an answer for each held-out record and score it with the task's rule.

    `task` is a course task's name, or a `Task` of your own with a `score` rule (notebook 06's
    knowledge task, `ftcourse.docstore.STDLIB_PARAMS`, is one).
    """
    rule = task if isinstance(task, Task) else scored_task(task)
    start = time.perf_counter()
    prompts = [prompt_messages(r["messages"]) for r in records]
    was_training = model.training
    model.eval()
    max_new_tokens = max_new_tokens or rule.max_new_tokens
    stopped: list[bool] = []
    answers = generate(model, tokenizer, prompts, max_new_tokens, batch_size, progress, stopped)
    model.train(was_training)
    correct = [rule.score(r, a) for r, a in zip(records, answers)]
    seconds = time.perf_counter() - start
    accuracy = sum(correct) / max(len(correct), 1)
    return EvalResult(rule.name, label, accuracy, len(records), seconds, answers, correct, stopped)


def results_table(results: list[EvalResult]) -> str:
    """A markdown table of held-out accuracies."""
    from ftcourse.docblocks import markdown_table

    header = ["task", "model", "held-out accuracy", "stops at EOS", "n", "seconds"]
    rows = [
        [r.task, r.label, f"{r.accuracy:.0%}", f"{r.stop_rate:.0%}", str(r.n), f"{r.seconds:.0f}"]
        for r in results
    ]
    return markdown_table(header, rows, right_from=2)


@dataclass(frozen=True)
class CopyProbe:
    """Mean loss on a random token sequence, the first time and when it is repeated."""

    first: float
    second: float

    @property
    def copies(self) -> bool:
        """True when the repeat is much easier: the model has induction heads."""
        return self.second < 0.5 * self.first


@torch.no_grad()
def copy_probe(model, length: int = 40, seed: int = 0) -> CopyProbe:
    """Can the model copy? Compare its loss on a random sequence and on the same sequence repeated."""
    gen = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    seq = torch.randint(vocab // 50, vocab, (length,), generator=gen)  # skip special/byte tokens
    ids = torch.cat([seq, seq]).unsqueeze(0).to(model.device)
    logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    nll = -logp.gather(1, ids[0, 1:, None])[:, 0]
    return CopyProbe(nll[: length - 1].mean().item(), nll[length:].mean().item())


def untrained_twin(model, max_layers: int = 2, min_params: float = 1e8):
    """A randomly initialised model of `model`'s architecture, on its device and in its dtype.

    A model of over `min_params` parameters is cut to `max_layers` layers: an untrained network
    copies no better with more of them, and a full random copy of an 8B model would not fit beside
    the real one. The course's 4M-parameter model keeps its shape.
    """
    from transformers import AutoModelForCausalLM

    values = {k: v for k, v in model.config.to_dict().items() if k != "quantization_config"}
    if model.num_parameters() > min_params:
        values["num_hidden_layers"] = min(values["num_hidden_layers"], max_layers)
        values.pop("layer_types", None)  # rebuilt from the new layer count
        if "max_window_layers" in values:
            values["max_window_layers"] = values["num_hidden_layers"]
    config = type(model.config).from_dict(values)
    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    return AutoModelForCausalLM.from_config(config, dtype=dtype).to(model.device).eval()


@torch.no_grad()
def perplexity(model, tokenizer, text: str, seq_len: int = 256, batch_size: int = 8) -> float:
    """exp(mean next-token loss) over consecutive, non-overlapping `seq_len` windows of `text`.

    Every window is full (the tail shorter than a window is left out), so no padding enters the
    average, and the same text gives the same windows for every model with this tokenizer.
    """
    # the whole text at once, cut into windows below: no "sequence too long" warning for that
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt", verbose=False).input_ids[0]
    n = len(ids) // seq_len
    if n == 0:
        raise ValueError(f"the text has {len(ids)} tokens, fewer than one window of {seq_len}")
    windows = ids[: n * seq_len].view(n, seq_len).to(model.device)
    was_training = model.training
    model.eval()
    total = 0.0
    for chunk in windows.split(batch_size):
        total += model(input_ids=chunk, labels=chunk).loss.float().item() * len(chunk)
    model.train(was_training)
    return math.exp(total / n)


@torch.no_grad()
def answer_loss(model, tokenizer, conversations: list[list[dict]]) -> float:
    """Mean cross-entropy on the answer tokens (every assistant turn), the tokens training learns."""
    from ftcourse.chat import loss_mask

    was_training, total, count = model.training, 0.0, 0
    model.eval()
    for messages in conversations:
        ids, mask, _ = loss_mask(tokenizer, messages)
        input_ids = torch.tensor([ids], device=model.device)
        logits = model(input_ids=input_ids).logits[0, :-1].float()
        keep = torch.tensor(mask[1:], device=logits.device).bool()  # token t+1 is predicted at t
        losses = torch.nn.functional.cross_entropy(logits, input_ids[0, 1:], reduction="none")
        total, count = total + losses[keep].sum().item(), count + int(keep.sum())
    model.train(was_training)
    return total / max(count, 1)


def mcnemar(a: list[bool], b: list[bool]) -> float:
    """Two-sided exact McNemar p-value of two scorings of the same items (binomial on discordant pairs)."""
    if len(a) != len(b):
        raise ValueError(
            f"paired scorings must have one verdict per item each ({len(a)} vs {len(b)})"
        )
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased chance that at least one of k answers, drawn from n samples of which c are right, is right."""
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@dataclass
class Headroom:
    """Greedy accuracy against sampled pass@k on the same items: how far choosing better can go."""

    task: str
    greedy: float
    pass_at: dict[int, float]  # k -> pass@k, estimated from `samples` answers per item
    samples: int
    temperature: float
    right: list[int] = field(repr=False)  # per item: how many of its samples were right


def headroom(
    model,
    tokenizer,
    task: str,
    records: list[dict],
    samples: int = 8,
    temperature: float = 1.0,
    seed: int = 0,
    progress: bool = True,
    batch_size: int = 16,
) -> Headroom:
    """Greedy pass@1, then `samples` sampled answers per record, scored: pass@k for k = 1 .. samples."""
    rule = scored_task(task)
    greedy = evaluate(model, tokenizer, task, records, batch_size=batch_size, progress=progress)
    prompts = [prompt_messages(r["messages"]) for r in records for _ in range(samples)]
    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    answers = generate(
        model, tokenizer, prompts, rule.max_new_tokens, batch_size, progress, None, temperature
    )
    model.train(was_training)
    right = [
        sum(rule.score(r, a) for a in answers[i * samples : (i + 1) * samples])
        for i, r in enumerate(records)
    ]
    ks = sorted({1, *(k for k in (2, 4, 8, 16, 32) if k < samples), samples})
    pass_at = {k: sum(pass_at_k(samples, c, k) for c in right) / len(right) for k in ks}
    return Headroom(task, greedy.accuracy, pass_at, samples, temperature, right)
