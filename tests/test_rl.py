"""The GRPO reward (the sandbox's verdict), its config, and the renamed prompts it is given."""

import random
import time
import warnings

import pytest

from ftcourse.rl import (
    answer_text,
    bugfix_reward,
    grpo_config,
    grpo_prompts,
    score_answer,
    score_answers,
)

ADD = "def add(a, b):\n    return a + b"
TESTS = ["assert add(1, 2) == 3", "assert add(0, 0) == 0", "assert add(2, 2) == 4"]
TIMES = "def add(a, b):\n    return a * b"  # passes add(0, 0) and add(2, 2) only


def chat(text: str) -> list[dict]:
    """A completion as trl passes a conversational one."""
    return [{"role": "assistant", "content": text}]


def test_reward_as_trl_calls_it_right_and_wrong_answers():
    completions = [chat(f"```python\n{ADD}\n```"), chat(ADD.replace("+", "-")), chat(ADD)]
    rewards = bugfix_reward(
        prompts=[[{"role": "user", "content": "Fix it."}]] * 3,
        completions=completions,
        completion_ids=[[1, 2]] * 3,
        tests=[TESTS] * 3,
        entry_point=["add"] * 3,
        trainer_state=None,
        log_extra=lambda *a: None,
        log_metric=lambda *a: None,
    )
    assert rewards == [1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    "answer",
    [
        "I would change the plus sign.",  # no code at all
        "def add(a, b)\n    return a + b",  # syntax error
        "```python\n```",  # an empty block
    ],
)
def test_malformed_answers_score_zero(answer):
    assert score_answer(answer, TESTS) == 0.0


def test_an_answer_that_loops_times_out_and_scores_zero():
    loop = ADD + "\nwhile True:\n    pass"
    start = time.perf_counter()
    assert score_answer(loop, TESTS, timeout=1.0) == 0.0
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize(
    "escape",
    [
        # a forged report: the parent compares values with the literals, which the child never sees
        'import sys\nprint(\'RESULT-0:\' + \'{"values": ["3", "0", "4"]}\')\nsys.exit(0)',
        "import os\nos._exit(0)",  # exits before the tests run
        "def add(a, b):\n    return __import__('os').system('true') or a + b",  # a process
    ],
)
def test_an_answer_that_tries_to_escape_scores_zero(escape):
    assert score_answer(escape, TESTS) == 0.0


def test_partial_credit_is_the_share_of_tests_passed():
    assert score_answer(TIMES, TESTS) == 0.0
    assert score_answer(TIMES, TESTS, partial=True) == pytest.approx(2 / 3)


def test_parallel_and_serial_give_the_same_scores():
    answers = [ADD, TIMES, "nothing", ADD.replace("+", "-"), ADD] * 2
    tests = [TESTS] * len(answers)
    serial = score_answers(answers, tests, workers=1, partial=True)
    assert serial == score_answers(answers, tests, workers=4, partial=True)
    assert serial[:5] == [1.0, pytest.approx(2 / 3), 0.0, pytest.approx(1 / 3), 1.0]


def test_answer_text_reads_both_completion_forms():
    assert answer_text(ADD) == ADD
    assert answer_text(chat(ADD)) == ADD


@pytest.mark.parametrize(
    "name, bf16, fp16", [("cpu-tiny", False, False), ("gpu-24gb", True, False)]
)
def test_grpo_config_sets_the_profiles_precision_not_trls_bf16_default(tmp_path, name, bf16, fp16):
    from ftcourse.profiles import get_profile

    profile = get_profile(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no keyword transformers has deprecated
        args = grpo_config(profile, tmp_path, beta=0.04)
    assert (args.bf16, args.fp16, args.beta) == (bf16, fp16, 0.04)
    assert args.activation_checkpointing == profile.gradient_checkpointing
    assert args.max_completion_length == 96 and args.save_strategy == "no"
    assert args.per_device_train_batch_size % args.num_generations == 0


def test_prompts_are_renamed_consistently_and_their_references_pass():
    from ftcourse.sandbox import run_tests
    from ftcourse.tasks import training_splits

    records = list(training_splits("bugfix")[0])[:4]
    rows = grpo_prompts(records, copies=2, seed=0)
    assert len(rows) == 8
    for row, record in zip(rows, records * 2):
        text = row["prompt"][-1]["content"]
        assert [t["role"] for t in row["prompt"]] == ["user"]
        assert f"def {row['entry_point']}(" in text
        assert record["entry_point"] not in text
        assert all(row["entry_point"] in t and record["entry_point"] not in t for t in row["tests"])
    assert rows[0]["entry_point"] != rows[4]["entry_point"]  # each copy is renamed afresh
    picked = random.Random(0).sample(rows, 3)
    assert all(run_tests(r["reference"], r["tests"]).passed for r in picked)


def test_grpo_trainer_keeps_the_adapter_in_fp32_and_takes_a_step(tmp_path):
    import torch
    from peft import get_peft_model

    from ftcourse.adapters import inference_base
    from ftcourse.profiles import get_profile
    from ftcourse.rl import grpo_trainer
    from ftcourse.tasks import training_splits
    from ftcourse.trainer import lora_config

    profile = get_profile("cpu-tiny")
    base, _ = inference_base(profile)
    get_peft_model(base, lora_config(profile)).save_pretrained(tmp_path / "adapter")
    rows = grpo_prompts(list(training_splits("bugfix")[0])[:2])
    trainer = grpo_trainer(
        profile,
        tmp_path / "adapter",
        rows,
        tmp_path / "out",
        max_steps=1,
        num_iterations=1,
        num_generations=2,
        per_device_train_batch_size=4,
        max_completion_length=8,
    )
    trained = [p for p in trainer.model.parameters() if p.requires_grad]
    assert trained and {p.dtype for p in trained} == {torch.float32}  # trl's bf16 cast undone
    trainer.train()
    logged = [h for h in trainer.state.log_history if "reward" in h]
    assert trainer.reward_func_names == ["bugfix_reward"] and len(logged) == 1
    assert logged[0]["reward"] == 0.0  # 8 tokens cannot hold a whole fixed function


def test_the_benchmark_reads_its_grid(load_benchmark):
    bench = load_benchmark("grpo_bugfix")
    config = bench.parse("lr=2e-4 T=0.7 iters=1")
    assert (config["lr"], config["T"], config["iters"], config["G"]) == (2e-4, 0.7, 1, 8)
    assert bench.parse("") == bench.DEFAULTS
