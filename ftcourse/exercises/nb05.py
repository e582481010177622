"""Notebook 05's exercises (inference and adapters): the active adapter, a size, an SVD merge."""

from __future__ import annotations

from ftcourse.exercises.core import CORRECT, checker, wrong


@checker(
    "05.1",
    "easy",
    "a PeftModel holds `polite` (active) and `bugfix`; `model.add_weighted_adapter(['polite', "
    "'bugfix'], [1.0, 1.0], 'both', combination_type='cat')` and then "
    "`model.delete_adapter('polite')` run. Set `answer` to the name of the adapter active now.",
)
def _05_1(answer):
    import tempfile
    import warnings

    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import LlamaForCausalLM

    from ftcourse.architectures import tiny_llama_config

    tiny = tiny_llama_config(num_hidden_layers=1)
    config = LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM")
    with tempfile.TemporaryDirectory() as tmp:
        get_peft_model(LlamaForCausalLM(tiny), config).save_pretrained(tmp)
        model = PeftModel.from_pretrained(LlamaForCausalLM(tiny), tmp, adapter_name="polite")
        model.load_adapter(tmp, adapter_name="bugfix")
        model.add_weighted_adapter(["polite", "bugfix"], [1.0, 1.0], "both", combination_type="cat")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # peft warns which adapter it activates: the answer
            model.delete_adapter("polite")
        active = model.active_adapter
    if answer == active:
        return CORRECT
    if answer == "polite":
        return wrong(
            "A deleted adapter cannot stay active: peft activates another one, and warns which."
        )
    if answer in ("bugfix", "default"):
        return wrong(
            "peft does not go back to the adapter loaded first: it activates the first of the "
            "remaining names in sorted order, and warns which (read the warning, or run it on a copy)."
        )
    return wrong(
        "While adapters remain, peft does not fall back to the base model: it activates one of the "
        "remaining adapters, even one you never chose (add_weighted_adapter's new one is there too)."
    )


@checker(
    "05.2",
    "medium",
    "set `answer` to the size in MB (1 MB = 1e6 bytes) of an r=16 adapter on q/k/v/o of Mistral-7B, "
    "saved in fp32 as peft does.",
)
def _05_2(answer):
    import torch

    from ftcourse.architectures import load_architecture
    from ftcourse.lora import adapter_bytes

    config = load_architecture("mistral-7b-v0.3")
    expected = (
        adapter_bytes(config, ["q_proj", "k_proj", "v_proj", "o_proj"], 16, torch.float32) / 1e6
    )
    if abs(answer - expected) > 0.01 * expected:
        return wrong(
            f"{answer} MB is off. Per layer, each target adds r x (d_in + d_out) values of 4 bytes; "
            "with grouped-query attention k and v project to fewer dimensions than q."
        )
    return CORRECT


@checker(
    "05.3",
    "hard",
    "write `answer(deltas, weights, r)` returning a pair `(A, B)`, A of shape r x d_in and B of "
    "shape d_out x r, whose product B @ A is the best rank-r approximation of sum_i weights[i] * "
    "deltas[i]: what add_weighted_adapter(..., combination_type='svd') builds.",
)
def _05_3(answer):
    import torch

    from ftcourse.lora import relative_error_by_rank

    gen = torch.Generator().manual_seed(0)
    d_out, d_in, r = 12, 10, 3
    # two rank-2 updates: their weighted sum has rank 4, so rank 3 must drop something
    deltas = [
        torch.randn(d_out, 2, generator=gen) @ torch.randn(2, d_in, generator=gen) for _ in "ab"
    ]
    weights = [1.0, 0.6]
    target = weights[0] * deltas[0] + weights[1] * deltas[1]

    def best_error(m: torch.Tensor) -> float:
        return (relative_error_by_rank(torch.linalg.svdvals(m))[r] * m.norm()).item()

    got = answer([d.clone() for d in deltas], list(weights), r)
    if not (isinstance(got, tuple | list) and len(got) == 2):
        return wrong(f"Return a pair (A, B), not {type(got).__name__}.")
    A, B = got
    if tuple(A.shape) != (r, d_in) or tuple(B.shape) != (d_out, r):
        return wrong(
            f"A has shape {tuple(A.shape)} and B {tuple(B.shape)}; expected A r x d_in = "
            f"{(r, d_in)} and B d_out x r = {(d_out, r)}."
        )
    error = (B @ A - target).norm().item()
    if error <= 1.001 * best_error(target) + 1e-6:
        return CORRECT
    unweighted = deltas[0] + deltas[1]
    if (B @ A - unweighted).norm().item() <= 1.001 * best_error(unweighted) + 1e-6:
        return wrong("That approximates the plain sum: multiply each update by its weight first.")
    return wrong(
        f"B @ A is {error:.3f} from the weighted sum; the best rank-{r} matrix is "
        f"{best_error(target):.3f} away. Take torch.linalg.svd of the weighted sum and keep the r "
        "largest singular values: U·S into B, Vh into A (Eckart-Young, notebook 03)."
    )


EXERCISES = [_05_1, _05_2, _05_3]
