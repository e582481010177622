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
from ftcourse.standins import FAMILIES, family_standins, standin_path
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


def test_qwen_template_is_swapped_by_trl_and_ends_answers_with_a_newline():
    """Notebook 04 checked `learned.endswith(tokenizer.eos_token)`: false on Qwen's template."""
    profile = ensure_available(PROFILES["t4-standin"])
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(profile.model_path), profile)
    template, how = training_template(tokenizer)
    family = FAMILIES[profile.architecture][
        0
    ]  # Qwen2.5 or Qwen3: trl has a training version of each
    assert template == trl_template(f"{family.template}_training") and "trl" in how
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
        conversation,
        add_generation_prompt=True,
        enable_thinking=False,  # as `generate` prompts Qwen3
        return_tensors="pt",
        return_dict=True,
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


# What each model's published tokenizer and generation_config.json do, written out here (not read
# from ftcourse.standins) so that a wrong Family fails: BOS, EOS, pad, whether encoding adds BOS,
# the tokens generation stops at, tokens that must stay one special token, added tokens that are
# not special (kept when decoding), the sampling defaults, and trl's file for the chat template.
QWEN_25 = dict(
    bos=None, eos="<|im_end|>", pad="<|endoftext|>", adds_bos=False,
    stops=("<|im_end|>", "<|endoftext|>"), special=("<|im_start|>", "<|im_end|>"),
    plain=("<tool_call>", "</tool_call>"), template="qwen2_5",
)  # fmt: skip
QWEN_3 = QWEN_25 | dict(
    plain=("<tool_call>", "</tool_call>", "<think>", "</think>"), template="qwen3",
    sampling=dict(do_sample=True, temperature=0.6, top_p=0.95, top_k=20),
)  # fmt: skip
LLAMA_3 = dict(
    bos="<|begin_of_text|>", pad=None, adds_bos=True, plain=(),
    special=("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    sampling=dict(do_sample=True, temperature=0.6, top_p=0.9),
)  # fmt: skip
REAL = {
    "qwen2.5-1.5b-instruct": QWEN_25
    | dict(sampling=dict(temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.1)),
    "qwen2.5-7b-instruct": QWEN_25
    | dict(sampling=dict(temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05)),
    "llama-3.1-8b": LLAMA_3
    | dict(eos="<|end_of_text|>", stops=("<|end_of_text|>",), template="llama3_1"),
    "qwen3-1.7b": QWEN_3,
    "qwen3-8b": QWEN_3,
    "llama-3.2-1b-instruct": LLAMA_3
    | dict(
        eos="<|eot_id|>",
        stops=("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"),
        template="llama3_2",
    ),
    "gemma-3-1b-it": dict(
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        adds_bos=True,
        stops=("<eos>", "<end_of_turn>"),
        special=("<start_of_turn>", "<end_of_turn>"),
        plain=(),
        template="gemma3",
        sampling=dict(do_sample=True, top_k=64, top_p=0.95),
    ),
    "lfm2-1.2b": dict(
        bos="<|startoftext|>",
        eos="<|im_end|>",
        pad="<|pad|>",
        adds_bos=True,
        stops=("<|im_end|>",),
        special=("<|im_start|>", "<|im_end|>"),
        plain=(),
        sampling={},
        template="lfm2_v2",
    ),
}
BUILD_SECONDS = 30  # generous: each took well under a second on the 2-core machine


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory):
    """Every family's stand-in, built from scratch into a fresh folder; how long each took."""
    import time

    from ftcourse import standins

    seconds = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(standins, "STANDINS_DIR", tmp_path_factory.mktemp("standins"))
        for architecture in family_standins():
            start = time.perf_counter()
            standins.ensure_standin(architecture)
            seconds[architecture] = time.perf_counter() - start
        return standins.STANDINS_DIR, seconds


def test_every_family_has_its_real_conventions_written_out():
    assert set(family_standins()) == set(FAMILIES) == set(REAL)


@pytest.mark.parametrize("architecture", family_standins())
def test_family_standin_has_the_real_tokenizer_conventions(family_dir, architecture):
    root, seconds = family_dir
    assert seconds[architecture] < BUILD_SECONDS, seconds
    real = REAL[architecture]
    tokenizer = AutoTokenizer.from_pretrained(root / architecture)
    assert tokenizer.chat_template == trl_template(real["template"]), "byte for byte, after saving"
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (
        real["bos"],
        real["eos"],
        real["pad"],
    )
    ids = tokenizer("def f(): pass")["input_ids"]
    assert (ids[0] == tokenizer.bos_token_id) == real["adds_bos"]
    for token in (*real["special"], *real["plain"]):
        one = tokenizer(token, add_special_tokens=False)["input_ids"]
        assert len(one) == 1, (token, one)
        kept = tokenizer.decode(one, skip_special_tokens=True) == token
        assert kept == (token in real["plain"]), f"{token} special: {not kept}"


@pytest.mark.parametrize("architecture", family_standins())
def test_family_standin_renders_a_prompt_that_prefixes_the_answer(family_dir, architecture):
    """trl's prompt/completion path renders the prompt with the generation prompt, then the whole."""
    tokenizer = AutoTokenizer.from_pretrained(family_dir[0] / architecture)
    thinking = {"enable_thinking": False} if architecture.startswith("qwen3") else {}
    question = [{"role": "user", "content": "Return the size of the list."}]
    answer = [{"role": "assistant", "content": "len(xs)"}]
    prompt = tokenizer.apply_chat_template(
        question, add_generation_prompt=True, tokenize=False, **thinking
    )
    whole = tokenizer.apply_chat_template(question + answer, tokenize=False, **thinking)
    assert whole.startswith(prompt) and whole[len(prompt) :].startswith("len(xs)"), (prompt, whole)


@pytest.mark.parametrize("architecture", family_standins())
def test_family_standin_is_the_real_architecture_cut_down(family_dir, architecture):
    model = AutoModelForCausalLM.from_pretrained(family_dir[0] / architecture)
    config = load_architecture(architecture)
    with torch.device("meta"):
        real = AutoModelForCausalLM.from_config(config)
    assert type(model) is type(real)
    assert model.config.num_hidden_layers <= 2 and model.num_parameters() < 2_000_000

    def parts(m):  # parameter names with the layer number dropped: q_proj.bias, q_norm, conv, ...
        return {
            ".".join(p for p in name.split(".") if not p.isdigit())
            for name, _ in m.named_parameters()
        }

    assert parts(model) == parts(real), "every kind of layer and weight, and nothing else"
    assert model.config.tie_word_embeddings == config.tie_word_embeddings
    kinds = set(getattr(config, "layer_types", None) or ())
    assert set(getattr(model.config, "layer_types", None) or ()) == kinds


@pytest.mark.parametrize("architecture", family_standins())
def test_family_standin_generates_and_stops_at_each_stop_token(family_dir, architecture):
    from transformers import LogitsProcessor, LogitsProcessorList

    real = REAL[architecture]
    tokenizer = AutoTokenizer.from_pretrained(family_dir[0] / architecture)
    model = AutoModelForCausalLM.from_pretrained(family_dir[0] / architecture, dtype=torch.float32)
    for key, value in real["sampling"].items():
        assert getattr(model.generation_config, key) == value, key
    chat = [{"role": "user", "content": "Return the size of the list."}]
    ids = tokenizer.apply_chat_template(
        chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    loss = model(input_ids=ids, labels=ids).loss
    assert torch.isfinite(loss)
    stops = tokenizer.convert_tokens_to_ids(list(real["stops"]))

    class Force(LogitsProcessor):  # no stop token but `token`, which comes third
        def __init__(self, token):
            self.token = token

        def __call__(self, input_ids, scores):
            scores[:, stops] = -float("inf")
            if input_ids.shape[1] == ids.shape[1] + 2:
                scores[:] = -float("inf")
                scores[:, self.token] = 0.0
            return scores

    for stop in stops:
        out = model.generate(
            ids,
            do_sample=False,
            max_new_tokens=8,
            logits_processor=LogitsProcessorList([Force(stop)]),
        )
        assert out[0, ids.shape[1] :].tolist()[2:] == [stop], tokenizer.convert_ids_to_tokens(stop)
