"""Notebook 03's exercises (LoRA maths): LoRA's parameters, the rank an update needs, merging."""

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
    "write `answer(delta)` returning the smallest rank k whose best rank-k approximation of the "
    "matrix `delta` has a relative error of at most 0.2.",
)
def _03_2(answer):
    import torch

    from ftcourse.lora import relative_error_by_rank

    gen = torch.Generator().manual_seed(0)
    for rank, noise in [(1, 0.0), (3, 0.01), (10, 0.05), (30, 1.0)]:
        m = torch.randn(40, rank, generator=gen) @ torch.randn(rank, 30, generator=gen)
        m = m + noise * torch.randn(40, 30, generator=gen)
        err = relative_error_by_rank(torch.linalg.svdvals(m))
        expected = int((err <= 0.2).nonzero()[0])
        got = answer(m.clone())
        if got != expected:
            return wrong(
                f"for a {tuple(m.shape)} matrix you returned {got}, expected {expected}. The error "
                "of the best rank-k approximation comes from the singular values: "
                "`relative_error_by_rank(torch.linalg.svdvals(delta))[k]`."
            )
    return CORRECT


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
