"""Notebook 04b's exercises (debugging a fine-tune): the kept checkpoint, the EOS, early stopping."""

from __future__ import annotations

from ftcourse.exercises.core import CORRECT, checker, wrong
from ftcourse.profiles import get_profile

# A validation loss per epoch, as a run might log it: it falls, bottoms out, then rises.
EPOCH_LOSSES = [1.92, 1.41, 1.28, 1.31, 1.44]


@checker(
    "04b.1",
    "easy",
    f"the validation losses of five epochs were {EPOCH_LOSSES}. Set `answer` to the epoch (1-5) "
    "whose checkpoint `load_best_model_at_end=True` with metric_for_best_model='eval_loss' keeps.",
)
def _04b_1(answer):
    if answer == len(EPOCH_LOSSES):
        return wrong("That is the last epoch: the best checkpoint is the lowest validation loss.")
    if answer == EPOCH_LOSSES.index(min(EPOCH_LOSSES)):
        return wrong("Epochs count from 1 here: the first epoch's loss is EPOCH_LOSSES[0].")
    if answer != EPOCH_LOSSES.index(min(EPOCH_LOSSES)) + 1:
        return wrong("Look for the lowest validation loss, not the lowest training loss.")
    return CORRECT


# The course model's chat template (data/base-model/chat_template.jinja) puts each answer and its
# EOS inside {% generation %}; this copy closes the block before the EOS, which then carries no loss
_OWN_ANSWER = "{%- generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
_EOS_OUTSIDE = "{%- generation %}{{ message['content'] }}{% endgeneration %}{{ eos_token }}"


# 04b.2's recipe: polite on the course's own model, 100 QLoRA steps at cpu-tiny's polite rate
RECIPE = get_profile("cpu-tiny").for_task("polite").with_overrides(max_steps=100)
# one conversation to read a template's loss mask from
_SAMPLE = [
    {"role": "user", "content": "send me the report"},
    {"role": "assistant", "content": "Could you please send me the report?"},
]
# Measured on cpu-tiny (RECIPE, 30 held-out requests): the base model gives EOS 0.74 after an
# answer; 100 steps with the EOS outside the loss 0.21, with the course's template 0.90. The failure
# shows as a fall below the base, the fix as a rise above it.
EOS_BEFORE_MAX, EOS_AFTER_MIN = 0.5, 0.8


def eos_outside_template() -> str:
    """The course model's chat template with the EOS moved out of the answer's loss (04b.2)."""
    from ftcourse.paths import BASE_MODEL_DIR

    own = (BASE_MODEL_DIR / "chat_template.jinja").read_text()
    assert _OWN_ANSWER in own, "the course model's template changed: update 04b.2"
    return own.replace(_OWN_ANSWER, _EOS_OUTSIDE)


def eos_after_answer(model, tokenizer, records: list[dict]) -> float:
    """Mean probability the model gives EOS right after each record's reference answer."""
    import torch

    from ftcourse.evaluate import prompt_messages

    was_training, probs = model.training, []
    model.eval()
    for record in records:
        prompt = tokenizer.apply_chat_template(
            prompt_messages(record["messages"]), add_generation_prompt=True, return_dict=True
        )["input_ids"]
        answer = tokenizer(record["messages"][-1]["content"], add_special_tokens=False)["input_ids"]
        ids = torch.tensor([list(prompt) + list(answer)], device=model.device)
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1].float()
        probs.append(logits.softmax(-1)[tokenizer.eos_token_id].item())
    model.train(was_training)
    return sum(probs) / len(probs)


@checker(
    "04b.2",
    "medium",
    "`eos_outside_template()` is the course model's chat template with one edit that stops the "
    "fine-tune from learning to end its answers. Train with it (`train_recipe(RECIPE, folder, "
    "chat_template=...)`) and measure `eos_after_answer`; then set `answer` to a template that "
    "fixes it, train with that, and pass both measurements: `check('04b.2', answer, before, after)`.",
)
def _04b_2(answer, before, after):
    from transformers import AutoTokenizer

    from ftcourse.chat import has_generation_markers, loss_mask
    from ftcourse.paths import BASE_MODEL_DIR

    if not isinstance(answer, str):
        return wrong("`answer` is a chat template: a Jinja string, like `eos_outside_template()`.")
    if not has_generation_markers(answer):
        return wrong(
            "your template has no {% generation %} markers: trl then cannot tell the answer from "
            "the prompt (assistant_only_loss=True). Keep them, and move the EOS inside."
        )
    tokenizer = AutoTokenizer.from_pretrained(BASE_MODEL_DIR)
    ids, mask, _ = loss_mask(tokenizer, _SAMPLE, answer)
    eos = [i for i, t in enumerate(ids) if t == tokenizer.eos_token_id]
    if not eos:
        return wrong(
            "your template writes no EOS after the answer: the model cannot learn to stop."
        )
    if not mask[eos[-1]]:
        return wrong(
            "the EOS after the answer still carries no loss: it must sit inside "
            "{% generation %} ... {% endgeneration %}."
        )
    if before > EOS_BEFORE_MAX:
        return wrong(
            f"`before` is {before:.2f}: the failure did not show (it measures under "
            f"{EOS_BEFORE_MAX} on cpu-tiny). Train with `eos_outside_template()` and measure that run."
        )
    if after < EOS_AFTER_MIN:
        return wrong(
            f"the template is right, but `after` is {after:.2f}, below {EOS_AFTER_MIN}: train with "
            "your template (chat_template=answer) and measure that run."
        )
    return CORRECT


def _early_stop(eval_losses: list[float], patience: int) -> int:
    """The epoch at which transformers' EarlyStoppingCallback stops (threshold 0)."""
    best, waited = float("inf"), 0
    for epoch, loss in enumerate(eval_losses, 1):
        if loss < best:
            best, waited = loss, 0
        else:
            waited += 1
            if waited >= patience:
                return epoch
    return len(eval_losses)


@checker(
    "04b.3",
    "hard",
    "write `answer(eval_losses, patience)` returning the epoch (1-based) after which "
    "`EarlyStoppingCallback(early_stopping_patience=patience)` stops training: it counts the "
    "evaluations in a row that do not improve on the best loss so far, and stops when the count "
    "reaches `patience`; if it never does, training runs to the last epoch.",
)
def _04b_3(answer):
    cases = [
        ([1.9, 1.4, 1.3, 1.35, 1.5, 1.6], 2),
        ([1.9, 1.4, 1.3, 1.35, 1.5, 1.6], 1),
        ([1.9, 1.4, 1.45, 1.3, 1.35, 1.4], 2),  # a worse epoch, then a new best: the count restarts
        ([2.0, 1.5, 1.2, 1.1], 2),  # never stops early
        ([1.0, 1.0, 1.0, 1.0], 2),  # equal is not better
    ]
    for losses, patience in cases:
        expected, got = _early_stop(losses, patience), answer(losses, patience)
        if got == expected:
            continue
        case = f"for {losses} with patience {patience} you returned {got!r}, expected {expected}."
        if got == losses.index(min(losses)) + 1:
            return wrong(f"{case} That is the best epoch; training stops `patience` epochs later.")
        if losses == [1.9, 1.4, 1.45, 1.3, 1.35, 1.4]:
            return wrong(f"{case} A new best loss resets the count of epochs without improvement.")
        if losses == [1.0, 1.0, 1.0, 1.0]:
            return wrong(f"{case} A loss equal to the best is no improvement: it counts.")
        return wrong(f"{case} Count epochs without a new best; stop when the count hits patience.")
    return CORRECT


EXERCISES = [_04b_1, _04b_2, _04b_3]
