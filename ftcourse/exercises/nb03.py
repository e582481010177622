"""Notebook 03's exercises (LoRA maths): LoRA's parameters, alpha for a new rank, merging."""

from __future__ import annotations

from ftcourse.exercises.core import CORRECT, checker, wrong


@checker(
    "03.1",
    "easy",
    "set `answer` to the number of parameters LoRA with r=4 adds to one Llama-3.1-8B down_proj "
    "(14336 inputs, 4096 outputs).",
)
def _03_1(answer):
    from ftcourse.lora import lora_params_per_matrix

    if answer == 4096 * 14336:
        return wrong(
            "That is the size of the matrix itself; LoRA trains A (r x d_in) and B (d_out x r)."
        )
    if answer != lora_params_per_matrix(4096, 14336, 4):
        return wrong("A is r x d_in and B is d_out x r: r x (d_in + d_out) in total.")
    return CORRECT


@checker(
    "03.2",
    "medium",
    "an adapter trained well at r=8 with lora_alpha=16; set `answer` to the lora_alpha that gives "
    "updates dW·x of the same size at r=32 with use_rslora=True.",
)
def _03_2(answer):
    import math

    # the update's size grows like scaling·sqrt(r): 16/8·sqrt(8) at r=8, alpha/sqrt(32)·sqrt(32) at r=32
    expected = 16 / 8 * math.sqrt(8)
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        return wrong(f"Set `answer` to a number (a lora_alpha), not {type(answer).__name__}.")

    def near(value: float) -> bool:
        return abs(answer - value) <= 0.15 * value  # one update_size measurement is this close

    if near(expected):
        return CORRECT
    if near(16):
        return wrong(
            "Keeping alpha = 16 keeps neither the scaling nor the update's size. Section 9: the size "
            "of dW·x grows like scaling·sqrt(r)."
        )
    if near(2 * 32):
        return wrong(
            "alpha = 2r is the rule for plain LoRA; with use_rslora=True the scaling is "
            "alpha/sqrt(r), not alpha/r."
        )
    if near(2 * math.sqrt(32)):
        return wrong(
            "That keeps rsLoRA's scaling at 2, as before. But B·(Ax) sums r terms: the update's size "
            "is about scaling·sqrt(r), not the scaling alone."
        )
    if near(16 / 8 * 8 / math.sqrt(32)):
        return wrong("The update's size grows like sqrt(r), not like r.")
    return wrong(
        "The update's size is about scaling·sqrt(r) (section 9), and rsLoRA's scaling is "
        "alpha/sqrt(r): make the two sizes equal, or measure them with `update_size`."
    )


@checker(
    "03.3",
    "hard",
    "write `answer(model)` that merges every LoRALinear of a model (from `apply_lora`) into its base "
    "weight and puts the plain nn.Linear back in its place, like peft's merge_and_unload; "
    "return the model.",
)
def _03_3(answer):
    import copy

    import torch
    from torch import nn
    from transformers import AutoModelForCausalLM

    from ftcourse.architectures import tiny_llama_config
    from ftcourse.lora import LoRALinear, apply_lora, lora_layers

    torch.manual_seed(0)
    config = tiny_llama_config()
    model = AutoModelForCausalLM.from_config(config).eval()
    model = apply_lora(model, ["q_proj", "v_proj", "down_proj"], r=4, lora_alpha=8)
    for layer in lora_layers(model).values():
        nn.init.normal_(layer.lora_B.weight, std=0.1)  # B = 0 would make any merge look right
    ids = torch.randint(0, 64, (2, 6))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    merged = answer(copy.deepcopy(model))
    if not isinstance(merged, nn.Module):
        return wrong(f"return the model, not {type(merged).__name__}.")
    left = [name for name, m in merged.named_modules() if isinstance(m, LoRALinear)]
    if left:
        return wrong(
            f"{len(left)} LoRALinear layers remain (e.g. {left[0]}): replace each by its base_layer."
        )
    with torch.no_grad():
        got = merged(input_ids=ids).logits
    if not torch.allclose(got, expected, atol=1e-5):
        return wrong(
            "The outputs changed: add each layer's get_delta_weight() to its base weight first."
        )
    return CORRECT


EXERCISES = [_03_1, _03_2, _03_3]
