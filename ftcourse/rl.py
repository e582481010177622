"""RL with a verifiable reward: GRPO on bugfix, the reward taken by running the answer's tests.

GRPO (trl's `GRPOTrainer`) samples several answers to each prompt, scores each with a reward
function, and pushes up the answers that scored above their group's mean. On bugfix the reward
is the course's own rule: the answered function runs against the record's unit tests in the
sandbox (`ftcourse.sandbox.run_tests`), a separate, locked-down child process, so the verdict is
taken outside the answer's process. The prompts are training functions under made-up names
(`ftcourse.augment.rename_record`): the held-out split's names were never seen in training, and
renamed copies are the training data that carries that gap. docs/benchmarks.md measures it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ftcourse.augment import rename_record
from ftcourse.evaluate import prompt_messages
from ftcourse.tasks import extract_code, get_task


def answer_text(completion: str | list[dict]) -> str:
    """The text of one completion: trl passes `[{"role": "assistant", "content": ...}]` for chats."""
    if isinstance(completion, str):
        return completion
    return "".join(turn["content"] for turn in completion if turn["role"] == "assistant")


def score_answer(
    answer: str, tests: list[str], partial: bool = False, timeout: float = 5.0
) -> float:
    """1.0 when the answer's code passes every test in the sandbox, else 0.0 (share passed if partial)."""
    from ftcourse.sandbox import run_tests

    result = run_tests(extract_code(answer), list(tests), timeout=timeout)
    if partial:
        return sum(result.results) / max(len(result.results), 1)
    return float(result.passed)


def score_answers(
    answers: list[str],
    tests: list[list[str]],
    workers: int = 2,
    partial: bool = False,
    timeout: float = 5.0,
) -> list[float]:
    """`score_answer` for each (answer, tests) pair; `workers` threads, each waiting on its own child."""
    jobs = list(zip(answers, tests, strict=True))
    if workers <= 1:
        return [score_answer(a, t, partial, timeout) for a, t in jobs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: score_answer(*job, partial, timeout), jobs))


def bugfix_reward(
    completions: list,
    tests: list[list[str]],
    workers: int = 2,
    partial: bool = False,
    timeout: float = 5.0,
    **kwargs,
) -> list[float]:
    """A trl `reward_funcs` entry: one float per completion, the sandbox's verdict on its tests.

    trl calls it as `bugfix_reward(prompts=..., completions=..., completion_ids=..., **columns)`,
    with every other dataset column (here `tests`, `entry_point`) repeated per completion, plus
    `trainer_state`, `log_extra` and `log_metric`, which this reward ignores. Set `workers`,
    `partial` or `timeout` with `functools.partial(bugfix_reward, workers=...)`.
    """
    answers = [answer_text(c) for c in completions]
    return score_answers(answers, tests, workers, partial, timeout)


def grpo_prompts(records, copies: int = 1, seed: int = 0) -> list[dict]:
    """Renamed copies of bugfix training records in trl's conversational prompt form.

    Each row: `prompt` (the user turn, no answer), `tests` (calling the renamed function),
    `entry_point` (its new name) and `reference` (the renamed fixed function).
    """
    rng = random.Random(seed)
    rows = []
    for _ in range(copies):
        for record in records:
            renamed = rename_record(dict(record), rng)
            rows.append(
                {
                    "prompt": prompt_messages(renamed["messages"]),
                    "tests": list(renamed["tests"]),
                    "entry_point": renamed["entry_point"],
                    "reference": renamed["output"],
                }
            )
    return rows


def grpo_config(profile, output_dir: str | Path, **overrides):
    """GRPOConfig for the profile and bugfix: its dtype flags explicit (trl defaults to bf16), no saving.

    The values that matter, with trl 1.16's defaults in brackets: `num_generations` 8 [8] answers
    per prompt, 4 prompts a step (`per_device_train_batch_size` 32, which counts answers [8]);
    `max_completion_length` 96 [512], the bugfix task's answer budget; `temperature` 0.5 [1.0]:
    at 1.0 the SFT adapter breaks most of its own fixes, so groups are all wrong; `beta` 0.0
    [0.0], no KL term and no reference adapter; `learning_rate` 1e-4 [1e-6], a LoRA rate;
    `num_iterations` 2 [1]: two updates per generated batch, as sampling is most of a step's
    time; `max_steps` 20 (10 batches generated); `loss_type` "dapo" and `scale_rewards` "group"
    [the same]; `logging_steps` 1 [10]. docs/benchmarks.md has the configurations measured.
    """
    from trl import GRPOConfig

    from ftcourse.trainer import run_settings

    values = dict(
        **run_settings(profile, output_dir),
        per_device_train_batch_size=32,
        gradient_accumulation_steps=1,
        num_generations=8,
        max_completion_length=get_task("bugfix").max_new_tokens,
        temperature=0.5,
        top_k=0,
        top_p=1.0,
        beta=0.0,
        learning_rate=1e-4,
        num_iterations=2,
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_steps=20,
        logging_steps=1,
        data_seed=0,
        chat_template_kwargs={"enable_thinking": False},  # Qwen3 answers at once, as in SFT
    )
    return GRPOConfig(**{**values, **overrides})


def grpo_trainer(
    profile,
    adapter: str | Path,
    rows: list[dict],
    output_dir: str | Path,
    reward: Callable = bugfix_reward,
    **settings,
):
    """trl's GRPOTrainer on the saved SFT adapter at `adapter`, untrained; `settings` go to GRPOConfig.

    The adapter loads trainable on the profile's base (`ftcourse.adapters.inference_base`); the
    reward is `reward` (`bugfix_reward`, or a `functools.partial` of it). trl stores a 4-bit
    base's adapter in bf16 (cpu-tiny's dequantized base still reports `is_loaded_in_4bit`);
    `match_adapter_dtype` puts it back in the profile's dtype.
    """
    from datasets import Dataset
    from peft import PeftModel
    from trl import GRPOTrainer

    from ftcourse.adapters import inference_base
    from ftcourse.trainer import match_adapter_dtype

    base, tokenizer = inference_base(profile)
    model = PeftModel.from_pretrained(base, str(adapter), is_trainable=True)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=grpo_config(profile, output_dir, **settings),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    match_adapter_dtype(trainer.model, profile)
    return trainer
