"""The bundled architecture configs rebuild the published parameter counts, offline."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from ftcourse import CourseError
from ftcourse.architectures import HUB_IDS, list_architectures, load_architecture
from ftcourse.paths import ARCHITECTURES_DIR

# Parameter counts the model cards / safetensors metadata publish (tied embeddings counted once).
PUBLISHED = {
    "llama-3.1-8b": 8_030_261_248,
    "mistral-7b-v0.3": 7_248_023_552,
    "qwen2.5-1.5b-instruct": 1_543_714_304,
    "qwen2.5-7b-instruct": 7_615_616_512,
    "smollm2-360m-instruct": 361_821_120,
    "smollm2-1.7b-instruct": 1_711_376_384,
    "qwen3-1.7b": 1_720_574_976,
    "qwen3-8b": 8_190_735_360,
    "llama-3.2-1b-instruct": 1_235_814_400,
    "gemma-3-1b-it": 999_885_952,
    "lfm2-1.2b": 1_170_340_608,
}


def test_every_bundled_config_has_a_source():
    assert list_architectures(every=True) == sorted(HUB_IDS)
    assert list_architectures() == sorted(set(HUB_IDS) - {"lfm2-1.2b"})  # convolutions: not Llama
    readme = (ARCHITECTURES_DIR / "README.md").read_text()
    for name, hub_id in HUB_IDS.items():
        assert f"{name}.json" in readme and hub_id in readme


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_config_rebuilds_the_published_parameter_count(name):
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(load_architecture(name))
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED[name]


def test_load_by_hub_id_gives_the_same_config():
    by_hub = load_architecture("meta-llama/Llama-3.1-8B")
    by_name = load_architecture("llama-3.1-8b")
    assert by_hub.to_dict() == by_name.to_dict()
    assert (by_name.hidden_size, by_name.num_key_value_heads) == (4096, 8)


def test_unknown_name_says_what_exists():
    with pytest.raises(CourseError, match="llama-3.1-8b"):
        load_architecture("gpt-5")
