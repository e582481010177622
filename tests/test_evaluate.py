"""Held-out evaluation helpers that the GPU profiles depend on: stop tokens and the untrained twin."""

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftcourse.architectures import load_architecture, tiny_llama_config
from ftcourse.evaluate import copy_probe, generate, perplexity, stop_ids, untrained_twin
from ftcourse.paths import BASE_MODEL_DIR, DATA_DIR


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


def test_perplexity_on_held_out_source_is_the_mean_window_loss():
    base = AutoModelForCausalLM.from_pretrained(BASE_MODEL_DIR)
    tokenizer = AutoTokenizer.from_pretrained(BASE_MODEL_DIR)
    text = (DATA_DIR / "python_heldout" / "stdlib_heldout.py.txt").read_text()[:20_000]
    ppl = perplexity(base, tokenizer, text, seq_len=128)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids[0]
    n = len(ids) // 128
    with torch.no_grad():
        losses = [
            base(input_ids=w[None], labels=w[None]).loss.item() for w in ids[: n * 128].view(n, 128)
        ]
    assert math.isclose(ppl, math.exp(sum(losses) / n), rel_tol=1e-4)
    assert 1 < ppl < perplexity(untrained_twin(base), tokenizer, text, seq_len=128)
    with pytest.raises(ValueError, match="fewer than one window"):
        perplexity(base, tokenizer, "x = 1", seq_len=128)


def test_generate_samples_at_a_temperature_and_is_greedy_without_one():
    from ftcourse.profiles import get_profile
    from ftcourse.trainer import load_model

    model, tokenizer = load_model(get_profile("cpu-tiny"), "lora")
    chats = [[{"role": "user", "content": f"def f{i}(x):"}] for i in range(4)]
    greedy = [generate(model, tokenizer, chats, 12, progress=False) for _ in range(2)]
    sampled = []
    for _ in range(2):
        torch.manual_seed(0)
        sampled.append(generate(model, tokenizer, chats, 12, progress=False, temperature=1.0))
    assert greedy[0] == greedy[1] and sampled[0] == sampled[1]  # sampling follows the seed
    assert sampled[0] != greedy[0]


def test_answer_loss_is_the_loss_on_every_assistant_turn_and_nothing_else():
    from ftcourse.chat import loss_mask
    from ftcourse.evaluate import answer_loss

    tokenizer = AutoTokenizer.from_pretrained(BASE_MODEL_DIR)
    model = AutoModelForCausalLM.from_pretrained(BASE_MODEL_DIR).eval()
    chat = [
        {"role": "user", "content": "What is a tuple?"},
        {"role": "assistant", "content": "An immutable sequence."},
        {"role": "user", "content": "And a list?"},
        {"role": "assistant", "content": "A mutable one."},
    ]
    ids, mask, _ = loss_mask(tokenizer, chat)
    labels = torch.tensor([[i if m else -100 for i, m in zip(ids, mask)]])
    with torch.no_grad():
        expected = model(input_ids=torch.tensor([ids]), labels=labels).loss.item()
    assert answer_loss(model, tokenizer, [chat]) == pytest.approx(expected, rel=1e-5)
    only_first = [chat[0], chat[1]]
    assert answer_loss(model, tokenizer, [only_first]) != pytest.approx(expected, rel=1e-3)
