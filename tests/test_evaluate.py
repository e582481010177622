"""Held-out evaluation helpers that the GPU profiles depend on: stop tokens and the untrained twin."""

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftcourse.architectures import load_architecture, tiny_llama_config
from ftcourse.evaluate import copy_probe, stop_ids, untrained_twin
from ftcourse.paths import BASE_MODEL_DIR


def test_stop_ids_are_the_eos_and_every_id_generation_config_stops_at():
    model = AutoModelForCausalLM.from_config(tiny_llama_config())
    tokenizer = AutoTokenizer.from_pretrained(BASE_MODEL_DIR)
    model.generation_config.eos_token_id = [7, tokenizer.eos_token_id, 9]
    assert stop_ids(model, tokenizer) == [tokenizer.eos_token_id, 7, 9]
    model.generation_config.eos_token_id = None
    assert stop_ids(model, tokenizer) == [tokenizer.eos_token_id]


def test_untrained_twin_of_an_8b_model_is_cut_to_two_layers():
    """Notebook 04 built an untrained copy of the profile's model in fp32 on the CPU: 32 GB for 8B."""
    with torch.device("meta"):
        big = AutoModelForCausalLM.from_config(
            load_architecture("llama-3.1-8b"), dtype=torch.bfloat16
        )
    twin = untrained_twin(big)
    assert twin.config.num_hidden_layers == 2 and twin.device.type == "meta"
    assert twin.num_parameters() < 1.5e9 and next(twin.parameters()).dtype == torch.bfloat16
    assert type(twin) is type(big)


def test_untrained_twin_of_the_course_model_keeps_its_shape_and_cannot_copy():
    base = AutoModelForCausalLM.from_pretrained(BASE_MODEL_DIR)
    twin = untrained_twin(base)
    assert twin.config.num_hidden_layers == base.config.num_hidden_layers
    assert twin.num_parameters() == base.num_parameters()
    assert copy_probe(base).copies and not copy_probe(twin).copies
