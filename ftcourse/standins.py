"""CPU stand-ins for the GPU profiles' Hub models: tiny random models of the same family, built offline.

A GPU profile cannot run here (no GPU, no Hub), but most of what breaks on one is not the size of
the model: it is the family's conventions. A stand-in keeps those and shrinks the rest:

- the architecture class and its features (Qwen2's q/k/v biases, Qwen3's q/k norms, Llama 3's rope
  scaling, Gemma 3's sliding-window layers, LFM2's convolution layers, tied or untied embeddings),
  from the bundled config in data/architectures/, cut to 2 layers of width 64 (`shrink_config`);
- an embedding with more rows than the tokenizer has tokens, as the real models have;
- a tokenizer with the family's special tokens, BOS/EOS/pad conventions and the chat template its
  real tokenizer ships (read from the installed trl, which stores the originals);
- the sampling defaults and stop tokens of the real model's generation_config.json.

The vocabulary itself is the course tokenizer's byte-level BPE. Weights are random (seeded), so a
stand-in checks code paths (masks, templates, saving, merging, switching), never accuracy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from ftcourse.chat import trl_template
from ftcourse.errors import CourseError
from ftcourse.paths import ARCHITECTURES_DIR, BASE_MODEL_DIR, BUILD_DIR

VERSION = 1  # bump to rebuild stand-ins made by an older version of this module
STANDINS_DIR = BUILD_DIR / "standins"
SHRINK = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
)
# Fields some family's config uses to restate a size SHRINK changes: they follow it.
RESTATED = dict(
    max_window_layers="num_hidden_layers",  # Qwen: layers that may use the sliding window
    query_pre_attn_scalar="head_dim",  # Gemma 3 1B: attention scores scaled by 1/sqrt(head_dim)
    block_dim="hidden_size",  # LFM2 restates the width, heads and MLP size under its own names
    conv_dim="hidden_size",
    conv_dim_out="hidden_size",
    num_heads="num_attention_heads",
    block_ff_dim="intermediate_size",
)
SLIDING_WINDOW = 32  # tokens: shorter than the course's examples, so sliding layers really slide


@dataclass(frozen=True)
class Family:
    """A model family's tokenizer conventions, as its published tokenizer and generation files have them."""

    template: str  # the file in trl/chat_templates/ holding the family's own chat template
    special: tuple[str, ...]  # special tokens, in the order of their ids
    eos: str
    pad: str | None
    bos: str | None
    add_bos: bool  # whether encoding any text puts BOS in front (Llama 3's tokenizer does)
    extra: tuple[str, ...] = ()  # added tokens that are not special (Qwen's <tool_call>)
    generation: dict = field(default_factory=dict)  # generation_config.json: sampling defaults
    stop: tuple[str, ...] = ()  # the tokens generation_config.json stops at (default: EOS)


QWEN_INSTRUCT = Family(
    template="qwen2_5",
    special=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
    eos="<|im_end|>",  # Instruct models end a turn and the text at once
    pad="<|endoftext|>",
    bos=None,
    add_bos=False,
    extra=("<tool_call>", "</tool_call>"),
    stop=("<|im_end|>", "<|endoftext|>"),
)
QWEN3 = replace(  # the hybrid thinking models: Qwen3-1.7B, Qwen3-8B
    QWEN_INSTRUCT,
    template="qwen3",
    extra=("<tool_call>", "</tool_call>", "<think>", "</think>"),  # not special: decoded as text
    generation=dict(do_sample=True, temperature=0.6, top_p=0.95, top_k=20),
)
LLAMA_3_1_BASE = Family(
    template="llama3_1",
    special=(
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|finetune_right_pad_id|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eom_id|>",
        "<|eot_id|>",
        "<|python_tag|>",
    ),
    eos="<|end_of_text|>",  # the base model's: chat turns end with <|eot_id|> instead
    pad=None,  # Llama 3 ships without a pad token
    bos="<|begin_of_text|>",
    add_bos=True,
    generation=dict(do_sample=True, temperature=0.6, top_p=0.9),
)
LLAMA_3_2_INSTRUCT = replace(
    LLAMA_3_1_BASE,
    template="llama3_2",
    eos="<|eot_id|>",  # the Instruct tokenizer's EOS is the end of a turn
    stop=("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"),
)
GEMMA_3_IT = Family(
    template="gemma3",
    special=("<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"),
    eos="<eos>",  # turns end with <end_of_turn>, which generation_config.json stops at too
    pad="<pad>",
    bos="<bos>",
    add_bos=True,  # and the template writes <bos> itself: render, then encode without specials
    generation=dict(do_sample=True, top_k=64, top_p=0.95),
    stop=("<eos>", "<end_of_turn>"),
)
LFM2 = Family(
    template="lfm2_v2",  # the revision LiquidAI/LFM2-1.2B ships now (trl's README)
    special=(
        "<|pad|>",
        "<|startoftext|>",
        "<|endoftext|>",
        "<|fim_pre|>",
        "<|fim_mid|>",
        "<|fim_suf|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|tool_list_start|>",
        "<|tool_list_end|>",
        "<|tool_call_start|>",
        "<|tool_call_end|>",
        "<|tool_response_start|>",
        "<|tool_response_end|>",
    ),
    eos="<|im_end|>",
    pad="<|pad|>",
    bos="<|startoftext|>",
    add_bos=True,  # and the template writes it too, as Gemma's does
)
# architecture (data/architectures/<name>.json) -> (family, sampling defaults of that model)
FAMILIES: dict[str, tuple[Family, dict]] = {
    "qwen2.5-1.5b-instruct": (
        QWEN_INSTRUCT,
        dict(do_sample=True, temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.1),
    ),
    "qwen2.5-7b-instruct": (
        QWEN_INSTRUCT,
        dict(do_sample=True, temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05),
    ),
    "llama-3.1-8b": (LLAMA_3_1_BASE, LLAMA_3_1_BASE.generation),
    "qwen3-1.7b": (QWEN3, QWEN3.generation),
    "qwen3-8b": (QWEN3, QWEN3.generation),
    "llama-3.2-1b-instruct": (LLAMA_3_2_INSTRUCT, LLAMA_3_2_INSTRUCT.generation),
    "gemma-3-1b-it": (GEMMA_3_IT, GEMMA_3_IT.generation),
    "lfm2-1.2b": (LFM2, LFM2.generation),
}


def family_standins() -> list[str]:
    """The architectures a stand-in can be built for, in the order above."""
    return list(FAMILIES)


def standin_path(architecture: str) -> Path:
    """Where the stand-in for a bundled architecture lives (built by `ensure_standin`)."""
    return STANDINS_DIR / architecture


def ensure_standin(architecture: str) -> Path:
    """Build the stand-in for `architecture` unless an up-to-date one exists; return its folder."""
    if architecture not in FAMILIES:
        raise CourseError(
            f"No stand-in is defined for {architecture!r}; known: {', '.join(FAMILIES)}."
        )
    out = standin_path(architecture)
    stamp = out / "standin.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("version") == VERSION:
        return out
    family, sampling = FAMILIES[architecture]
    tokenizer = build_tokenizer(family)
    model = build_model(architecture, tokenizer, family, sampling)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    stamp.write_text(json.dumps({"version": VERSION, "architecture": architecture}) + "\n")
    return out


def build_tokenizer(family: Family):
    """The course's BPE vocabulary with the family's special tokens, conventions and chat template."""
    from tokenizers import AddedToken, Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    spec = json.loads((BASE_MODEL_DIR / "tokenizer.json").read_text(encoding="utf-8"))
    spec["added_tokens"] = []  # the course's own special tokens: not this family's
    backend = Tokenizer.from_str(json.dumps(spec))
    backend.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in family.special]
    )
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in family.extra])
    if family.add_bos:
        bos_id = backend.token_to_id(family.bos)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{family.bos} $A", pair=f"{family.bos} $A {family.bos} $B",
            special_tokens=[(family.bos, bos_id)],
        )  # fmt: skip
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=family.bos,
        eos_token=family.eos,
        pad_token=family.pad,
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = trl_template(family.template)
    return tokenizer


def shrink_config(values: dict) -> dict:
    """A published config.json's values cut to SHRINK's sizes, keeping one layer of each kind.

    Fields that restate a size (RESTATED) follow it; a config with several kinds of layer (Gemma 3's
    sliding and full attention, LFM2's convolutions and attention) keeps the first layer of each
    kind, in their order, instead of the first two layers; a sliding window in use gets shorter.
    """
    from transformers import CONFIG_MAPPING

    values = {k: v for k, v in values.items() if k not in ("torch_dtype", "transformers_version")}
    values.pop("architectures", None)
    full = CONFIG_MAPPING[values["model_type"]](
        **{k: v for k, v in values.items() if k != "model_type"}
    )
    out = values | SHRINK
    for key, size in RESTATED.items():
        if key in values:
            out[key] = SHRINK[size]
    kinds = list(dict.fromkeys(getattr(full, "layer_types", None) or ()))
    if kinds:
        layers = max(SHRINK["num_hidden_layers"], len(kinds))
        out |= dict(
            num_hidden_layers=layers, layer_types=kinds + kinds[-1:] * (layers - len(kinds))
        )
        out.pop("full_attn_idxs", None)  # LFM2's other way of saying which layers attend
        out.pop("sliding_window_pattern", None)  # Gemma 3's
    if "sliding_attention" in kinds:
        out["sliding_window"] = SLIDING_WINDOW
    return out


def build_model(architecture: str, tokenizer, family: Family, sampling: dict, seed: int = 0):
    """A randomly initialised model of the architecture's class and features, 2 layers of width 64."""
    import torch
    from transformers import CONFIG_MAPPING, AutoModelForCausalLM, GenerationConfig

    values = shrink_config(json.loads((ARCHITECTURES_DIR / f"{architecture}.json").read_text()))
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (*family.special, family.eos)}
    values |= dict(
        vocab_size=-(-len(tokenizer) // 64) * 64,  # more rows than tokens, as the real models have
        bos_token_id=ids.get(family.bos, ids[family.special[0]]),
        eos_token_id=ids[family.eos],
        pad_token_id=ids.get(family.pad) if family.pad else None,
    )
    config = CONFIG_MAPPING[values.pop("model_type")](**values)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)  # as the Hub ships it
    stops = [ids[t] for t in family.stop] or ids[family.eos]
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=stops,
        pad_token_id=config.pad_token_id,
        **sampling,
    )
    return model
