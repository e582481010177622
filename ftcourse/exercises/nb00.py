"""Notebook 00's exercises (setup): the profile a T4 gets, the embedding's size, a derived profile."""

from __future__ import annotations

from ftcourse.exercises.core import CORRECT, checker, wrong


@checker(
    "00.1", "easy", "set `answer` to the profile name a free Colab T4 (15.8 GB, no bf16) gets."
)
def _00_1(answer):
    from ftcourse.profiles import Hardware, auto_profile

    t4 = Hardware(cuda=True, gpu_name="Tesla T4", gpu_memory_gb=15.8, bf16=False, cpu_count=2)
    if answer == auto_profile(t4):
        return wrong("That is the right profile, as an object: set `answer` to its `.name`.")
    if answer != auto_profile(t4).name:
        return wrong(
            "Look at the profile table: which profiles need bf16, and how much GPU memory each needs."
        )
    return CORRECT


@checker(
    "00.2",
    "medium",
    "set `answer` to the number of parameters in the base model's embedding matrix.",
)
def _00_2(answer):
    from transformers import AutoConfig

    from ftcourse.ownmodel import notebook_profile

    config = AutoConfig.from_pretrained(notebook_profile().model_path)  # the notebook's `model`
    if answer != config.vocab_size * config.hidden_size:
        return wrong(
            "The embedding is a vocab_size x hidden_size matrix: `model.get_input_embeddings().weight`."
        )
    return CORRECT


@checker(
    "00.3",
    "hard",
    "make `answer` a copy of the cpu-tiny profile with 10 training steps and batch size 4 "
    "(profiles are frozen dataclasses: don't mutate, derive).",
)
def _00_3(answer):
    from ftcourse.profiles import PROFILES, Profile

    base = PROFILES["cpu-tiny"]
    if not isinstance(answer, Profile):
        return wrong(
            f"That is a {type(answer).__name__}: derive a Profile from "
            "`PROFILES['cpu-tiny']` with `with_overrides(...)`."
        )
    if answer is base:
        return wrong("That is the profile itself; use `with_overrides(...)` to derive a copy.")
    if (answer.max_steps, answer.batch_size) != (10, 4):
        return wrong(
            f"max_steps={answer.max_steps}, batch_size={answer.batch_size}: expected 10 and 4."
        )
    if answer.with_overrides(max_steps=base.max_steps, batch_size=base.batch_size) != base:
        return wrong("Only max_steps and batch_size should differ from cpu-tiny.")
    return CORRECT


EXERCISES = [_00_1, _00_2, _00_3]
