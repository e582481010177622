"""Model architectures: the config.json of each model the course talks about, bundled for offline use.

Only `config.json` files (a few hundred bytes each, no weights) live in `data/architectures/`;
building a model from one on PyTorch's meta device (`meta_model`, built once per config and shared
by `ftcourse.lora` and `ftcourse.memory`) gives exact parameter counts without downloading anything.
Where each file came from is written in `data/architectures/README.md`.
"""

from __future__ import annotations

from ftcourse.errors import CourseError
from ftcourse.paths import ARCHITECTURES_DIR

_META_MODELS: dict = {}  # memo: config JSON -> the model it describes, on the meta device

# Short name (the file's stem) -> the Hub repository whose config.json the file reproduces.
HUB_IDS: dict[str, str] = {
    "llama-3.1-8b": "meta-llama/Llama-3.1-8B",
    "mistral-7b-v0.3": "mistralai/Mistral-7B-v0.3",
    "qwen2.5-1.5b-instruct": "Qwen/Qwen2.5-1.5B-Instruct",
    "qwen2.5-7b-instruct": "Qwen/Qwen2.5-7B-Instruct",
    "smollm2-360m-instruct": "HuggingFaceTB/SmolLM2-360M-Instruct",
    "smollm2-1.7b-instruct": "HuggingFaceTB/SmolLM2-1.7B-Instruct",
    "qwen3-1.7b": "Qwen/Qwen3-1.7B",
    "qwen3-8b": "Qwen/Qwen3-8B",
    "llama-3.2-1b-instruct": "meta-llama/Llama-3.2-1B-Instruct",
    "gemma-3-1b-it": "google/gemma-3-1b-it",
    "lfm2-1.2b": "LiquidAI/LFM2-1.2B",
}


# The model types built like Llama (q/k/v/o attention in every layer, a gate/up/down MLP): what
# the memory estimate and notebooks 01 and 03 cover. Others (LFM2's convolution blocks) are bundled
# for their CPU stand-ins.
LLAMA_STYLE = ("llama", "mistral", "qwen2", "qwen3", "gemma3_text")


def list_architectures(every: bool = False) -> list[str]:
    """Short names of the bundled Llama-style configs (`every`: all of them), sorted."""
    import json

    paths = sorted(ARCHITECTURES_DIR.glob("*.json"))
    kind = {p.stem: json.loads(p.read_text())["model_type"] for p in paths}
    return [name for name in kind if every or kind[name] in LLAMA_STYLE]


def load_architecture(name: str):
    """A transformers config for a bundled architecture, by short name or Hub id.

    `load_architecture("llama-3.1-8b")` and `load_architecture("meta-llama/Llama-3.1-8B")` give the same config.
    """
    from transformers import AutoConfig

    by_hub_id = {hub.lower(): short for short, hub in HUB_IDS.items()}
    short = by_hub_id.get(name.lower(), name.lower())
    path = ARCHITECTURES_DIR / f"{short}.json"
    if not path.is_file():
        raise CourseError(
            f"No bundled config named {name!r}. Bundled: {', '.join(list_architectures(every=True))} "
            "(or their Hub ids). For another model, use AutoConfig.from_pretrained(hub_id) online, "
            "or add its config.json to data/architectures/ with its source in the README there."
        )
    return AutoConfig.from_pretrained(path)


def meta_model(config):
    """The model a config describes, built on the meta device: shapes only, no memory, no download.

    Built once per config (its JSON is the key) and shared: treat it as read-only.
    """
    import torch
    from transformers import AutoModelForCausalLM

    key = config.to_json_string(use_diff=False)
    if key not in _META_MODELS:
        with torch.device("meta"):
            _META_MODELS[key] = AutoModelForCausalLM.from_config(config)
    return _META_MODELS[key]


def tiny_llama_config(**overrides):
    """A few-thousand-parameter Llama config (GQA: 4 query heads, 2 key/value heads) for quick checks.

    Tests, exercises and the benchmarks' CPU modes build throwaway models from it; pass overrides
    for the sizes a check needs (e.g. `vocab_size=512, hidden_size=64`).
    """
    from transformers import LlamaConfig

    values = dict(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaConfig(**{**values, **overrides})
