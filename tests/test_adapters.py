"""ftcourse.adapters and ftcourse.inference: clear errors for adapters that do not fit, plain-peft
interop, switching and timing.

Tiny random Llama models (built in a second) stand in for real bases; every adapter has a non-zero
lora_B, so "the adapter changes the output" and "the logits match" can actually fail.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import statistics
import subprocess
import sys
import textwrap

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoTokenizer, LlamaForCausalLM

from ftcourse import CourseError
from ftcourse.adapters import (
    _overrides,
    _why_train,
    check_adapter,
    format_bytes,
    is_complete,
    load_adapter,
    weights_bytes,
)
from ftcourse.architectures import tiny_llama_config
from ftcourse.inference import BASE, answer_with, side_by_side, token_latency, using_adapter
from ftcourse.paths import BASE_MODEL_DIR
from ftcourse.profiles import PROFILES

IDS = torch.tensor([[0, 4, 17, 42, 99, 5, 7]])


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def tiny_llama(hidden: int = 32, vocab: int = 128, layers: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    config = tiny_llama_config(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        vocab_size=vocab,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config).eval()


def save_adapter(model, folder, targets=("q_proj", "v_proj"), seed: int = 1):
    """A peft adapter on `model` with random (non-zero) A and B, saved to `folder`."""
    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=list(targets), init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(folder)
    return peft_model


# ---------------------------------------------------------------- reliability


def test_missing_folder_says_so_and_what_to_do(tmp_path):
    with pytest.raises(CourseError, match=r"No adapter folder at .*ensure_adapters"):
        load_adapter(tiny_llama(), tmp_path / "nowhere")


def test_incomplete_folder_names_the_missing_file(tmp_path):
    save_adapter(tiny_llama(), tmp_path / "a")
    (tmp_path / "a" / "adapter_model.safetensors").unlink()
    assert not is_complete(tmp_path / "a")
    with pytest.raises(CourseError, match=r"incomplete: adapter_model.safetensors missing"):
        load_adapter(tiny_llama(), tmp_path / "a")


def test_damaged_config_and_weights_fail_clearly(tmp_path):
    save_adapter(tiny_llama(), tmp_path / "a")
    weights = tmp_path / "a" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CourseError, match=r"cannot be read.*cut off"):
        check_adapter(tiny_llama(), tmp_path / "a")
    (tmp_path / "a" / "adapter_config.json").write_text("{not json")
    with pytest.raises(CourseError, match="not valid JSON"):
        check_adapter(tiny_llama(), tmp_path / "a")


def test_adapter_for_another_hidden_size_names_both_sizes(tmp_path):
    save_adapter(tiny_llama(hidden=48), tmp_path / "wide")
    model = tiny_llama(hidden=32)
    with pytest.raises(CourseError, match=r"hidden size 48 \(this model has hidden size 32\)"):
        load_adapter(model, tmp_path / "wide")
    # plain peft fails too, but with a bare tensor size mismatch
    with pytest.raises(RuntimeError, match="size mismatch"):
        PeftModel.from_pretrained(tiny_llama(hidden=32), tmp_path / "wide")


def test_adapter_for_another_vocabulary_names_both_sizes(tmp_path):
    save_adapter(tiny_llama(vocab=160), tmp_path / "a", targets=("q_proj", "lm_head"))
    with pytest.raises(CourseError, match=r"vocabulary of 160 tokens \(this model has 128\)"):
        load_adapter(tiny_llama(vocab=128), tmp_path / "a")


def test_tokenizer_saved_with_adapter_larger_than_the_model_fails(tmp_path):
    save_adapter(tiny_llama(vocab=128), tmp_path / "a")
    AutoTokenizer.from_pretrained(BASE_MODEL_DIR).save_pretrained(tmp_path / "a")  # 4,096 tokens
    with pytest.raises(CourseError, match=r"vocabulary of 4,096 tokens.*embeds only 128"):
        load_adapter(tiny_llama(vocab=128), tmp_path / "a")


def test_adapter_for_more_layers_names_the_module(tmp_path):
    save_adapter(tiny_llama(layers=3), tmp_path / "deep")
    with pytest.raises(CourseError, match=r"model.layers.2.*this model has 2 layers"):
        load_adapter(tiny_llama(layers=2), tmp_path / "deep")


def test_other_base_name_with_fitting_shapes_warns(tmp_path):
    model = tiny_llama()
    model.name_or_path = "some/other-model"
    save_adapter(model, tmp_path / "a")
    fresh = tiny_llama()
    fresh.name_or_path = "data/base-model"
    with pytest.warns(UserWarning, match="was trained on some/other-model"):
        load_adapter(fresh, tmp_path / "a")


# ---------------------------------------------------------------- loading and switching


def test_load_two_named_adapters_and_switch(tmp_path):
    save_adapter(tiny_llama(), tmp_path / "polite", seed=1)
    save_adapter(tiny_llama(), tmp_path / "bugfix", seed=2)
    base_logits = tiny_llama()(IDS).logits
    model = load_adapter(tiny_llama(), tmp_path / "polite")
    model = load_adapter(model, tmp_path / "bugfix")
    assert set(model.peft_config) == {"polite", "bugfix"}
    assert model.active_adapter == "polite", "load_adapter adds an adapter without activating it"
    with torch.no_grad():
        with using_adapter(model, "bugfix"):
            assert model.active_adapter == "bugfix"
            bugfix = model(IDS).logits
        assert model.active_adapter == "polite", "the previous adapter comes back"
        polite = model(IDS).logits
        with using_adapter(model, BASE):
            base = model(IDS).logits
    assert torch.allclose(base, base_logits, atol=1e-6)
    assert not torch.allclose(polite, bugfix, atol=1e-3)
    assert not torch.allclose(polite, base, atol=1e-3)
    assert not any(p.requires_grad for p in model.parameters()), "inference keeps adapters frozen"
    with pytest.raises(CourseError, match="already has an adapter named 'bugfix'"):
        load_adapter(model, tmp_path / "bugfix")
    with pytest.raises(CourseError, match="No adapter named 'french'.*base, polite, bugfix"):
        with using_adapter(model, "french"):
            pass


def test_answer_with_uses_the_chat_template_and_the_named_adapter(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(BASE_MODEL_DIR)
    vocab = len(tokenizer)
    save_adapter(tiny_llama(vocab=vocab), tmp_path / "a", seed=3)
    model = load_adapter(tiny_llama(vocab=vocab), tmp_path / "a")
    answers = {name: answer_with(model, tokenizer, name, "Say hi.", 8) for name in (BASE, "a")}
    assert answers[BASE] != answers["a"], "a random non-zero adapter changes greedy output"
    for name, answer in answers.items():  # greedy by hand, from the chat template's prompt
        with using_adapter(model, name):
            assert answer == _greedy_by_hand(model, tokenizer, "Say hi.", 8), name
    assert model.active_adapter == "a"


def _greedy_by_hand(model, tokenizer, text: str, new_tokens: int) -> str:
    from ftcourse.evaluate import stop_ids

    conversation = [{"role": "user", "content": text}]
    ids = tokenizer.apply_chat_template(
        conversation, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    start = ids.shape[1]
    with torch.no_grad():
        for _ in range(new_tokens):
            token = model(input_ids=ids).logits[0, -1].argmax().view(1, 1)
            ids = torch.cat([ids, token], dim=1)
            if token.item() in stop_ids(model, tokenizer):
                break
    return tokenizer.decode(ids[0, start:], skip_special_tokens=True).strip()


# ---------------------------------------------------------------- interop with plain peft


FRESH_PROCESS = textwrap.dedent(
    """
    import sys, torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    base_dir, adapter_dir, out = sys.argv[1:4]
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, adapter_dir).eval()
    with torch.no_grad():
        logits = model(torch.tensor({ids})).logits
    assert "ftcourse" not in sys.modules
    torch.save(logits, out)
    """
)


def logits_in_fresh_process(base_dir, adapter_dir, tmp_path) -> torch.Tensor:
    script = FRESH_PROCESS.format(ids=IDS.tolist())
    out = tmp_path / "logits.pt"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    subprocess.run(
        [sys.executable, "-c", script, str(base_dir), str(adapter_dir), str(out)],
        check=True,
        cwd=tmp_path,  # not the repository: `ftcourse` must not even be importable by accident
        env=env,
        timeout=120,
    )
    return torch.load(out)


def test_saved_adapter_gives_the_same_logits_in_a_fresh_plain_peft_process(tmp_path):
    base = tiny_llama()
    base.save_pretrained(tmp_path / "base")
    peft_model = save_adapter(base, tmp_path / "adapter", targets=("q_proj", "v_proj", "down_proj"))
    with torch.no_grad():
        here = peft_model(IDS).logits
        with peft_model.disable_adapter():
            assert not torch.allclose(peft_model(IDS).logits, here, atol=1e-3)
    there = logits_in_fresh_process(tmp_path / "base", tmp_path / "adapter", tmp_path)
    assert torch.allclose(here, there, atol=1e-5), (here - there).abs().max()


@pytest.mark.slow
def test_adapter_trained_by_the_course_loads_in_plain_peft(polite_adapter, tmp_path):
    """The real path: ftcourse.train (QLoRA on the course's base) for a few steps, then plain peft."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(BASE_MODEL_DIR, dtype=torch.float32)
    model = load_adapter(model, polite_adapter).eval()
    with torch.no_grad():
        here = model(IDS).logits
        with using_adapter(model, BASE):
            assert not torch.allclose(model(IDS).logits, here, atol=1e-4), "training moved B"
    there = logits_in_fresh_process(BASE_MODEL_DIR, polite_adapter, tmp_path)
    assert torch.allclose(here, there, atol=1e-5)


# ---------------------------------------------------------------- the course's own adapters


def test_why_train_missing_other_base_and_stale(tmp_path):
    profile = PROFILES["cpu-tiny"]
    assert _why_train(tmp_path / "none", profile) == "missing"
    folder = tmp_path / "polite"
    save_adapter(tiny_llama(), folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "Qwen/Qwen2.5-1.5B-Instruct"
    (folder / "adapter_config.json").write_text(json.dumps(config))
    assert _why_train(folder, profile).startswith("trained on Qwen")
    config["base_model_name_or_path"] = "/elsewhere/data/base-model"  # another machine's path
    (folder / "adapter_config.json").write_text(json.dumps(config))
    base_weights = BASE_MODEL_DIR / "model.safetensors"
    os.utime(folder / "adapter_model.safetensors", (0, base_weights.stat().st_mtime - 10))
    assert _why_train(folder, profile).startswith("older than the base")
    os.utime(folder / "adapter_model.safetensors", None)
    assert _why_train(folder, profile) is None


class CountingLedger:
    """What `ensure_adapters` tells a `ftcourse.ledger.Ledger`: objects tracked, releases."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def track(self, obj, label: str) -> None:
        self.events.append(label)

    def release(self) -> None:
        self.events.append("release")


def test_ensure_adapters_trains_the_missing_one_with_the_profiles_budget_and_keeps_the_rest(
    tmp_path, monkeypatch, capsys
):
    from ftcourse import train as ft_train
    from ftcourse.adapters import ensure_adapters

    monkeypatch.setattr(socket.socket, "connect", socket.socket.connect)  # trainer may probe
    monkeypatch.setattr("ftcourse.paths.OUTPUT_DIR", tmp_path)
    kept = tmp_path / "adapters" / "bugfix"
    save_adapter(tiny_llama(), kept)  # complete, on this base, newer than its weights
    config = json.loads((kept / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = PROFILES["cpu-tiny"].model_path
    (kept / "adapter_config.json").write_text(json.dumps(config))
    runs, real_train = [], ft_train.train

    def train(run):  # the real training, on a few records: what matters is what it was asked
        runs.append(run)
        return real_train(dataclasses.replace(run, train_samples=16))

    monkeypatch.setattr(ft_train, "train", train)
    profile = PROFILES["cpu-tiny"].with_overrides(max_steps=2)
    ledger = CountingLedger()
    folders = ensure_adapters(["polite", "bugfix"], profile, ledger)
    assert folders == {"polite": tmp_path / "adapters" / "polite", "bugfix": kept}
    assert [(r.task, r.method, r.profile, r.eval_samples) for r in runs] == [
        ("polite", "qlora", "cpu-tiny", 0)
    ]
    assert runs[0].profile_overrides == {"max_steps": 2} and runs[0].output_dir == str(
        folders["polite"]
    )
    assert "adapter 'polite': missing; training it now (2 steps)" in capsys.readouterr().out
    assert ledger.events == ["training polite: model", "training polite: trainer", "release"]
    assert _why_train(folders["polite"], profile) is None, "a usable adapter of this base"
    assert ensure_adapters(["polite", "bugfix"], profile) == folders and len(runs) == 1
    assert capsys.readouterr().out == "", "nothing to train the second time"


def test_overrides_carry_only_what_changed():
    profile = PROFILES["cpu-tiny"]
    assert _overrides(profile) == {}
    assert _overrides(profile.with_overrides(max_steps=7)) == {"max_steps": 7}


# ---------------------------------------------------------------- sizes and latency


def test_sizes_and_formatting(tmp_path):
    save_adapter(tiny_llama(), tmp_path / "a")
    n = weights_bytes(tmp_path / "a")
    # q and v of 2 layers: A is 4 x 32, B is 32 x 4 (q) or 16 x 4 (v, grouped-query); float32
    params = 2 * (4 * 32 + 32 * 4 + 4 * 32 + 16 * 4)
    assert 4 * params < n < 4 * params + 4096, "file = tensors + a small JSON header"
    assert format_bytes(999) == "999 B"
    assert format_bytes(27_262_976) == "27.3 MB"
    with pytest.raises(CourseError, match="No folder"):
        weights_bytes(tmp_path / "missing")


def test_token_latency_times_every_run_of_every_variant():
    tokenizer = AutoTokenizer.from_pretrained(BASE_MODEL_DIR)
    model = tiny_llama(vocab=len(tokenizer))
    times = token_latency({"a": model, "b": model}, tokenizer, "hi", new_tokens=4, runs=3)
    assert set(times) == {"a", "b"} and all(len(t) == 3 for t in times.values())
    assert all(0 < t < 1 for ts in times.values() for t in ts)


def test_token_latency_interleaves_the_variants_after_one_warm_up_each(monkeypatch):
    """a, b, c, a, b, c, ...: the order of the timings, each inside its variant's context."""
    tokenizer = AutoTokenizer.from_pretrained(BASE_MODEL_DIR)
    models = {name: tiny_llama(vocab=len(tokenizer), seed=i) for i, name in enumerate("abc")}
    name_of = {id(m): name for name, m in models.items()}
    log, inside = [], []

    def context(name):
        @contextlib.contextmanager
        def enter():
            inside.append(name)
            yield
            inside.remove(name)

        return enter

    def fake_seconds_per_token(model, inputs, new_tokens):
        name = name_of[id(model)]
        assert inside == ([name] if name != "c" else []), "timed inside its own context only"
        assert inputs["input_ids"].shape[0] == 1
        log.append((name, new_tokens))
        return len(log) / 1000  # the call's position, to see which timing lands where

    monkeypatch.setattr("ftcourse.inference._seconds_per_token", fake_seconds_per_token)
    variants = {
        "a": (models["a"], context("a")),
        "b": (models["b"], context("b")),
        "c": models["c"],
    }
    times = token_latency(variants, tokenizer, "hi", new_tokens=4, runs=3)
    assert log == [("a", 2), ("b", 2), ("c", 2)] + [(n, 4) for _ in range(3) for n in "abc"]
    assert times == {
        "a": [0.004, 0.007, 0.010],
        "b": [0.005, 0.008, 0.011],
        "c": [0.006, 0.009, 0.012],
    }, "warm-ups are not counted; each run lands in its own variant's list"


def test_side_by_side_escapes_and_marks():
    html = side_by_side(
        ["fix <this>"], {"base": ["x < y"], "bugfix": ["def f(): pass"]}, {"bugfix": ["✓ fixed"]}
    )
    assert "fix &lt;this&gt;" in html and "x &lt; y" in html, "answers are escaped, not HTML"
    assert html.count("<tr>") == 2 and html.count("<th>") == 3
    assert "<b>✓ fixed</b>" in html and html.count("<b>") == 1
    assert "<b>✗</b>" in side_by_side(["p"], {"base": ["a"]}, {"base": [False]}), "booleans too"


def test_median_ratio_pairs_each_round_and_sets_a_burst_aside():
    from ftcourse.inference import median_ratio

    # the machine slows down from round to round: medians compared separately would mislead
    times = {"base": [1.0, 2.0, 4.0, 8.0, 16.0], "merged": [1.1, 99.0, 4.4, 8.8, 17.6]}
    assert statistics.median(times["merged"]) / statistics.median(times["base"]) == 2.2
    assert median_ratio(times, "merged", "base") == pytest.approx(1.1)
    with pytest.raises(ValueError):  # rounds must pair up
        median_ratio({"a": [1.0], "b": [1.0, 2.0]}, "a", "b")
