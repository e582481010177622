"""Notebook 08's exercises (after SFT): one pair's DPO loss, GRPO's silent groups, a DPO run that holds."""

from __future__ import annotations

import math

from ftcourse.exercises.core import CORRECT, checker, wrong

# 08.1: one pair's log-probabilities under the model and under the reference, and beta
PAIR = {"chosen": -12.0, "rejected": -30.0, "ref_chosen": -14.0, "ref_rejected": -25.0}
BETA = 0.1


def _dpo_loss(margin: float) -> float:
    """-log sigmoid(margin), in nats."""
    return math.log1p(math.exp(-margin))


@checker(
    "08.1",
    "easy",
    "the model gives a pair's chosen answer log-probability -12.0 and its rejected answer -30.0; the "
    "reference gave them -14.0 and -25.0. With beta = 0.1, set `answer` to this pair's DPO loss "
    "(natural logarithm).",
)
def _08_1(answer):
    p = PAIR
    reward_chosen = BETA * (p["chosen"] - p["ref_chosen"])
    reward_rejected = BETA * (p["rejected"] - p["ref_rejected"])
    margin = reward_chosen - reward_rejected
    if not isinstance(answer, int | float):
        return wrong("`answer` must be a number: the loss of this one pair.")
    if math.isclose(answer, _dpo_loss(margin), rel_tol=1e-3):
        return CORRECT
    if math.isclose(answer, margin, rel_tol=1e-3):
        return wrong(
            f"{answer:g} is the reward margin. The loss is -log sigmoid(margin): small when the "
            "margin is large."
        )
    no_ref = BETA * (p["chosen"] - p["rejected"])
    if math.isclose(answer, _dpo_loss(no_ref), rel_tol=1e-3):
        return wrong(
            "you left the reference out: each answer's implicit reward is beta x (its log-probability "
            "under the model minus under the reference)."
        )
    if math.isclose(answer, _dpo_loss(margin / BETA), rel_tol=1e-3):
        return wrong("you left beta out: it multiplies each log-probability ratio.")
    if math.isclose(answer, _dpo_loss(-margin), rel_tol=1e-3):
        return wrong("the sign is turned round: the margin is chosen minus rejected.")
    if math.isclose(answer, 1 / (1 + math.exp(-margin)), rel_tol=1e-3):
        return wrong(f"{answer:g} is sigmoid(margin); the loss is minus its logarithm.")
    if math.isclose(answer, _dpo_loss(margin) / math.log(2), rel_tol=1e-3):
        return wrong("that is in bits: use the natural logarithm, as trl does.")
    return wrong(
        "compute the two implicit rewards, beta x (model - reference) for chosen and for rejected, "
        "then -log sigmoid(chosen - rejected)."
    )


# 08.2: per prompt, how many of `samples` sampled answers were right
RIGHT, SAMPLES, GROUP = [0, 1, 3, 8, 5, 2, 8, 0, 7, 4], 8, 4


def silent_share(right: list[int], samples: int, group: int) -> float:
    """Expected share of prompts whose group of `group` answers is all right or all wrong."""
    total = math.comb(samples, group)
    return sum((math.comb(c, group) + math.comb(samples - c, group)) / total for c in right) / len(
        right
    )


@checker(
    "08.2",
    "medium",
    "GRPO learns from a prompt only when its group of answers holds right and wrong ones (each "
    "answer's advantage is its reward minus the group's mean). Write `answer(right, samples, "
    "group)`: `right[i]` of prompt i's `samples` answers were right; return the expected share of "
    "prompts whose group of `group` answers, drawn without replacement from those samples (as "
    "pass@k is estimated), are all right or all wrong.",
)
def _08_2(answer):
    expected = silent_share(RIGHT, SAMPLES, GROUP)
    got = answer(RIGHT, SAMPLES, GROUP)
    if isinstance(got, list | tuple):
        return wrong("return one number, the share over all prompts, not one value per prompt.")
    if math.isclose(got, expected, rel_tol=1e-6):
        return CORRECT
    total = math.comb(SAMPLES, GROUP)
    all_wrong = sum(math.comb(SAMPLES - c, GROUP) for c in RIGHT) / total / len(RIGHT)
    all_right = sum(math.comb(c, GROUP) for c in RIGHT) / total / len(RIGHT)
    if math.isclose(got, all_wrong, rel_tol=1e-6) or math.isclose(got, all_right, rel_tol=1e-6):
        return wrong(
            "you counted one kind of silent group: all wrong *and* all right both give every "
            "answer the same reward, so both teach nothing."
        )
    binomial = sum((c / SAMPLES) ** GROUP + (1 - c / SAMPLES) ** GROUP for c in RIGHT) / len(RIGHT)
    if math.isclose(got, binomial, rel_tol=1e-6):
        return wrong(
            "that draws with replacement (p^g + (1-p)^g). Draw without replacement from the "
            "samples, as pass@k does: comb(c, g) / comb(n, g) for all right."
        )
    return wrong(
        f"got {got!r}. For each prompt: the chance that g answers drawn from its n samples are all "
        "right, plus the chance that they are all wrong; then the mean over prompts."
    )


# 08.3: the notebook's plain DPO run, which collapsed at the SFT rate
DPO_SETTINGS = dict(
    learning_rate=5e-4,
    beta=0.1,
    loss_type=["sigmoid"],
    max_steps=20,
    per_device_train_batch_size=8,
    gradient_accumulation_steps=1,
    warmup_steps=2,
    logging_steps=2,
)
ACCURACY_SLACK = 0.05  # held-out accuracy may fall this much below SFT on mixed: no collapse


@checker(
    "08.3",
    "hard",
    "plain DPO at 5e-4 collapsed. Set `answer` to `DPO_SETTINGS` with one setting changed (plain "
    "DPO: keep `loss_type` and the 20 steps) so that DPO cuts the held-out bad answers beyond noise "
    f"and keeps accuracy within {ACCURACY_SLACK:.0%} of SFT on mixed. Train it with "
    "`dpo_trainer(..., **answer)`, score it with `held_out`, and pass the run's log history, its score "
    "and SFT on mixed's.",
)
def _08_3(answer, history, after, before):
    from ftcourse.evaluate import mcnemar

    if not isinstance(answer, dict):
        return wrong("`answer` must be a dict of settings: `{**DPO_SETTINGS, setting: value}`.")
    changed = sorted(k for k in {*answer, *DPO_SETTINGS} if answer.get(k) != DPO_SETTINGS.get(k))
    if len(changed) != 1:
        return wrong(
            f"change exactly one setting of DPO_SETTINGS (you changed {changed or 'none'}), so the "
            "run shows which one mattered."
        )
    if changed == ["loss_type"]:
        return wrong("adding a loss term is section 4's remedy; keep plain DPO and find another.")
    if changed == ["max_steps"]:
        return wrong("keep the 20 steps: which setting decides how far each step moves the model?")
    rates = [h["learning_rate"] for h in history if "learning_rate" in h]
    if not rates or not math.isclose(max(rates), answer["learning_rate"], rel_tol=0.05):
        return wrong(
            "`history` is not a run of `answer`: its logged learning rate does not reach "
            f"{answer['learning_rate']:g}. Pass `trainer.state.log_history` of that run."
        )
    (result, bad), (result0, bad0) = after, before
    if len(bad) != len(bad0):
        return wrong("score both models on the same held-out items (the whole polite test split).")
    collapsed = result.accuracy < result0.accuracy - ACCURACY_SLACK
    fewer = sum(bad) < sum(bad0) and mcnemar(bad0, bad) < 0.05
    if not collapsed and fewer:
        return CORRECT
    if collapsed and changed == ["beta"]:
        return wrong(
            f"held-out accuracy fell to {result.accuracy:.0%}: with a larger beta each step still "
            "moves the model as far, it only reaches a large margin sooner. Look at the rate."
        )
    if collapsed:
        return wrong(
            f"held-out accuracy fell to {result.accuracy:.0%} (SFT on mixed: "
            f"{result0.accuracy:.0%}): the chosen answers were displaced again. Each step moves "
            "the model too far."
        )
    return wrong(
        f"no collapse, but the bad answers did not fall beyond noise ({sum(bad0)} -> {sum(bad)}): "
        "DPO moved too little. Find a setting between."
    )


EXERCISES = [_08_1, _08_2, _08_3]
