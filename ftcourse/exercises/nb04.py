"""Notebook 04's exercises (QLoRA training): the effective batch, the LoRA paper's config, the loss."""

from __future__ import annotations

from ftcourse.exercises.core import CORRECT, checker, wrong


@checker(
    "04.1",
    "easy",
    "the article trains with per_device_train_batch_size=4 and gradient_accumulation_steps=4. "
    "Set `answer` to the effective batch size when the same config runs on 2 GPUs with DDP.",
)
def _04_1(answer):
    if answer != 4 * 4 * 2:
        return wrong(
            "Each optimizer step sees batch x accumulation examples per process, on every process."
        )
    return CORRECT


@checker(
    "04.2",
    "medium",
    "make `answer` a LoraConfig for the LoRA paper's choice: only q_proj and v_proj, r=8, alpha=16; "
    "then set `trainable` to the number of parameters it trains on the course's base model.",
)
def _04_2(answer, trainable):
    from transformers import AutoConfig

    from ftcourse.lora import count_parameters
    from ftcourse.paths import BASE_MODEL_DIR

    targets = answer.target_modules
    targets = {targets} if isinstance(targets, str) else set(targets or ())
    if targets != {"q_proj", "v_proj"}:
        return wrong(
            f"target_modules is {answer.target_modules!r}: the LoRA paper adapted q and v only, "
            'target_modules=["q_proj", "v_proj"].'
        )
    if (answer.r, answer.lora_alpha) != (8, 16):
        return wrong(f"r={answer.r}, lora_alpha={answer.lora_alpha}: expected 8 and 16.")
    expected = count_parameters(AutoConfig.from_pretrained(BASE_MODEL_DIR), ["q_proj", "v_proj"], 8)
    if trainable != expected["trainable"]:
        return wrong(
            f"{trainable:,} is not it. Per layer each target adds r x (d_in + d_out); with grouped-query "
            "attention v_proj's output is smaller than q_proj's. `print_trainable_parameters()` tells."
        )
    return CORRECT


@checker(
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
        if expected is None and got is not None:
            return wrong(
                f"for {history} you returned {got!r}: when the loss never halves, return None "
                "(not -1 or 0), as the task says."
            )
        if got != expected:
            return wrong(
                f"for {history} you returned {got}, expected {expected}. Entries without 'loss' "
                "(eval logs, the final summary) must be skipped."
            )
    return CORRECT


EXERCISES = [_04_1, _04_2, _04_3]
