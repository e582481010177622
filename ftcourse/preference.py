"""Preference pairs for DPO: what the SFT adapter got wrong, turned into "this, not that".

A preference pair is a prompt with two answers, `chosen` and `rejected`, in trl's conversational
form. The course builds them from its own data: rejected is what the SFT adapter itself answered on
a training prompt and the task's rule marked wrong; chosen is a right answer the adapter gave to the
same prompt, or the record's reference. Rewrites of the reference that make it curt, drop a word,
mangle one or loop can add failures the adapter rarely shows. `failure` says which way a polite
rewrite went wrong. Measured, DPO on the adapter's own mistakes gains nothing held-out; on a set
with bad targets (`mixed_set`, notebook 08) it removes most of them (docs/benchmarks.md).
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from pathlib import Path

from ftcourse.errors import CourseError
from ftcourse.tasks import content_words, polite_form, polite_score

FAILURES = ("looping", "impolite", "mangled word", "dropped word")
_LOOP = re.compile(r"\b(\w+(?:\W+\w+){0,2})(?:\W+\1\b){2,}", re.I)


def loops(answer: str) -> bool:
    """True when one to three words repeat three times in a row ("please please please")."""
    return bool(_LOOP.search(answer))


def failure(request: str, answer: str) -> str | None:
    """How a polite rewrite went wrong (one of FAILURES), or None when the rule counts it right.

    Checked in that order: a loop, then the tone (no politeness marker, or a curt word kept), then
    a content word of the request missing from the answer: "mangled" when the answer has a word
    close to it ("findinch" for "find"), else "dropped".
    """
    if polite_score(request, answer):
        return None
    if loops(answer):
        return "looping"
    if not polite_form(answer):
        return "impolite"
    said = set(re.findall(r"[a-z]+", answer.lower()))
    missing = content_words(request) - said
    near = any(difflib.get_close_matches(w, said, n=1, cutoff=0.6) for w in missing)
    return "mangled word" if near else "dropped word"


def failure_rates(requests: list[str], answers: list[str]) -> dict[str, float]:
    """Share of answers that failed in each way (FAILURES order); the rest were right."""
    counts = Counter(failure(r, a) for r, a in zip(requests, answers))
    return {kind: counts[kind] / max(len(answers), 1) for kind in FAILURES}


# ---------------------------------------------------------------- synthetic rejections


def _longest_content_word(request: str, answer: str) -> str | None:
    """The request's longest content word that the answer contains (what a rewrite can damage)."""
    said = set(re.findall(r"[a-z]+", answer.lower()))
    kept = sorted(content_words(request) & said, key=lambda w: (-len(w), w))
    return kept[0] if kept else None


def synthetic_rejections(request: str, reference: str) -> dict[str, str]:
    """Wrong rewrites made from the reference, one per failure type it can show.

    curt: the request as it came (impolite); dropped word / mangled word: the reference with its
    longest content word removed / cut short; looping: the reference's first words, then "please"
    over and over.
    """
    out = {"impolite": request.strip()}
    word = _longest_content_word(request, reference)
    if word:
        pattern = rf"\b{word}\b"
        out["dropped word"] = re.sub(
            r"\s+", " ", re.sub(pattern, "", reference, count=1, flags=re.I)
        )
        out["mangled word"] = re.sub(
            pattern, word[: max(3, len(word) * 3 // 5)] + "en", reference, count=1, flags=re.I
        )
    out["looping"] = " ".join(reference.split()[:4] + ["please"] * 6)
    return {kind: text for kind, text in out.items() if failure(request, text) == kind}


# ---------------------------------------------------------------- a mixed training set

BAD_KINDS = ("impolite", "looping")  # the bad targets a scraped polite set is given


def mixed_set(
    records: list[dict], share: float, kinds: tuple[str, ...] = BAD_KINDS, seed: int = 0
) -> list[dict]:
    """A copy of `records` in which `share` of the targets are bad answers, as scraped data has.

    The bad records are drawn at random (seeded) and take turns over `kinds`: "impolite" returns
    the curt request as it came, "looping" the reference's first words and then "please" over and
    over (`synthetic_rejections`). Each record gains `bad` (its kind, or "" for a good target) and
    `good` (the reference answer, kept for preference pairs).
    """
    import random

    if not 0 <= share <= 1:
        raise CourseError(f"share={share}: use a fraction between 0 and 1.")
    if unknown := set(kinds) - set(BAD_KINDS):
        raise CourseError(f"kinds: {sorted(unknown)} are not bad-target kinds; use {BAD_KINDS}.")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    chosen = sorted(order[: round(share * len(records))])
    kind_of = {i: kinds[n % len(kinds)] for n, i in enumerate(chosen)}
    out = []
    for i, record in enumerate(records):
        good = record["messages"][-1]["content"]
        kind = kind_of.get(i, "")
        bad = synthetic_rejections(record["input"], good).get(kind) if kind else None
        answer = bad or good
        messages = [*record["messages"][:-1], {"role": "assistant", "content": answer}]
        out.append({**record, "messages": messages, "bad": kind if bad else "", "good": good})
    return out


def filtered(records: list[dict]) -> list[dict]:
    """The records of a mixed set whose targets are good: what filtering keeps."""
    return [r for r in records if not r["bad"]]


def mixed_pairs(records: list[dict]) -> list[dict]:
    """One pair per bad record of a mixed set: the good answer chosen, the bad target rejected."""
    return [
        pair(r["messages"][:-1], r["good"], r["messages"][-1]["content"], f"mixed: {r['bad']}")
        for r in records
        if r["bad"]
    ]


# ---------------------------------------------------------------- pairs


def pair(prompt: list[dict], chosen: str, rejected: str, source: str) -> dict:
    """One preference pair in trl's conversational form, with where its rejection came from."""
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "source": source,
    }


def harvest_pairs(
    records: list[dict],
    answers: list[str],
    synthetic: int = 0,
    chosen: str = "own",
    kinds: tuple[str, ...] = FAILURES,
) -> list[dict]:
    """Pairs for the polite task: each distinct wrong answer the model gave, then made ones.

    `records` are training records (with `messages` and `input`) and `answers` the model's answers
    to them; a record may come several times (sampled answers). Each distinct wrong answer is a
    rejection. Its chosen answer, with `chosen="own"`, is a right answer the model gave to the same
    prompt, when it gave one, so that the two differ where the mistake is; else, or with
    `chosen="reference"`, the record's reference answer. `source` and `chosen_from` say which.
    Then up to `synthetic` made rejections (`synthetic_rejections`), round-robin over `kinds`
    (failure types), on prompts the model answered right.
    """
    if chosen not in ("own", "reference"):
        raise CourseError(f"chosen={chosen!r}: use 'own' or 'reference'.")
    if unknown := set(kinds) - set(FAILURES):
        raise CourseError(f"kinds: {sorted(unknown)} are not failure types; use {FAILURES}.")
    own: dict[tuple, str] = {}
    for record, answer in zip(records, answers):
        if failure(record["input"], answer) is None:
            own.setdefault(_prompt_key(record), answer)
    pairs, right, seen = [], {}, set()
    for record, answer in zip(records, answers):
        key, kind = _prompt_key(record), failure(record["input"], answer)
        if (key, answer) in seen:  # sampled answers repeat: one pair each
            continue
        seen.add((key, answer))
        reference = record["messages"][-1]["content"]
        if kind is None:
            right.setdefault(key, (record, reference))
            continue
        best = own.get(key) if chosen == "own" else None
        made = pair(record["messages"][:-1], best or reference, answer, f"model: {kind}")
        pairs.append({**made, "chosen_from": "own" if best else "reference"})
    count = 0
    for i, (record, reference) in enumerate(right.values()):
        if count >= synthetic:
            break
        options = synthetic_rejections(record["input"], reference)
        kind = kinds[i % len(kinds)]
        if kind in options:
            made = pair(record["messages"][:-1], reference, options[kind], f"synthetic: {kind}")
            pairs.append({**made, "chosen_from": "reference"})
            count += 1
    return pairs


def _prompt_key(record: dict) -> tuple:
    """What identifies a record's prompt: the text of its turns before the answer."""
    return tuple(t["content"] for t in record["messages"][:-1])


def validate_pairs(pairs: list[dict], source: str = "preference pairs") -> list[dict]:
    """Refuse pairs DPO cannot learn from, naming the record and field; return them unchanged."""
    problems = [text for i, p in enumerate(pairs) for text in _pair_problems(i, p)]
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise CourseError(
            f"{source}: " + "; ".join(problems[:5]) + more + ". Fix or drop those records."
        )
    return pairs


def _pair_problems(i: int, p: dict) -> list[str]:
    """What is wrong with pair `i`: its fields' shapes first, then roles and sameness."""
    problems = []
    for name in ("prompt", "chosen", "rejected"):
        turns = p.get(name)
        if not isinstance(turns, list) or not turns:
            problems.append(f"record {i}: field {name!r} must be a non-empty list of messages")
            continue
        for j, turn in enumerate(turns):
            text = turn.get("content") if isinstance(turn, dict) else None
            if not isinstance(text, str) or not text.strip():
                problems.append(f"record {i}: {name}[{j}] has no text in 'content'")
    if problems:
        return problems
    if p["prompt"][-1]["role"] != "user":
        problems.append(f"record {i}: the prompt must end with a user turn")
    for name in ("chosen", "rejected"):
        if [t["role"] for t in p[name]] != ["assistant"]:
            problems.append(f"record {i}: field {name!r} must be one assistant turn")
    if p["chosen"] == p["rejected"]:
        problems.append(f"record {i}: chosen and rejected are the same answer")
    return problems


def dpo_config(profile, output_dir: str | Path, **overrides):
    """DPOConfig for the profile: its dtype flags set explicitly (trl defaults to bf16), no saving."""
    from trl import DPOConfig

    from ftcourse.trainer import run_settings

    values = dict(
        **run_settings(profile, output_dir),
        per_device_train_batch_size=profile.batch_size,
        gradient_accumulation_steps=profile.grad_accum,
        lr_scheduler_type="cosine",
        max_length=profile.max_length,
    )
    return DPOConfig(**{**values, **overrides})


def dpo_trainer(
    profile, adapter: str | Path, pairs: list[dict], output_dir: str | Path, **settings
):
    """trl's DPOTrainer on the saved SFT adapter at `adapter`, untrained; `settings` go to DPOConfig.

    The adapter loads trainable on the profile's base (`ftcourse.adapters.inference_base`); with no
    `ref_model`, trl adds a frozen copy of it named `ref` as the reference. trl stores a 4-bit
    base's adapter in bf16; `match_adapter_dtype` puts it back in the profile's dtype.
    """
    from datasets import Dataset
    from peft import PeftModel
    from trl import DPOTrainer

    from ftcourse.adapters import inference_base
    from ftcourse.trainer import match_adapter_dtype

    base, tokenizer = inference_base(profile)
    model = PeftModel.from_pretrained(base, str(adapter), is_trainable=True)
    data = Dataset.from_list([{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs])
    args = dpo_config(profile, output_dir, **settings)
    trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    match_adapter_dtype(trainer.model, profile)
    return trainer


def bad_answers(requests: list[str], answers: list[str], kinds: tuple[str, ...] = BAD_KINDS):
    """Per answer: did it fail in one of `kinds` (by default the ways a mixed set teaches)?"""
    return [failure(r, a) in kinds for r, a in zip(requests, answers)]
