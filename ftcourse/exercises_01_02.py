"""The checkers behind notebooks 01 (strategy and memory) and 02 (data) exercises.

Expected answers come from `ftcourse.strategy`, `ftcourse.memory`, `ftcourse.data` and the committed
data (the `polite` training set, the dirty copy and its manifest of planted problems).
"""

from __future__ import annotations

from ftcourse.checks import exercise

# ---------------------------------------------------------------- 01 strategy and memory

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
)


@exercise(
    "01.1",
    "easy",
    "a help-desk assistant must quote this week's price list and always reply in the company's "
    "three-line format; you have 1,200 example replies and a 24 GB GPU. Set `answer` to the "
    "Recommendation `recommend(...)` gives for these facts.",
)
def _01_1(answer):
    from ftcourse.strategy import Recommendation, recommend

    expected = recommend(
        needs_fresh_facts=True, needs_consistent_format=True, examples=1200, gpu_gb=24
    )
    if not isinstance(answer, Recommendation):
        return f"Set `answer` to what `recommend(...)` returns, not a {type(answer).__name__}."
    if "RAG" not in answer.approach:
        return (
            "A price list that changes every week is a fact that goes stale: that is retrieval's "
            "(RAG's) job, needs_fresh_facts=True."
        )
    if "fine-tuning" not in answer.approach:
        return (
            "A fixed reply format is behaviour, fine-tuning's job (needs_consistent_format=True), "
            "and 1,200 examples are enough to teach it (examples=1200)."
        )
    if (answer.method, answer.model) != (expected.method, expected.model):
        return (
            f"{answer.method} on {answer.model} is the plan for another GPU: "
            "the hardware check reads gpu_gb (24 here)."
        )
    if answer.approach != expected.approach:
        return f"The approach is {answer.approach!r}: read the reasons it gives."


@exercise(
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
        return "The two are swapped: checkpointing *saves* memory, so it allows the larger batch."
    for got, ckpt in ((answer, True), (without, False)):
        if got == largest(gradient_checkpointing=ckpt):
            continue
        slips = {
            "at 512 tokens, the estimate's default: pass seq_len=2048": dict(seq_len=512),
            "at 1,024 tokens: pass seq_len=2048": dict(seq_len=1024),
            "for LoRA: pass method='qlora'": dict(method="lora"),
            "on a 24 GB GPU: the T4 is memory.GPUS's 'T4 (15 GB)'": dict(gpu="24 GB"),
        }
        for slip, kw in slips.items():
            if got == largest(gradient_checkpointing=ckpt, **kw):
                return f"{got} is the batch {slip}."
        which = "with" if ckpt else "without"
        return (
            f"{got} is not the largest batch {which} gradient checkpointing. Ask "
            "`memory.largest_batch` for Llama-3.1-8B on 'T4 (15 GB)' with method, seq_len and "
            "gradient_checkpointing set (0 means not even one sequence fits)."
        )


@exercise(
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
            return f"{case} Return a tuple of three: (method, batch_size, accumulation)."
        if expected is None:
            return f"{case} Not even one sequence fits with QLoRA: return None."
        if got is None:
            return f"{case} One sequence does fit: is gradient checkpointing on?"
        if got[0] != method:
            why = (
                "LoRA fits: prefer it (no quantization error, faster steps)."
                if method == "lora"
                else "Not even one sequence fits with LoRA: fall back to QLoRA."
            )
            return f"{case} {why}"
        if got[1] & (got[1] - 1) or got[1] > EFFECTIVE_BATCH:
            return (
                f"{case} Round the largest batch that fits ({largest[method]}, with "
                f"max_batch={EFFECTIVE_BATCH}) down to a power of two."
            )
        if got[1] * got[2] != EFFECTIVE_BATCH:
            return f"{case} batch_size x accumulation must make {EFFECTIVE_BATCH}."
        return f"{case} Use `memory.largest_batch(..., gradient_checkpointing=True)`."


# ---------------------------------------------------------------- 02 data

NEAR_THRESHOLD = 0.6
MIN_SHOUT_LETTERS = 10  # "OK." is short, not shouting (the length check catches it)


def _polite_train() -> list:
    """The clean `polite` training set (what notebook 02's checklist leaves of the dirty copy)."""
    from ftcourse.data import load_records
    from ftcourse.paths import DATA_DIR

    return load_records(DATA_DIR / "polite" / "train.jsonl")


@exercise(
    "02.1",
    "easy",
    "set `answer` to a ShareGPT record with a system prompt and two questions, each with its answer.",
)
def _02_1(answer):
    from ftcourse.data import record_format, validate
    from ftcourse.errors import CourseError

    fmt = record_format(answer)
    if fmt != "sharegpt":
        what = f"a {fmt} record" if fmt else f"a {type(answer).__name__}"
        return (
            f"That is {what}. ShareGPT is "
            '{"conversations": [{"from": "system", "value": ...}, {"from": "human", ...}, ...]}.'
        )
    try:
        validate([answer], source="answer")
    except CourseError as err:
        return f"`validate([answer])` says: {err}"
    roles = [turn["from"] for turn in answer["conversations"]]
    if roles[0] != "system":
        return f"The roles are {roles}: the system prompt comes first, as a 'system' turn."
    if roles.count("gpt") != 2:
        return f"The roles are {roles}: two questions need two 'human' and two 'gpt' turns."


@exercise(
    "02.2",
    "medium",
    f"set `answer` to the number of records of the clean `polite` set that `drop_near_duplicates` "
    f"removes at threshold {NEAR_THRESHOLD} (instead of the default 0.8).",
)
def _02_2(answer):
    from ftcourse.data import drop_near_duplicates

    records = _polite_train()
    kept, removed = drop_near_duplicates(records, threshold=NEAR_THRESHOLD)
    if answer == len(removed):
        return None
    if answer == len(kept):
        return f"{answer} records are kept; count the removed ones (the report)."
    if answer == len(drop_near_duplicates(records)[1]):
        return (
            f"{answer} is the count at the default threshold 0.8: pass threshold={NEAR_THRESHOLD}."
        )
    return (
        f"Not {answer}: run `drop_near_duplicates(clean, threshold={NEAR_THRESHOLD})` and count "
        "the records in its report (the second element)."
    )


@exercise(
    "02.3",
    "hard",
    "write a check `answer(records)` in the checklist's style, returning (kept records, list of "
    "Removed(index, 'drop_shouting', reason)) for answers with at least "
    f"{MIN_SHOUT_LETTERS} letters of which more than half are capitals.",
)
def _02_3(answer):
    import json

    from ftcourse.data import Removed, drop_empty, drop_invalid, load_records, run_checklist
    from ftcourse.paths import DATA_DIR

    def alpaca(output):
        return {"instruction": "Make this request polite.", "input": "Call me.", "output": output}

    cases = [  # (answer text, shouting?)
        ("Could you please call me?", False),
        ("COULD YOU PLEASE CALL ME?!!", True),
        ("COULD you please call me?", False),
        ("COULD YOU PLEASE call me soon?", True),
        ("ABCDEFGHIJklmnopqrst", False),  # exactly half: not more than half
        ("OK.", False),  # too short to shout
        ("Could you call the NASA HQ?", False),
    ]
    records = [alpaca(text) for text, _ in cases]
    result = answer(list(records))
    if not (isinstance(result, tuple) and len(result) == 2):
        return "Return a pair like every check: (kept records, list of Removed)."
    kept, removed = result
    if not all(isinstance(r, Removed) for r in removed):
        return "Report each removed record as `Removed(index, 'drop_shouting', reason)`."
    if any(r.check != "drop_shouting" or not r.reason for r in removed):
        return "Each Removed needs check='drop_shouting' and a reason saying what was wrong."
    got = {r.index for r in removed}
    for i, (text, shouting) in enumerate(cases):
        if (i in got) != shouting:
            verdict = "removed" if i in got else "kept"
            letters = [c for c in text if c.isalpha()]
            caps = sum(c.isupper() for c in letters)
            return (
                f"You {verdict} {text!r} ({caps} of {len(letters)} letters are capitals). Remove "
                f"an answer when it has at least {MIN_SHOUT_LETTERS} letters and capitals are "
                "more than half of them; index is the record's position in `records`."
            )
    if kept != [r for i, r in enumerate(records) if i not in got]:
        return "Return the records you did not remove, in their order, as the first element."

    dirty = load_records(DATA_DIR / "dirty" / "polite_dirty.jsonl")
    manifest = json.loads((DATA_DIR / "dirty" / "manifest.json").read_text())
    shouted = {p["index"] for p in manifest["planted"] if "shout" in p["problem"]}
    _, report = run_checklist(dirty, [drop_empty, drop_invalid, answer])
    found = {r.index for r in report if r.check == "drop_shouting"}
    if found != shouted:
        return (
            f"On the dirty set you removed records {sorted(found)}; the manifest's shouted ones "
            f"are {sorted(shouted)}. Read the answer with `to_messages(record)[-1]['content']`."
        )
