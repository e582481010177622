"""ftcourse.memory: golden byte counts, behaviour, and the estimate against real training steps."""

import math

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

from ftcourse import CourseError, memory
from ftcourse.architectures import tiny_llama_config
from ftcourse.lora import count_parameters
from ftcourse.profiles import ALL_LINEAR, PROFILES
from ftcourse.runfile import METHODS

# peft 0.21 calls transformers' deprecated `is_gradient_checkpointing`; the warning is theirs.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"
)

LLAMA_8B = 8_030_261_248
BASE = PROFILES["cpu-tiny"]


@pytest.fixture(scope="module")
def llama():
    return memory.as_config("llama-3.1-8b")


# ---------------------------------------------------------------- golden values


def test_llama_8b_bf16_weights_are_16_06_gb(llama):
    b = memory.estimate(llama, "lora", compute_dtype="bfloat16")
    assert b.weights == LLAMA_8B * 2
    assert round(b.weights / memory.GB, 2) == 16.06


def test_full_fine_tuning_is_16_bytes_per_parameter_zero(llama):
    """ZeRO, section 3.1: 2 (fp16 weights) + 2 (fp16 grads) + 12 (fp32 master, m, v)."""
    b = memory.estimate(llama, "full", compute_dtype="bfloat16")
    assert b.weights + b.gradients + b.optimizer == 16 * LLAMA_8B
    assert b.optimizer == 12 * LLAMA_8B


def test_fp32_full_fine_tuning_is_also_16_bytes_per_parameter(llama):
    b = memory.estimate(llama, "full", compute_dtype="float32", device="cpu")
    assert b.weights + b.gradients + b.optimizer == 16 * LLAMA_8B


def test_8bit_adam_is_about_2_bytes_per_trainable_parameter(llama):
    trainable = count_parameters(llama, memory.ATTENTION, 16)["trainable"]
    b = memory.estimate(llama, "qlora", optimizer="paged_adamw_8bit")
    assert b.optimizer == pytest.approx(2 * trainable, rel=0.02)
    assert memory.estimate(llama, "qlora").optimizer == 8 * trainable


def test_nf4_costs_4_5_bits_or_4_127_with_double_quantization():
    """QLoRA paper: an fp32 absmax per 64 weights adds 0.5 bit; double quantization 0.127."""
    n = 4096 * 14336
    assert memory.nf4_bytes(n) * 8 / n == pytest.approx(4.5, abs=1e-3)
    assert memory.nf4_bytes(n, double_quant=True) * 8 / n == pytest.approx(4.127, abs=1e-3)


def test_bitsandbytes_leaves_embeddings_and_lm_head_unquantized(llama):
    sizes = memory.quantized_weight_sizes(llama)
    assert len(sizes) == 7 * llama.num_hidden_layers  # q, k, v, o, gate, up, down per layer
    embeddings = 2 * llama.vocab_size * llama.hidden_size  # embed_tokens and lm_head (untied)
    norms = (2 * llama.num_hidden_layers + 1) * llama.hidden_size
    assert sum(sizes) == LLAMA_8B - embeddings - norms


def test_qlora_8b_weights_about_6_gb_and_half_is_the_16_bit_embeddings(llama):
    b = memory.estimate(llama, "qlora", double_quant=True)
    assert 5.5e9 < b.weights < 6.2e9
    assert memory.estimate(llama, "qlora").weights > b.weights  # double quantization saves


def test_logits_for_a_128k_vocabulary(llama):
    b = memory.estimate(llama, "qlora", seq_len=2048, batch_size=4)
    assert b.logits == 2048 * 4 * 128_256 * memory.LOGITS_BYTES
    assert b.logits > 12e9  # more than the 4-bit model itself


def test_cuda_overhead_only_on_gpu(llama):
    assert memory.estimate(llama, device="cuda").overhead > 0.5e9
    assert memory.estimate(llama, device="cpu").overhead == 0


# ---------------------------------------------------------------- behaviour


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("checkpointing", [False, True])
def test_monotonic_in_batch_and_sequence_length(llama, method, checkpointing):
    def total(**kw):
        return memory.estimate(llama, method, gradient_checkpointing=checkpointing, **kw).total

    batches = [total(batch_size=b, seq_len=512) for b in (1, 2, 4, 8)]
    lengths = [total(batch_size=1, seq_len=n) for n in (128, 512, 2048, 8192)]
    assert batches == sorted(batches) and len(set(batches)) == 4
    assert lengths == sorted(lengths) and len(set(lengths)) == 4


def test_methods_order_and_checkpointing_saves_activations(llama):
    full, lora, qlora = (memory.estimate(llama, m, seq_len=1024) for m in METHODS)
    assert full.total > lora.total > qlora.total
    kept = memory.estimate(llama, "qlora", seq_len=1024, gradient_checkpointing=True)
    assert kept.activations < qlora.activations / 10


def test_largest_batch_and_seq_len_are_the_edge_of_fitting(llama):
    kw = dict(method="qlora", gradient_checkpointing=True)
    b = memory.largest_batch(llama, "T4 (15 GB)", seq_len=1024, **kw)
    assert b >= 1
    assert memory.estimate(llama, batch_size=b, seq_len=1024, **kw).fits("T4 (15 GB)")
    assert not memory.estimate(llama, batch_size=b + 1, seq_len=1024, **kw).fits(15.0)
    n = memory.largest_seq_len(llama, 24, batch_size=1, **kw)
    assert memory.estimate(llama, seq_len=n, **kw).fits(24)
    assert not memory.estimate(llama, seq_len=n + 1, **kw).fits(24)
    assert memory.largest_batch(llama, 4, method="full") == 0  # nothing fits


def test_fits_and_report():
    b = memory.Breakdown(weights=10e9, activations=4e9)
    assert b.total == 14e9 and b.fits("T4 (15 GB)") and b.fits(14) and not b.fits(13.9)
    assert "fits 24 GB: yes" in b.report()
    with pytest.raises(CourseError, match="Unknown GPU"):
        b.fits("A100")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="dora"), "method"),
        (dict(optimizer="sgd"), "optimizer"),
        (dict(compute_dtype="float8"), "dtype"),
        (dict(batch_size=0), "batch_size"),
    ],
)
def test_bad_input_says_what_to_do(llama, kwargs, message):
    with pytest.raises(CourseError, match=message):
        memory.estimate(llama, **kwargs)


def test_every_bundled_config_and_a_model_folder_is_accepted():
    from ftcourse.architectures import list_architectures, load_architecture
    from ftcourse.ownmodel import linear_modules

    for name in list_architectures(every=True):  # LFM2 names its layers otherwise: by their names
        config = load_architecture(name)
        assert memory.estimate(config, "qlora", target_modules=linear_modules(config)).total > 0
    profile = memory.estimate_for_profile(BASE)
    assert profile.overhead == 0 and profile.weights < 10e6  # the ~4M-parameter base, nf4


# ---------------------------------------------------------------- estimate against measurement


def _model(method: str, path: str, **lora):
    if method == "qlora":
        bnb = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32
        )
        model = AutoModelForCausalLM.from_pretrained(path, quantization_config=bnb)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if method != "full":
        config = LoraConfig(
            r=lora.get("r", BASE.lora_r),
            lora_alpha=BASE.lora_alpha,
            lora_dropout=lora.get("dropout", BASE.lora_dropout),
            target_modules=list(lora.get("targets", BASE.target_modules)),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, config)
    return model.train()


def _measure(model, seq_len: int, batch_size: int, vocab: int):
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], fused=True)
    ids = torch.randint(vocab, (batch_size, seq_len))
    return memory.measure_training_step(model, optimizer, ids)


@pytest.mark.parametrize("method", METHODS)
def test_estimate_within_10_percent_of_a_real_step_on_the_base_model(method):
    """The cpu-tiny profile's model, length and LoRA settings; parameters, gradients and optimizer
    state counted from the real tensors, activations and logits as alive at the step's peak."""
    seq_len, batch = BASE.max_length, 1
    model = _model(method, BASE.model_path)
    measured = _measure(model, seq_len, batch, model.config.vocab_size)
    est = memory.estimate_for_profile(BASE, method=method, batch_size=batch)
    assert est.total == pytest.approx(measured.total, rel=0.10)
    # the exactly countable parts match to the byte (the optimizer adds a 4-byte step counter
    # per tensor), and the activations to well within the 10%
    for part in ("weights", "lora", "gradients"):
        assert getattr(est, part) == getattr(measured, part), part
    assert est.optimizer == pytest.approx(measured.optimizer, rel=1e-3)
    assert est.activations == pytest.approx(measured.activations, rel=0.02)
    assert est.logits == measured.logits


TINY = tiny_llama_config(vocab_size=512, hidden_size=64, intermediate_size=192)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(TINY).save_pretrained(path)
    return str(path)


@pytest.mark.parametrize(
    "method, targets, dropout, checkpointing, attention",
    [
        ("lora", ("q_proj", "v_proj"), 0.0, False, "sdpa"),
        ("lora", ("gate_proj", "up_proj", "down_proj"), 0.1, False, "sdpa"),
        ("qlora", ALL_LINEAR, 0.05, True, "sdpa"),
        ("lora", memory.ATTENTION, 0.0, False, "eager"),
        ("full", memory.ATTENTION, 0.0, True, "sdpa"),
    ],
)
def test_estimate_follows_targets_dropout_checkpointing_attention(
    tiny_path, method, targets, dropout, checkpointing, attention
):
    model = _model(method, tiny_path, targets=targets, dropout=dropout)
    model.config.use_cache = False
    (model.get_base_model() if method != "full" else model).set_attn_implementation(attention)
    if checkpointing:
        model.activation_checkpointing_enable()
    measured = _measure(model, 64, 2, TINY.vocab_size)
    est = memory.estimate(
        tiny_path,
        method,
        seq_len=64,
        batch_size=2,
        compute_dtype="float32",
        device="cpu",
        target_modules=targets,
        lora_dropout=dropout,
        gradient_checkpointing=checkpointing,
        attention=attention,
    )
    assert est.total == pytest.approx(measured.total, rel=0.10)
    if method != "full" and not checkpointing:  # else the peak is in the backward pass, where
        assert est.activations == pytest.approx(measured.activations, rel=0.02)  # it's modelled
        # only roughly: this tiny vocabulary makes the logits smaller than a layer's working set


def test_measurement_counts_4_bit_weights_with_their_constants(tiny_path):
    model = _model("qlora", tiny_path)
    measured = _measure(model, 16, 1, TINY.vocab_size)
    sizes = memory.quantized_weight_sizes(TINY)
    nf4 = sum(memory.nf4_bytes(n) for n in sizes)
    rest = sum(p.numel() for p in AutoModelForCausalLM.from_config(TINY).parameters()) - sum(sizes)
    assert measured.weights == nf4 + 4 * rest
    assert math.isclose(measured.lora, measured.gradients)
