"""The checkers behind every notebook's exercises, registered by id ("NN.k": notebook, number).

Expected answers are computed from the course's own code and data, never typed in.
"""

from __future__ import annotations

from ftcourse.checks import exercise

# ---------------------------------------------------------------- 00 setup


@exercise(
    "00.1", "easy", "set `answer` to the profile name a free Colab T4 (15.8 GB, no bf16) gets."
)
def _00_1(answer):
    from ftcourse.profiles import Hardware, auto_profile

    t4 = Hardware(cuda=True, gpu_name="Tesla T4", gpu_memory_gb=15.8, bf16=False, cpu_count=2)
    if answer != auto_profile(t4).name:
        return "Look at the profile table: which profiles need bf16, and how much GPU memory each needs."


@exercise(
    "00.2",
    "medium",
    "set `answer` to the number of parameters in the base model's embedding matrix.",
)
def _00_2(answer):
    from transformers import AutoConfig

    from ftcourse.paths import BASE_MODEL_DIR

    config = AutoConfig.from_pretrained(BASE_MODEL_DIR)
    if answer != config.vocab_size * config.hidden_size:
        return "The embedding is a vocab_size x hidden_size matrix: `model.get_input_embeddings().weight`."


@exercise(
    "00.3",
    "hard",
    "make `answer` a copy of the cpu-tiny profile with 10 training steps and batch size 4 "
    "(profiles are frozen dataclasses: don't mutate, derive).",
)
def _00_3(answer):
    from ftcourse.profiles import PROFILES

    base = PROFILES["cpu-tiny"]
    if answer is base:
        return "That is the profile itself; use `with_overrides(...)` to derive a copy."
    if (answer.max_steps, answer.batch_size) != (10, 4):
        return f"max_steps={answer.max_steps}, batch_size={answer.batch_size}: expected 10 and 4."
    if answer.with_overrides(max_steps=base.max_steps, batch_size=base.batch_size) != base:
        return "Only max_steps and batch_size should differ from cpu-tiny."


# ---------------------------------------------------------------- 04 QLoRA training


@exercise(
    "04.1",
    "easy",
    "the article trains with per_device_train_batch_size=4 and gradient_accumulation_steps=4. "
    "Set `answer` to the effective batch size when the same config runs on 2 GPUs with DDP.",
)
def _04_1(answer):
    if answer != 4 * 4 * 2:
        return (
            "Each optimizer step sees batch x accumulation examples per process, on every process."
        )


@exercise(
    "04.2",
    "medium",
    "make `answer` a LoraConfig for the LoRA paper's choice: only q_proj and v_proj, r=8, alpha=16; "
    "then set `trainable` to the number of parameters it trains on the course's base model.",
)
def _04_2(answer, trainable):
    from transformers import AutoConfig

    from ftcourse.lora import count_parameters
    from ftcourse.paths import BASE_MODEL_DIR

    if set(answer.target_modules) != {"q_proj", "v_proj"}:
        return f"target_modules is {sorted(answer.target_modules)}: the LoRA paper adapted q and v only."
    if (answer.r, answer.lora_alpha) != (8, 16):
        return f"r={answer.r}, lora_alpha={answer.lora_alpha}: expected 8 and 16."
    expected = count_parameters(AutoConfig.from_pretrained(BASE_MODEL_DIR), ["q_proj", "v_proj"], 8)
    if trainable != expected["trainable"]:
        return (
            f"{trainable:,} is not it. Per layer each target adds r x (d_in + d_out); with grouped-query "
            "attention v_proj's output is smaller than q_proj's. `print_trainable_parameters()` tells."
        )


@exercise(
    "04.3",
    "hard",
    "write `answer(history)` returning the first optimizer step at which the logged training loss is "
    "below half of the first logged loss (None if never), from a `trainer.state.log_history` list.",
)
def _04_3(answer):
    cases = [
        ([{"step": 10, "loss": 4.0}, {"step": 20, "loss": 2.5}, {"step": 30, "loss": 1.9}], 30),
        ([{"step": 5, "loss": 3.0}, {"step": 5, "eval_loss": 1.0}, {"step": 10, "loss": 1.2}], 10),
        ([{"step": 10, "loss": 2.0}, {"step": 20, "loss": 1.5}], None),
        ([{"train_runtime": 1.0}, {"step": 1, "loss": 8.0}, {"step": 2, "loss": 3.99}], 2),
    ]
    for history, expected in cases:
        got = answer(history)
        if got != expected:
            return (
                f"for {history} you returned {got}, expected {expected}. Entries without 'loss' "
                "(eval logs, the final summary) must be skipped."
            )
