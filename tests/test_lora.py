"""From-scratch LoRA: behaviour, parity with peft, and the golden counts the course quotes."""

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import AutoModelForCausalLM

from ftcourse import CourseError
from ftcourse.architectures import load_architecture, tiny_llama_config
from ftcourse.lora import (
    LoRALinear,
    adapter_bytes,
    apply_lora,
    count_parameters,
    lora_layers,
    lora_params_per_matrix,
    relative_error_by_rank,
)

ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]

# peft 0.21 calls transformers' deprecated `is_gradient_checkpointing`; the warning is theirs, not ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"
)


def tiny_llama(seed: int = 0) -> nn.Module:
    """A seeded 2-layer Llama with grouped-query attention (k/v narrower than q)."""
    torch.manual_seed(seed)
    config = tiny_llama_config(vocab_size=96, max_position_embeddings=32)
    return AutoModelForCausalLM.from_config(config).eval()


def layer_with_nonzero_b(seed: int = 0, **kwargs) -> LoRALinear:
    torch.manual_seed(seed)
    layer = LoRALinear(nn.Linear(12, 10), r=4, lora_alpha=8, **kwargs)
    nn.init.normal_(layer.lora_B.weight)  # with B = 0 a merge test would prove nothing
    return layer


def test_starts_equal_to_base():
    torch.manual_seed(0)
    base = nn.Linear(12, 10)
    layer = LoRALinear(copy.deepcopy(base), r=4, lora_alpha=8)
    x = torch.randn(5, 12)
    assert torch.equal(layer(x), base(x))
    assert layer.lora_A.weight.abs().sum() > 0 and layer.lora_B.weight.abs().sum() == 0


def test_forward_is_base_plus_scaled_low_rank_path():
    layer = layer_with_nonzero_b()
    x = torch.randn(5, 12)
    w, a, b = layer.base_layer.weight, layer.lora_A.weight, layer.lora_B.weight
    expected = x @ w.T + layer.base_layer.bias + x @ a.T @ b.T * 2.0
    assert torch.allclose(layer(x), expected, atol=1e-5)


def test_merge_with_nonzero_b_keeps_outputs_and_unmerge_restores_w():
    layer = layer_with_nonzero_b()
    x = torch.randn(5, 12)
    w0 = layer.base_layer.weight.clone()
    before = layer(x)
    layer.merge()
    assert layer.merged and not torch.allclose(layer.base_layer.weight, w0)
    assert torch.allclose(layer(x), before, atol=1e-5)
    assert torch.allclose(layer.base_layer.weight, w0 + layer.get_delta_weight(), atol=1e-6)
    layer.merge()  # merging twice must not add the update twice
    assert torch.allclose(layer(x), before, atol=1e-5)
    layer.unmerge()
    assert not layer.merged
    assert torch.allclose(layer.base_layer.weight, w0, atol=1e-6)
    assert torch.allclose(layer(x), before, atol=1e-5)


@pytest.mark.parametrize(
    ("r", "alpha", "rslora", "expected"),
    [(8, 16, False, 2.0), (16, 16, False, 1.0), (16, 32, False, 2.0), (16, 16, True, 4.0)],
)
def test_scaling(r, alpha, rslora, expected):
    layer = LoRALinear(nn.Linear(8, 8), r=r, lora_alpha=alpha, use_rslora=rslora)
    assert layer.scaling == expected


def test_bad_rank_and_bad_targets_raise_course_errors():
    with pytest.raises(CourseError, match="positive integer"):
        LoRALinear(nn.Linear(4, 4), r=0)
    with pytest.raises(CourseError, match="q_proj"):
        apply_lora(tiny_llama(), ["query"], r=4, lora_alpha=8)
    config = tiny_llama().config
    with pytest.raises(CourseError, match="positive integer"):
        count_parameters(config, ATTENTION, r=0)
    with pytest.raises(CourseError, match="gate_proj"):
        count_parameters(config, ["query"], r=4)


def test_apply_lora_trains_only_lora_parameters():
    model = apply_lora(tiny_llama(), ATTENTION, r=4, lora_alpha=8, dropout=0.1)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert len(lora_layers(model)) == 2 * len(ATTENTION)
    expected = 2 * sum(
        lora_params_per_matrix(d_out, 32, 4) for d_out in (32, 16, 16)
    ) + 2 * lora_params_per_matrix(32, 32, 4)
    assert sum(p.numel() for n, p in model.named_parameters() if p.requires_grad) == expected
    # one backward pass: gradients reach LoRA weights only
    ids = torch.randint(0, 96, (2, 8))
    model.train()
    model(input_ids=ids, labels=ids).loss.backward()
    assert all((p.grad is not None) == p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("use_rslora", [False, True])
def test_parity_with_peft_outputs_and_merged_weights(use_rslora):
    base = tiny_llama()
    ours = apply_lora(copy.deepcopy(base), ATTENTION, 4, 8, use_rslora=use_rslora)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=ATTENTION, use_rslora=use_rslora)
    theirs = get_peft_model(copy.deepcopy(base), config)
    torch.manual_seed(1)
    peft_modules = dict(theirs.base_model.model.named_modules())
    for name, mine in lora_layers(ours).items():
        nn.init.normal_(mine.lora_B.weight, std=0.1)
        peft_layer = peft_modules[name]
        assert peft_layer.scaling["default"] == pytest.approx(mine.scaling)
        with torch.no_grad():
            peft_layer.lora_A["default"].weight.copy_(mine.lora_A.weight)
            peft_layer.lora_B["default"].weight.copy_(mine.lora_B.weight)
    ids = torch.randint(0, 96, (2, 8))
    with torch.no_grad():
        assert not torch.allclose(ours(ids).logits, base(ids).logits, atol=1e-3)
        assert torch.allclose(ours(ids).logits, theirs(ids).logits, atol=1e-5)
    for layer in lora_layers(ours).values():
        layer.merge()
    merged = theirs.merge_and_unload()
    for name, layer in lora_layers(ours).items():
        peft_weight = merged.get_submodule(name).weight
        assert torch.allclose(layer.base_layer.weight, peft_weight, atol=1e-6), name
        assert not torch.allclose(base.get_submodule(name).weight, peft_weight, atol=1e-3)


def test_golden_per_matrix_count():
    assert lora_params_per_matrix(4096, 4096, 8) == 65_536
    assert round(100 * 65_536 / 4096**2, 2) == 0.39  # the article rounds this to 0.4%


def test_golden_llama_31_8b_counts_match_peft_on_meta():
    config = load_architecture("llama-3.1-8b")
    counts = count_parameters(config, ATTENTION, r=16)
    assert counts["total"] == 8_030_261_248
    assert counts["trainable"] == 13_631_488
    assert counts["matrices"] == 4 * 32
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    lora = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.05, target_modules=ATTENTION, task_type="CAUSAL_LM"
    )
    trainable, all_params = get_peft_model(model, lora).get_nb_trainable_parameters()
    assert (trainable, all_params) == (counts["trainable"], counts["peft_all"])
    assert f"{100 * trainable / all_params:.4f}" == "0.1695"


def test_count_matches_peft_on_all_linear_layers_of_another_architecture():
    config = load_architecture("smollm2-360m-instruct")
    targets = ATTENTION + ["gate_proj", "up_proj", "down_proj"]
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    trainable, _ = get_peft_model(
        model, LoraConfig(r=8, target_modules=targets)
    ).get_nb_trainable_parameters()
    assert count_parameters(config, targets, r=8)["trainable"] == trainable


def test_adapter_bytes_scale_with_dtype_and_reject_nonsense():
    config = load_architecture("llama-3.1-8b")
    assert adapter_bytes(config, ATTENTION, 16, torch.float32) == 4 * 13_631_488
    assert adapter_bytes(config, ATTENTION, 16, "bfloat16") == 2 * 13_631_488
    with pytest.raises(CourseError, match="dtype"):
        adapter_bytes(config, ATTENTION, 16, "float13")


def test_relative_error_by_rank_matches_truncated_svd():
    torch.manual_seed(0)
    m = torch.randn(20, 6) @ torch.randn(6, 15) + 0.01 * torch.randn(20, 15)
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    err = relative_error_by_rank(s)
    assert err[0] == pytest.approx(1.0) and err[-1] == 0
    for k in (1, 3, 6):
        approx = u[:, :k] @ torch.diag(s[:k]) @ vh[:k]
        assert err[k] == pytest.approx(((m - approx).norm() / m.norm()).item(), rel=1e-4)
    assert err[6] < 0.01  # a rank-6 matrix plus a little noise: rank 6 captures nearly all of it
