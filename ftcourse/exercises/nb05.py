"""Notebook 05's exercises (inference and adapters): the active adapter, a size, the merged weight."""

from __future__ import annotations

from ftcourse.exercises.core import CORRECT, checker, wrong


@checker(
    "05.1",
    "easy",
    "a PeftModel was made with the `polite` adapter; then `model.load_adapter(path, adapter_name="
    "'bugfix')` ran. Set `answer` to the name of the adapter that is active now.",
)
def _05_1(answer):
    import tempfile

    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import LlamaForCausalLM

    from ftcourse.architectures import tiny_llama_config

    tiny = tiny_llama_config(num_hidden_layers=1)
    config = LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM")
    with tempfile.TemporaryDirectory() as tmp:
        get_peft_model(LlamaForCausalLM(tiny), config).save_pretrained(tmp)
        model = PeftModel.from_pretrained(LlamaForCausalLM(tiny), tmp, adapter_name="polite")
        model.load_adapter(tmp, adapter_name="bugfix")
        active = model.active_adapter
    if answer != active:
        return wrong(
            "Loading an adapter does not switch to it: only `set_adapter` changes the active one."
        )
    return CORRECT


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
    "write `answer(weight, lora_A, lora_B, lora_alpha, r)` returning the merged weight that "
    "`merge_and_unload` writes into a Linear layer.",
)
def _05_3(answer):
    import torch

    from ftcourse.lora import LoRALinear

    torch.manual_seed(0)
    layer = LoRALinear(torch.nn.Linear(12, 10, bias=False), r=4, lora_alpha=8, lora_dropout=0.0)
    torch.nn.init.normal_(layer.lora_B.weight)  # B is zero at init: a real check needs it non-zero
    expected = layer.base_layer.weight + layer.get_delta_weight()
    try:
        got = answer(layer.base_layer.weight, layer.lora_A.weight, layer.lora_B.weight, 8, 4)
    except RuntimeError as err:  # A @ B: (r x in) @ (out x r) cannot be multiplied
        return wrong(f"The product failed ({err}): it is B @ A, not A @ B (out x r times r x in).")
    if got.shape != expected.shape:
        return wrong(
            f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}: B @ A, not A @ B."
        )
    if not torch.allclose(got, expected, atol=1e-5):
        return wrong("Values differ: remember the scaling lora_alpha / r in front of B @ A.")
    return CORRECT


EXERCISES = [_05_1, _05_2, _05_3]
