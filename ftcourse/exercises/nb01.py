"""Notebook 01's exercises (strategy and memory): a recommendation, a batch that fits, a plan.

Expected answers come from `ftcourse.decision` and `ftcourse.memory`, never typed in.
"""

from __future__ import annotations

from ftcourse.exercises.core import CORRECT, checker, wrong

T4 = "T4 (15 GB)"
EFFECTIVE_BATCH = 16  # the article's recipe: batch 4 x gradient accumulation 4
# (model, GPU GB, sequence length) for 01.3: LoRA, QLoRA, nothing, and batches that need rounding.
PLAN_CASES = (
    ("llama-3.1-8b", 24, 512),
    ("llama-3.1-8b", 15, 2048),
    ("llama-3.1-8b", 8, 2048),
    ("mistral-7b-v0.3", 15, 2048),
    ("qwen2.5-1.5b-instruct", 4, 512),
    ("qwen2.5-7b-instruct", 80, 2048),
    ("smollm2-360m-instruct", 8, 512),
    ("smollm2-360m-instruct", 24, 512),  # LoRA fits 67 of these: the cap of 16 must apply
)


@checker(
    "01.1",
    "easy",
    "a help-desk assistant must quote this week's price list and always reply in the company's "
    "three-line format; you have 1,200 example replies and a 24 GB GPU. Set `answer` to the "
    "Recommendation `recommend(...)` gives for these facts.",
)
def _01_1(answer):
    from ftcourse.decision import Recommendation, recommend

    expected = recommend(
        needs_fresh_facts=True, needs_consistent_format=True, examples=1200, gpu_gb=24
    )
    if not isinstance(answer, Recommendation):
        return wrong(
            f"Set `answer` to what `recommend(...)` returns, not a {type(answer).__name__}."
        )
    if "RAG" not in answer.approach:
        return wrong(
            "A price list that changes every week is a fact that goes stale: that is retrieval's "
            "(RAG's) job, needs_fresh_facts=True."
        )
    if "fine-tuning" not in answer.approach:
        return wrong(
            "A fixed reply format is behaviour, fine-tuning's job (needs_consistent_format=True), "
            "and 1,200 examples are enough to teach it (examples=1200)."
        )
    if (answer.method, answer.model) != (expected.method, expected.model):
        return wrong(
            f"{answer.method} on {answer.model} is the plan for another GPU: "
            "the hardware check reads gpu_gb (24 here)."
        )
    if answer.approach != expected.approach:
        return wrong(f"The approach is {answer.approach!r}: read the reasons it gives.")
    if answer != expected:
        return wrong(
            "The advice matches, but not its reasons: describe only what the task says (fresh "
            "facts, a fixed format, 1,200 examples, 24 GB); nothing there is about latency."
        )
    return CORRECT


@checker(
    "01.2",
    "medium",
    "set `answer` to the largest batch for QLoRA of Llama-3.1-8B at 2,048 tokens on a T4 with "
    "gradient checkpointing, and `without` to the largest batch without it "
    "(`memory.largest_batch`; 0 means not even one sequence fits).",
)
def _01_2(answer, without):
    from ftcourse import memory

    def largest(**overrides):
        gpu = overrides.pop("gpu", T4)
        kwargs = dict(method="qlora", seq_len=2048, gradient_checkpointing=True) | overrides
        return memory.largest_batch("llama-3.1-8b", gpu, **kwargs)

    expected, expected_without = largest(), largest(gradient_checkpointing=False)
    if (answer, without) == (expected_without, expected):
        return wrong(
            "The two are swapped: checkpointing *saves* memory, so it allows the larger batch."
        )
    for got, ckpt in ((answer, True), (without, False)):
        if got == largest(gradient_checkpointing=ckpt):
            continue
        slips = {
            "at 512 tokens, the estimate's default: pass seq_len=2048": dict(seq_len=512),
            "at 1,024 tokens: pass seq_len=2048": dict(seq_len=1024),
            "for LoRA: pass method='qlora'": dict(method="lora"),
            "on a 24 GB GPU: the T4 is memory.GPUS's 'T4 (15 GB)'": dict(gpu="24 GB"),
        }
        matching = [
            s for s, kw in slips.items() if got == largest(gradient_checkpointing=ckpt, **kw)
        ]
        if matching:  # several slips can give the same batch: name each one
            return wrong(f"{got} is the batch " + ", or ".join(matching) + ".")
        which = "with" if ckpt else "without"
        return wrong(
            f"{got} is not the largest batch {which} gradient checkpointing. Ask "
            "`memory.largest_batch` for Llama-3.1-8B on 'T4 (15 GB)' with method, seq_len and "
            "gradient_checkpointing set (0 means not even one sequence fits)."
        )
    return CORRECT


@checker(
    "01.3",
    "hard",
    "write `answer(model, gpu_gb, seq_len)` returning a plan (method, batch_size, accumulation) for "
    f"an effective batch of {EFFECTIVE_BATCH}, gradient checkpointing on: 'lora' if one sequence "
    "fits with LoRA, else 'qlora' if it fits with QLoRA, else None; batch_size the largest power "
    f"of two (at most {EFFECTIVE_BATCH}) that fits; accumulation = {EFFECTIVE_BATCH} // batch_size.",
)
def _01_3(answer):
    from ftcourse import memory

    for model, gpu_gb, seq_len in PLAN_CASES:
        largest = {
            method: memory.largest_batch(
                model,
                gpu_gb,
                max_batch=EFFECTIVE_BATCH,
                method=method,
                seq_len=seq_len,
                gradient_checkpointing=True,
            )
            for method in ("lora", "qlora")
        }
        method = next((m for m in ("lora", "qlora") if largest[m]), None)
        expected = None
        if method:
            batch = 2 ** (largest[method].bit_length() - 1)  # the largest power of two <= it
            expected = (method, batch, EFFECTIVE_BATCH // batch)
        got = answer(model, gpu_gb, seq_len)
        if got is not None:
            got = tuple(got)
        if got == expected:
            continue
        case = f"For ({model!r}, {gpu_gb}, {seq_len}) you returned {got}, expected {expected}."
        if got is not None and len(got) != 3:
            return wrong(f"{case} Return a tuple of three: (method, batch_size, accumulation).")
        if expected is None:
            return wrong(f"{case} Not even one sequence fits with QLoRA: return None.")
        if got is None:
            unchecked = memory.largest_batch(
                model, gpu_gb, method=method, seq_len=seq_len, gradient_checkpointing=False
            )
            why = "One sequence does fit: is gradient checkpointing on?"
            if method == "qlora":
                why = "Not even one sequence fits with LoRA: fall back to QLoRA." + (
                    "" if unchecked else " It fits only with gradient checkpointing on: is it on?"
                )
            return wrong(f"{case} {why}")
        if got[0] != method:
            why = (
                "LoRA fits: prefer it (no quantization error, faster steps)."
                if method == "lora"
                else "Not even one sequence fits with LoRA: fall back to QLoRA."
            )
            return wrong(f"{case} {why}")
        if got[1] & (got[1] - 1) or got[1] > EFFECTIVE_BATCH:
            return wrong(
                f"{case} Round the largest batch that fits ({largest[method]}, with "
                f"max_batch={EFFECTIVE_BATCH}) down to a power of two."
            )
        if got[1] * got[2] != EFFECTIVE_BATCH:
            return wrong(f"{case} batch_size x accumulation must make {EFFECTIVE_BATCH}.")
        return wrong(f"{case} Use `memory.largest_batch(..., gradient_checkpointing=True)`.")
    return CORRECT


EXERCISES = [_01_1, _01_2, _01_3]
