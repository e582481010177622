"""Notebook 04's exercises (QLoRA training): the effective batch, the LoRA paper's config, a rate fixed."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

from ftcourse.exercises.core import CORRECT, checker, wrong
from ftcourse.profiles import Profile, get_profile


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


# 04.3's recipe: the course's own model (any machine, about half a minute on 2 cores), polite, 100
# QLoRA steps, at a learning rate 100 times below the one cpu-tiny trains polite with (5e-4)
HANDED_OVER = (
    get_profile("cpu-tiny").for_task("polite").with_overrides(max_steps=100, learning_rate=5e-6)
)
# Measured on cpu-tiny, 100 steps, the validation loss at the last evaluation: 3.05 as handed over
# (3.07 at step 25), 0.62 at 5e-4. The bar sits between, with room for another machine's kernels.
VAL_LOSS_BAR = 1.0


def train_recipe(recipe: Profile, output: str | Path, chat_template: str | None = None):
    """Train a polite QLoRA adapter with `recipe`'s settings; (model, tokenizer, log history)."""
    from peft import get_peft_model
    from transformers import set_seed

    from ftcourse.tasks import training_splits
    from ftcourse.trainer import (
        load_model,
        lora_config,
        match_adapter_dtype,
        sft_config,
        sft_trainer_class,
    )

    model, tokenizer = load_model(recipe, "qlora")
    if chat_template is not None:  # 04b.2: a template to train with, in place of the model's own
        tokenizer.chat_template = chat_template
    set_seed(0)  # the adapter's random init: the same recipe trains the same run
    model = get_peft_model(model, lora_config(recipe))
    train, validation = training_splits("polite")  # the committed split, cut 90/10
    trainer = sft_trainer_class()(
        model=model,
        args=sft_config(recipe, output),
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
    )
    match_adapter_dtype(trainer.model, recipe)
    trainer.train()
    return model, tokenizer, trainer.state.log_history


@checker(
    "04.3",
    "hard",
    "`HANDED_OVER` trains polite for 100 steps, and its validation loss barely moves. Set `answer` "
    "to `HANDED_OVER.with_overrides(...)` with one setting changed, so that the validation loss "
    f"ends below {VAL_LOSS_BAR} in the same 100 steps; `train_recipe` trains it.",
)
def _04_3(answer, history):
    if not isinstance(answer, Profile):
        return wrong("`answer` must be a profile: `HANDED_OVER.with_overrides(setting=value)`.")
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    if not evals:
        return wrong(
            "`history` holds no validation loss: pass the log history `train_recipe(answer, ...)` "
            "returned (its third value)."
        )
    rates = [h["learning_rate"] for h in history if "learning_rate" in h]
    if not rates or not math.isclose(max(rates), answer.learning_rate, rel_tol=0.05):
        return wrong(
            "`history` is not a run of `answer`: the learning rate it logged does not reach "
            f"{answer.learning_rate:g}. Train `answer` and pass the history of that run."
        )
    changed = [
        f.name for f in fields(Profile) if getattr(answer, f.name) != getattr(HANDED_OVER, f.name)
    ]
    final, rate = evals[-1], answer.learning_rate
    ratio = rate / HANDED_OVER.learning_rate
    if len(changed) > 1:
        return wrong(
            f"you changed {', '.join(changed)}: change one setting, so that the run shows which one "
            "mattered."
        )
    if changed in (["max_steps"], ["num_train_epochs"]):
        return wrong(
            f"{changed[0]} changed, and the budget with it: keep the 100 steps. At this rate more "
            "steps only creep; which setting decides how far each step moves the adapter?"
        )
    if final < VAL_LOSS_BAR:
        return CORRECT
    if not changed:
        return wrong(
            f"as handed over, the validation loss ended at {final:.2f}, above the bar of "
            f"{VAL_LOSS_BAR}: that is the failure. Now change one setting and train again."
        )
    if changed != ["learning_rate"]:
        return wrong(
            f"{changed[0]} changed, and the validation loss ended at {final:.2f} (the bar is "
            f"{VAL_LOSS_BAR}). Compare the handed-over learning rate with the profile's."
        )
    if ratio <= 1:
        return wrong(
            f"a rate of {rate:g} is no higher than the handed-over {HANDED_OVER.learning_rate:g}."
        )
    if ratio > 1000:
        return wrong(
            f"a rate of {rate:g} ({ratio:g} times the handed-over one) overshoots: the validation "
            f"loss ended at {final:.2f}. Try a rate between."
        )
    return wrong(
        f"{rate:g} helped, not enough: the validation loss ended at {final:.2f}, the bar is "
        f"{VAL_LOSS_BAR}. The handed-over rate is 100 times below the profile's."
    )


EXERCISES = [_04_1, _04_2, _04_3]
