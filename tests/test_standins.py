"""CPU stand-ins for the GPU profiles: their family's conventions, and the GPU-path bugs they catch.

Each test here names the problem it guards against; on the code before the stand-ins (a T4 that
reported bf16, a gated 8B base with a template trl rejects, an EOS check that Qwen's template fails,
greedy decoding that applied an Instruct model's repetition penalty) it fails.
"""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftcourse.architectures import load_architecture
from ftcourse.chat import last_token, loss_mask, prepare_tokenizer, training_template, trl_template
from ftcourse.evaluate import generate, stop_ids
from ftcourse.profiles import PROFILES, ensure_available
from ftcourse.standins import FAMILIES, standin_path
from ftcourse.tasks import load_task

STANDINS = [p for p in PROFILES.values() if p.is_standin]


@pytest.fixture(scope="module", params=[p.name for p in STANDINS])
def standin(request):
    profile = ensure_available(PROFILES[request.param])
    tokenizer = AutoTokenizer.from_pretrained(profile.model_path)
    return profile, tokenizer


def test_every_gpu_profile_has_a_standin_of_its_architecture():
    gpu = {p.name for p in PROFILES.values() if p.needs_cuda}
    assert {p.standin_for for p in STANDINS} == gpu
    for p in STANDINS:
        real = PROFILES[p.standin_for]
        assert p.architecture == real.architecture and p.architecture in FAMILIES
        assert (p.compute_dtype, p.target_modules, p.chat_template, p.end_of_turn) == (
            real.compute_dtype,
            real.target_modules,
            real.chat_template,
            real.end_of_turn,
        )
        assert not p.needs_cuda and p.opt_in and p.model_path == str(standin_path(p.architecture))


def test_standin_keeps_the_family_conventions(standin):
    profile, tokenizer = standin
    family, sampling = FAMILIES[profile.architecture]
    model = AutoModelForCausalLM.from_pretrained(profile.model_path)
    with torch.device("meta"):  # the real model's class, without its memory
        real = type(AutoModelForCausalLM.from_config(load_architecture(profile.architecture)))
    assert type(model) is real, (type(model), real)
    assert model.config.vocab_size > len(tokenizer), (
        "more embedding rows than tokens, as on the Hub"
    )
    assert model.config.num_hidden_layers == 2 and model.num_parameters() < 2_000_000
    assert tokenizer.chat_template == trl_template(family.template), "the family's own template"
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token) == (
        family.eos,
        family.pad,
        family.bos,
    )
    for key, value in sampling.items():
        assert getattr(model.generation_config, key) == value
    ids = tokenizer("def f(): pass")["input_ids"]
    assert (ids[0] == tokenizer.bos_token_id) == family.add_bos
    qwen = profile.architecture.startswith("qwen")
    assert bool(model.config.tie_word_embeddings) == (
        profile.architecture == "qwen2.5-1.5b-instruct"
    )
    has_bias = model.model.layers[0].self_attn.q_proj.bias is not None
    assert has_bias == qwen, "Qwen2 has q/k/v biases, Llama and Mistral none"


def test_qwen_template_is_swapped_by_trl_and_ends_answers_with_a_newline():
    """Notebook 04 checked `learned.endswith(tokenizer.eos_token)`: false on Qwen's template."""
    profile = ensure_available(PROFILES["t4-standin"])
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(profile.model_path), profile)
    template, how = training_template(tokenizer)
    assert template == trl_template("qwen2_5_training") and "trl" in how
    messages = load_task("polite", "train")[0]["messages"]
    ids, mask, _ = loss_mask(tokenizer, messages)
    trained = [i for i, m in zip(ids, mask, strict=True) if m]
    text = tokenizer.decode(trained)
    assert text.endswith("<|im_end|>\n") and not text.endswith(tokenizer.eos_token)
    assert last_token(tokenizer, trained) == tokenizer.eos_token_id


def test_llama_3_1_template_is_refused_by_trl_and_the_profile_supplies_one(tmp_path):
    """The gated gpu-24gb profile of before used Llama-3.1-8B, whose template makes trl raise."""
    from peft import get_peft_model
    from trl import SFTTrainer

    from ftcourse.trainer import lora_config, sft_config

    profile = ensure_available(PROFILES["llama-3.1-8b-standin"])
    raw = AutoTokenizer.from_pretrained(profile.model_path)
    raw.pad_token = raw.eos_token
    model = AutoModelForCausalLM.from_pretrained(profile.model_path, dtype=torch.float32)
    data = load_task("polite", "train").select(range(8))
    profile = profile.with_overrides(compute_dtype="float32", max_steps=1)
    args = sft_config(profile, tmp_path, eval_strategy="no")  # no validation set here
    with pytest.raises(ValueError, match="not training-compatible"):
        SFTTrainer(model=model, args=args, train_dataset=data, processing_class=raw)

    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(profile.model_path), profile)
    assert tokenizer.eos_token == "<|eot_id|>" and tokenizer.pad_token == "<|end_of_text|>"
    trainer = SFTTrainer(
        model=get_peft_model(model, lora_config(profile)),
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
    )
    labels = next(iter(trainer.get_train_dataloader()))["labels"][0]
    assert last_token(tokenizer, labels[labels != -100]) == tokenizer.convert_tokens_to_ids(
        "<|eot_id|>"
    )
    trainer.train()
    ends = stop_ids(model, tokenizer)
    assert ends[0] == tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert tokenizer.convert_tokens_to_ids("<|end_of_text|>") in ends


def test_greedy_generation_ignores_the_models_sampling_defaults(standin):
    """An Instruct model's generation_config.json carries a repetition penalty `generate` applied."""
    profile, tokenizer = standin
    model = AutoModelForCausalLM.from_pretrained(profile.model_path, dtype=torch.float32).eval()
    tokenizer = prepare_tokenizer(tokenizer, profile)
    model.generation_config.repetition_penalty = 3.0  # an extreme default makes the effect certain
    conversation = [{"role": "user", "content": "Return the size of the list."}]
    answer = generate(model, tokenizer, [conversation], max_new_tokens=12, progress=False)[0]
    ids = tokenizer.apply_chat_template(
        conversation, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    prompt_len = ids.shape[1]
    with torch.no_grad():  # greedy by hand: the most likely token, 12 times (or until a stop)
        for _ in range(12):
            nxt = model(input_ids=ids).logits[0, -1].argmax()
            if nxt.item() in stop_ids(model, tokenizer):
                break
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    expected = tokenizer.decode(ids[0, prompt_len:], skip_special_tokens=True).strip()
    assert answer == expected


def test_a_standin_is_rebuilt_when_the_code_that_builds_it_changes(tmp_path, monkeypatch):
    """Each stand-in is stamped with `VERSION`: a current one is kept, an older or unstamped one
    (a build cut off before its stamp) is built again."""
    import json

    from ftcourse import standins

    monkeypatch.setattr(standins, "STANDINS_DIR", tmp_path)
    built = []
    build = standins.build_model

    def counted(*args, **kwargs):
        built.append(args[0])
        return build(*args, **kwargs)

    monkeypatch.setattr(standins, "build_model", counted)
    out = standins.ensure_standin("llama-3.1-8b")
    stamp = out / "standin.json"
    assert out == tmp_path / "llama-3.1-8b" and built == ["llama-3.1-8b"]
    assert json.loads(stamp.read_text()) == {"version": standins.VERSION, "architecture": built[0]}
    assert standins.ensure_standin("llama-3.1-8b") == out and len(built) == 1, "kept as it is"
    monkeypatch.setattr(standins, "VERSION", standins.VERSION + 1)
    (out / "config.json").write_text("{}")  # what the older code made is no longer loadable
    assert standins.ensure_standin("llama-3.1-8b") == out and len(built) == 2
    assert json.loads(stamp.read_text())["version"] == standins.VERSION
    assert AutoModelForCausalLM.from_pretrained(out).config.num_hidden_layers == 2
    stamp.unlink()
    standins.ensure_standin("llama-3.1-8b")
    assert len(built) == 3 and stamp.is_file()
