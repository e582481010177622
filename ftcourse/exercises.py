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

    from ftcourse.profiles import notebook_profile

    config = AutoConfig.from_pretrained(notebook_profile().model_path)  # the notebook's `model`
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


# ---------------------------------------------------------------- 03 LoRA maths


@exercise(
    "03.1",
    "easy",
    "set `answer` to the number of parameters LoRA with r=4 adds to one Llama-3.1-8B down_proj "
    "(14336 inputs, 4096 outputs).",
)
def _03_1(answer):
    from ftcourse.lora import lora_params_per_matrix

    if answer == 4096 * 14336:
        return "That is the size of the matrix itself; LoRA trains A (r x d_in) and B (d_out x r)."
    if answer != lora_params_per_matrix(4096, 14336, 4):
        return "A is r x d_in and B is d_out x r: r x (d_in + d_out) in total."


@exercise(
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
            return (
                f"for a {tuple(m.shape)} matrix you returned {got}, expected {expected}. The error "
                "of the best rank-k approximation comes from the singular values: "
                "`relative_error_by_rank(torch.linalg.svdvals(delta))[k]`."
            )


@exercise(
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

    from ftcourse.configs import tiny_llama_config
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
        return f"return the model, not {type(merged).__name__}."
    left = [name for name, m in merged.named_modules() if isinstance(m, LoRALinear)]
    if left:
        return f"{len(left)} LoRALinear layers remain (e.g. {left[0]}): replace each by its base_layer."
    with torch.no_grad():
        got = merged(input_ids=ids).logits
    if not torch.allclose(got, expected, atol=1e-5):
        return "The outputs changed: add each layer's get_delta_weight() to its base weight first."


# ---------------------------------------------------------------- 05 inference and adapters


@exercise(
    "05.1",
    "easy",
    "a PeftModel was made with the `polite` adapter; then `model.load_adapter(path, adapter_name="
    "'bugfix')` ran. Set `answer` to the name of the adapter that is active now.",
)
def _05_1(answer):
    import tempfile

    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import LlamaForCausalLM

    from ftcourse.configs import tiny_llama_config

    tiny = tiny_llama_config(num_hidden_layers=1)
    config = LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM")
    with tempfile.TemporaryDirectory() as tmp:
        get_peft_model(LlamaForCausalLM(tiny), config).save_pretrained(tmp)
        model = PeftModel.from_pretrained(LlamaForCausalLM(tiny), tmp, adapter_name="polite")
        model.load_adapter(tmp, adapter_name="bugfix")
        active = model.active_adapter
    if answer != active:
        return (
            "Loading an adapter does not switch to it: only `set_adapter` changes the active one."
        )


@exercise(
    "05.2",
    "medium",
    "set `answer` to the size in MB (1 MB = 1e6 bytes) of an r=16 adapter on q/k/v/o of Mistral-7B, "
    "saved in fp32 as peft does.",
)
def _05_2(answer):
    import torch

    from ftcourse.configs import load_config
    from ftcourse.lora import adapter_bytes

    config = load_config("mistral-7b-v0.3")
    expected = (
        adapter_bytes(config, ["q_proj", "k_proj", "v_proj", "o_proj"], 16, torch.float32) / 1e6
    )
    if abs(answer - expected) > 0.01 * expected:
        return (
            f"{answer} MB is off. Per layer, each target adds r x (d_in + d_out) values of 4 bytes; "
            "with grouped-query attention k and v project to fewer dimensions than q."
        )


@exercise(
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
    got = answer(layer.base_layer.weight, layer.lora_A.weight, layer.lora_B.weight, 8, 4)
    if got.shape != expected.shape:
        return f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}: B @ A, not A @ B."
    if not torch.allclose(got, expected, atol=1e-5):
        return "Values differ: remember the scaling lora_alpha / r in front of B @ A."


import ftcourse.exercises_06  # noqa: E402, F401  (notebook 06's checkers)
from ftcourse import exercises_01_02  # noqa: E402, F401  (notebooks 01 and 02)
