"""Notebooks 01 and 02 exercises: each checker accepts the reference answer and hints on a wrong one."""

from ftcourse import memory
from ftcourse.data import load_records, to_messages
from ftcourse.decision import recommend
from ftcourse.exercises import check
from ftcourse.exercises.nb01 import EFFECTIVE_BATCH
from ftcourse.exercises.nb02 import MIN_SHOUT_LETTERS, NEAR_THRESHOLD
from ftcourse.paths import DATA_DIR
from ftcourse.quality import Removed, drop_near_duplicates


def _wrong(fb, *words):
    assert fb.status == "wrong" and not fb, fb
    for word in words:
        assert word in fb.message, fb.message


# ---------------------------------------------------------------- 01


def test_01_1_recommendation():
    assert check(
        "01.1",
        recommend(needs_fresh_facts=True, needs_consistent_format=True, examples=1200, gpu_gb=24),
    )
    _wrong(check("01.1", recommend(needs_consistent_format=True, examples=1200, gpu_gb=24)), "RAG")
    _wrong(check("01.1", recommend(needs_fresh_facts=True, examples=1200, gpu_gb=24)), "format")
    plan_for_a_t4 = recommend(
        needs_fresh_facts=True, needs_consistent_format=True, examples=1200, gpu_gb=15
    )
    _wrong(check("01.1", plan_for_a_t4), "gpu_gb")
    _wrong(check("01.1", "RAG + fine-tuning"), "recommend")


def test_01_2_largest_batch():
    assert check("01.2", 2, 0)
    _wrong(check("01.2", 0, 2), "swapped")
    at_1024 = memory.largest_batch(
        "llama-3.1-8b", "T4 (15 GB)", method="qlora", seq_len=1024, gradient_checkpointing=True
    )
    assert at_1024 != 2
    _wrong(check("01.2", at_1024, 0), "seq_len=2048")
    _wrong(check("01.2", 2, 99), "without gradient checkpointing")


def _plan(model, gpu_gb, seq_len):
    for method in ("lora", "qlora"):
        largest = memory.largest_batch(
            model,
            gpu_gb,
            max_batch=EFFECTIVE_BATCH,
            method=method,
            seq_len=seq_len,
            gradient_checkpointing=True,
        )
        if largest:
            batch = 1
            while batch * 2 <= largest:
                batch *= 2
            return method, batch, EFFECTIVE_BATCH // batch
    return None


def test_01_3_training_plan():
    assert check("01.3", _plan)

    def qlora_always(model, gpu_gb, seq_len):
        plan = _plan(model, gpu_gb, seq_len)
        if plan is None:
            return None
        largest = memory.largest_batch(
            model,
            gpu_gb,
            max_batch=16,
            method="qlora",
            seq_len=seq_len,
            gradient_checkpointing=True,
        )
        batch = 2 ** (largest.bit_length() - 1)
        return "qlora", batch, 16 // batch

    _wrong(check("01.3", qlora_always), "LoRA fits")

    def not_rounded(model, gpu_gb, seq_len):
        plan = _plan(model, gpu_gb, seq_len)
        if plan is None:
            return None
        largest = memory.largest_batch(
            model,
            gpu_gb,
            max_batch=16,
            method=plan[0],
            seq_len=seq_len,
            gradient_checkpointing=True,
        )
        return plan[0], largest, 16 // largest

    _wrong(check("01.3", not_rounded), "power of two")

    def without_checkpointing(model, gpu_gb, seq_len):
        for method in ("lora", "qlora"):
            if memory.estimate(model, method, seq_len=seq_len).fits(gpu_gb):
                return _plan(model, gpu_gb, seq_len)
        return None

    _wrong(check("01.3", without_checkpointing), "checkpointing")


# ---------------------------------------------------------------- 02


def test_02_1_sharegpt_record():
    record = {
        "conversations": [
            {"from": "system", "value": "You answer questions about Python briefly."},
            {"from": "human", "value": "What is a set?"},
            {"from": "gpt", "value": "An unordered collection of unique items."},
            {"from": "human", "value": "And a frozenset?"},
            {"from": "gpt", "value": "A set that cannot change after it is made."},
        ]
    }
    assert check("02.1", record)
    _wrong(check("02.1", {"messages": to_messages(record)}), "messages record", "conversations")
    no_system = {"conversations": record["conversations"][1:]}
    _wrong(check("02.1", no_system), "system")
    one_question = {"conversations": record["conversations"][:3]}
    _wrong(check("02.1", one_question), "two questions")
    assistant_role = {
        "conversations": [
            {**t, "from": "assistant"} if t["from"] == "gpt" else t for t in record["conversations"]
        ]
    }
    _wrong(check("02.1", assistant_role), "validate", "'assistant'")


def test_02_2_near_duplicates_at_a_lower_threshold():
    clean = load_records(DATA_DIR / "polite" / "train.jsonl")
    kept, removed = drop_near_duplicates(clean, threshold=NEAR_THRESHOLD)
    assert check("02.2", len(removed))
    _wrong(check("02.2", len(kept)), "kept")
    _wrong(check("02.2", 0), "0.8")
    _wrong(check("02.2", len(removed) + 1), "drop_near_duplicates")


def _shouting(answer: str, half: bool = False, short: bool = False) -> bool:
    letters = [c for c in answer if c.isalpha()]
    caps = sum(c.isupper() for c in letters)
    enough = short or len(letters) >= MIN_SHOUT_LETTERS
    return enough and (caps >= len(letters) / 2 if half else caps > len(letters) / 2)


def _check_of(rule):
    def drop_shouting(records):
        report = [
            Removed(i, "drop_shouting", "mostly capitals")
            for i, record in enumerate(records)
            if rule(to_messages(record)[-1]["content"])
        ]
        gone = {r.index for r in report}
        return [r for i, r in enumerate(records) if i not in gone], report

    return drop_shouting


def test_02_3_drop_shouting():
    assert check("02.3", _check_of(_shouting))
    _wrong(check("02.3", _check_of(lambda a: _shouting(a, half=True))), "more than half")
    _wrong(check("02.3", _check_of(lambda a: _shouting(a, short=True))), "'OK.'")
    reference = _check_of(_shouting)
    _wrong(check("02.3", lambda records: (records, reference(records)[1])), "did not remove")
    _wrong(check("02.3", lambda records: reference(records)[1]), "pair")
    _wrong(check("02.3", lambda records: ([], [])), "You kept")
