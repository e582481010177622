"""Export: the merged model is the adapter's model in plain transformers; the GGUF file is it in llama.cpp."""

import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ftcourse import CourseError
from ftcourse.__main__ import main
from ftcourse.export import (
    check_convertible,
    check_writable_file,
    inference_template,
    llama_answers,
    load_gguf,
    permute_rows,
    pre_tokenizer,
    write_gguf,
)
from ftcourse.paths import BASE_MODEL_DIR

PROMPTS = 10  # held-out polite prompts answered by both runtimes
HAS_GGUF = importlib.util.find_spec("gguf") is not None  # the export extra writes GGUF


@pytest.fixture(scope="module")
def adapter(polite_adapter):
    """A polite QLoRA adapter trained by the course for a few steps (tests/conftest.py)."""
    return polite_adapter


@pytest.fixture(scope="module")
def exported(adapter, tmp_path_factory):
    """The command line's export of that adapter: merged folder and f32 GGUF, and what it printed."""
    out = tmp_path_factory.mktemp("export")
    argv = ["export", str(adapter), "--merged", str(out / "merged")]
    argv += ["--gguf", str(out / "f32.gguf")] if HAS_GGUF else []
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(argv) == 0
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def merged(exported):
    """The merged folder, loaded with nothing but transformers, and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = exported[0] / "merged"
    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(
        folder
    )


@pytest.fixture(scope="module")
def conversations():
    """The first held-out polite prompts, as conversations without their answers."""
    from ftcourse.evaluate import prompt_messages
    from ftcourse.tasks import load_task

    return [prompt_messages(r["messages"]) for r in load_task("polite", "test")][:PROMPTS]


def batch_of(tokenizer, conversations):
    return tokenizer.apply_chat_template(
        conversations,
        add_generation_prompt=True,
        padding=True,
        return_tensors="pt",
        return_dict=True,
    )


def hf_answers(model, tokenizer, conversations):
    """transformers' greedy answers, one prompt at a time (no padding), in the task's budget."""
    from ftcourse.evaluate import generate
    from ftcourse.tasks import scored_task

    budget = scored_task("polite").max_new_tokens
    return [generate(model, tokenizer, [c], budget, progress=False)[0] for c in conversations]


# ---------------------------------------------------------------- the merged folder


def test_merged_model_is_the_adapter_model_in_plain_transformers(adapter, merged, conversations):
    """Logits of the reloaded merged model match the 4-bit base + unmerged adapter, as trained."""
    from peft import PeftModel

    from ftcourse.profiles import get_profile
    from ftcourse.trainer import load_model

    model, tokenizer = merged
    assert not [name for name, _ in model.named_modules() if "lora" in name]
    assert "quantization_config" not in model.config.to_dict()
    base, _ = load_model(get_profile("cpu-tiny"), method="qlora")
    as_trained = PeftModel.from_pretrained(base, str(adapter)).eval()
    batch = batch_of(tokenizer, conversations)
    with torch.no_grad():
        theirs, ours = as_trained(**batch).logits, model(**batch).logits
        with as_trained.disable_adapter():
            base_logits = as_trained(**batch).logits
    mask = batch["attention_mask"].bool()
    assert (theirs - ours)[mask].abs().max() < 1e-4
    assert (theirs - base_logits)[mask].abs().max() > 1e-2, "the adapter changed the model"
    assert tokenizer.chat_template and tokenizer.eos_token == "<|end|>"


def test_the_command_lists_what_it_wrote_with_sizes(exported):
    folder, printed = exported
    names = ["model.safetensors", "tokenizer.json", "chat_template.jinja"]
    for name in names + ["f32.gguf"] * HAS_GGUF:
        line = next(ln for ln in printed.splitlines() if ln.endswith(name) or name + " " in ln)
        assert line.split()[1] in ("B", "kB", "MB"), line
    assert ("(GGUF, f32)" in printed and "llama-server -m" in printed) == HAS_GGUF
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "no partial files left"


# ---------------------------------------------------------------- GGUF in llama.cpp

EXTRA = 'the export extra: pip install -e ".[export]"'


@pytest.fixture(scope="module")
def llm(exported):
    """The f32 GGUF file in llama.cpp."""
    pytest.importorskip("gguf", reason=EXTRA)
    pytest.importorskip("llama_cpp", reason=EXTRA)
    llm = load_gguf(exported[0] / "f32.gguf", n_threads=2)
    yield llm
    llm.close()


def test_llama_cpp_tokenizes_as_the_hf_tokenizer(llm, merged, conversations):
    _, tokenizer = merged
    texts = [
        tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
        for c in conversations[:3]
    ]
    texts += [
        "def add(a, b):\n    return a + b  # 12345, 3.14\n\n\n",
        "Café — naïve ünïcode 🙂, tabs\tand   spaces",
        "<|user|>\nSend it now!!<|end|>",
        " leading space and trailing  ",
    ]
    for text in texts:
        hf = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == hf, text
        assert llm.detokenize(hf, special=True).decode() == tokenizer.decode(hf), text
        plain = tokenizer.decode(hf, skip_special_tokens=True)
        assert llm.detokenize(hf).decode() == plain, text
    assert (llm.token_bos(), llm.token_eos()) == (tokenizer.bos_token_id, tokenizer.eos_token_id)


def test_f32_gguf_answers_exactly_as_transformers(llm, merged, conversations):
    from ftcourse.tasks import scored_task

    model, tokenizer = merged
    budget = scored_task("polite").max_new_tokens
    ours = llama_answers(llm, tokenizer, conversations, budget)
    theirs = hf_answers(model, tokenizer, conversations)
    assert ours == theirs
    assert llm.n_ctx() == model.config.max_position_embeddings
    # the chat API renders the file's own template (tokenizer.chat_template)
    reply = llm.create_chat_completion(
        conversations[0], max_tokens=budget, temperature=0.0, top_k=1, repeat_penalty=1.0
    )
    assert reply["choices"][0]["message"]["content"].strip() == theirs[0]


@pytest.mark.parametrize("gguf_type", ["f16", "q8_0"])
def test_smaller_gguf_types_load_and_mostly_agree(llm, exported, merged, conversations, gguf_type):
    from ftcourse.tasks import scored_task

    folder = exported[0]
    path = write_gguf(folder / "merged", folder / f"{gguf_type}.gguf", gguf_type)
    assert path.stat().st_size < 0.6 * (folder / "f32.gguf").stat().st_size
    model, tokenizer = merged
    budget = scored_task("polite").max_new_tokens
    smaller = load_gguf(path, n_threads=2)
    ours = llama_answers(smaller, tokenizer, conversations, budget)
    smaller.close()
    same = sum(a == b for a, b in zip(ours, hf_answers(model, tokenizer, conversations)))
    assert same >= PROMPTS // 2, (gguf_type, same)


def test_the_benchmark_measures_each_runtime(adapter, tmp_path, load_benchmark, llm):
    bench = load_benchmark("export_gguf")
    rows = bench.measure(adapter, tmp_path, prompts=3, types=("f32", "q8_0"), threads=2)
    assert [r["label"] for r in rows] == ["transformers", "transformers, batch 16"] + [
        "llama.cpp"
    ] * 2
    assert rows[0]["same"] == 1 and rows[2]["same"] == 1, "f32 GGUF answers as transformers"
    assert all(r["tps"] > 0 for r in rows if r["tps"] is not None)
    assert rows[3]["size"] < 0.6 * rows[2]["size"]
    assert "| llama.cpp | q8_0 GGUF |" in bench.markdown(rows, 3)


# ---------------------------------------------------------------- the converter's parts


def test_permuted_rows_give_llama_cpp_rope_the_same_attention_scores():
    """HF's rotate-half rope on q, k equals llama.cpp's interleaved rope on the permuted rows."""
    rng = np.random.default_rng(0)
    n_head, d = 2, 8
    q, k = rng.normal(size=(n_head * d, 3)), rng.normal(size=(n_head * d, 3))
    x = rng.normal(size=3)
    theta = 10000.0 ** (-np.arange(0, d, 2) / d)

    def hf_rope(v, pos):  # pairs (i, i + d/2)
        a, b = v[: d // 2], v[d // 2 :]
        c, s = np.cos(pos * theta), np.sin(pos * theta)
        return np.concatenate([a * c - b * s, b * c + a * s])

    def interleaved_rope(v, pos):  # pairs (2i, 2i + 1)
        a, b = v[0::2], v[1::2]
        c, s = np.cos(pos * theta), np.sin(pos * theta)
        out = np.empty_like(v)
        out[0::2], out[1::2] = a * c - b * s, b * c + a * s
        return out

    for head in range(n_head):
        rows = slice(head * d, (head + 1) * d)
        hf = hf_rope(q[rows] @ x, 5) @ hf_rope(k[rows] @ x, 2)
        pq, pk = permute_rows(q, n_head)[rows] @ x, permute_rows(k, n_head)[rows] @ x
        assert np.isclose(interleaved_rope(pq, 5) @ interleaved_rope(pk, 2), hf)
        assert not np.isclose(
            interleaved_rope(q[rows] @ x, 5) @ interleaved_rope(k[rows] @ x, 2), hf
        )


def test_the_gguf_template_renders_as_transformers_without_generation_markers(merged):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    _, tokenizer = merged
    plain = inference_template(tokenizer.chat_template)
    assert "endgeneration" not in plain and "endgeneration" in tokenizer.chat_template
    chat = [{"role": "user", "content": "Send it."}, {"role": "assistant", "content": "Please."}]
    special = {"bos_token": tokenizer.bos_token, "eos_token": tokenizer.eos_token}
    for messages, more in ((chat, False), (chat[:1], True)):
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)  # as llama_cpp's
        ours = env.from_string(plain)
        text = ours.render(messages=messages, add_generation_prompt=more, **special)
        assert text == tokenizer.apply_chat_template(
            messages, add_generation_prompt=more, tokenize=False
        )


def test_other_architectures_and_tokenizers_are_refused_with_what_to_use():
    with pytest.raises(CourseError, match=r"'qwen2'.*convert_hf_to_gguf\.py on the merged folder"):
        check_convertible({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]})
    llama31 = {"model_type": "llama", "rope_parameters": {"rope_type": "llama3"}}
    with pytest.raises(CourseError, match="'llama3'.*convert_hf_to_gguf"):
        check_convertible(llama31)
    config = json.loads((BASE_MODEL_DIR / "config.json").read_text())
    assert check_convertible(config) == "llama"
    tokenizer = json.loads((BASE_MODEL_DIR / "tokenizer.json").read_text())
    assert pre_tokenizer(tokenizer) == "gpt-2"
    tokenizer["pre_tokenizer"] = {"type": "Metaspace"}
    with pytest.raises(CourseError, match="Metaspace.*convert_hf_to_gguf"):
        pre_tokenizer(tokenizer)


# ---------------------------------------------------------------- the base an adapter goes into


def test_the_base_profile_is_the_named_one_else_the_one_whose_model_the_adapter_names(
    tmp_path, monkeypatch
):
    """The same path wins, then the same kind of model (a folder or Hub id), then the same name."""
    import warnings

    from ftcourse.export import base_profile
    from ftcourse.profiles import PROFILES, choose_profile

    for name in ("FTCOURSE_PROFILE", "FTCOURSE_DTYPE", "FTCOURSE_FAST"):
        monkeypatch.delenv(name, raising=False)

    def profile_for(base: str | None, name: str | None = None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a GPU profile on a CPU is said, not refused
            return base_profile({"base_model_name_or_path": base} if base else {}, name)

    here = choose_profile().name
    assert profile_for(None).name == here
    assert profile_for("someone/other-model", "llama-3.1-8b-standin").name == "llama-3.1-8b-standin"
    assert profile_for(PROFILES["t4-standin"].model_path).name == "t4-standin"
    folder = tmp_path / "Qwen3-1.7B"  # the t4 model's name, as a folder on this machine
    folder.mkdir()
    assert profile_for(str(folder)).name == "t4-standin"
    assert profile_for("Qwen/Qwen3-1.7B").name == "t4"
    assert profile_for("/elsewhere/data/base-model").name == "cpu-tiny"  # another machine's path
    other = profile_for("someone/other-model")
    assert (other.name, other.model) == (here, "someone/other-model")
    monkeypatch.setenv("FTCOURSE_DTYPE", "float16")  # the machine's settings still apply
    assert profile_for(PROFILES["t4-standin"].model_path).compute_dtype == "float16"


def lora_adapter(folder: Path) -> Path:
    """A LoRA adapter on the course's full-precision base, B non-zero (as if trained)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(BASE_MODEL_DIR)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    model = get_peft_model(base, config)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    model.save_pretrained(folder)
    return folder


def test_a_lora_adapter_is_merged_into_the_original_weights(tmp_path, capsys, conversations):
    """`--method lora` merges into the base as it is; the default merges into the 4-bit base."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = lora_adapter(tmp_path / "adapter")
    batch = batch_of(AutoTokenizer.from_pretrained(BASE_MODEL_DIR), conversations[:3])
    logits = {}
    for method in ("lora", "qlora"):
        out = tmp_path / method
        assert main(["export", str(folder), "--merged", str(out), "--method", method]) == 0
        assert f"({method}); wrote:" in capsys.readouterr().out
        with torch.no_grad():
            logits[method] = AutoModelForCausalLM.from_pretrained(out).eval()(**batch).logits
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(BASE_MODEL_DIR), folder)
    with torch.no_grad():
        as_trained = model.eval()(**batch).logits
        with model.disable_adapter():
            base = model(**batch).logits
    mask = batch["attention_mask"].bool()
    assert (as_trained - base)[mask].abs().max() > 1e-2, "the adapter changes the model"
    assert (logits["lora"] - as_trained)[mask].abs().max() < 1e-4
    assert (logits["qlora"] - as_trained)[mask].abs().max() > 1e-3, "the 4-bit base is rounded"


# ---------------------------------------------------------------- the command's errors


def error_of(capsys, *argv) -> str:
    """Run the command, expect exit status 2 and one `error:` line; return that line."""
    assert main(["export", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_missing_or_incomplete_adapter_folders_are_refused(tmp_path, capsys):
    merged = str(tmp_path / "merged")
    assert "No adapter folder" in error_of(capsys, str(tmp_path / "none"), "--merged", merged)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "adapter_model.safetensors").write_bytes(b"")
    err = error_of(capsys, str(tmp_path / "half"), "--merged", merged)
    assert "adapter_config.json missing" in err
    assert not (tmp_path / "merged").exists(), "nothing written before the checks pass"


def fake_adapter(folder, base=str(BASE_MODEL_DIR)):
    """An adapter folder that passes the file checks (its weights are never read before they fail)."""
    folder.mkdir()
    config = {"peft_type": "LORA", "base_model_name_or_path": base}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return str(folder)


def test_unwritable_destinations_are_refused(tmp_path, capsys, monkeypatch):
    adapter = fake_adapter(tmp_path / "adapter")
    (tmp_path / "file").write_text("not a folder")
    under_a_file = str(tmp_path / "file" / "merged")
    assert "cannot write to the output folder" in error_of(
        capsys, adapter, "--merged", under_a_file
    )
    # the GGUF file's checks come after the extra's, checked in the next test: taken as installed
    monkeypatch.setattr("ftcourse.export.require_gguf", lambda: None)
    merged = str(tmp_path / "merged")
    gguf = str(tmp_path / "file" / "model.gguf")
    assert "cannot write" in error_of(capsys, adapter, "--merged", merged, "--gguf", gguf)
    assert "is a folder" in error_of(capsys, adapter, "--merged", merged, "--gguf", str(tmp_path))
    with pytest.raises(CourseError, match="is a folder"):
        check_writable_file(tmp_path)


def test_a_missing_optional_package_names_the_extra(tmp_path, capsys, monkeypatch):
    adapter = fake_adapter(tmp_path / "adapter")
    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` now raises ImportError
    gguf = str(tmp_path / "m.gguf")
    err = error_of(capsys, adapter, "--merged", str(tmp_path / "merged"), "--gguf", gguf)
    assert 'pip install -e ".[export]"' in err
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(CourseError, match=r'pip install -e "\.\[export\]"'):
        load_gguf(gguf)


def test_a_qwen3_base_is_refused_before_anything_loads(tmp_path, capsys):
    pytest.importorskip("gguf", reason=EXTRA)
    from ftcourse.profiles import ensure_available, get_profile

    # an adapter trained on the t4 stand-in means the stand-in was built (with a progress bar)
    standin = Path(ensure_available(get_profile("t4-standin")).model_path)
    capsys.readouterr()
    adapter = fake_adapter(tmp_path / "adapter", base=str(standin))
    gguf = str(tmp_path / "m.gguf")
    err = error_of(capsys, adapter, "--merged", str(tmp_path / "merged"), "--gguf", gguf)
    assert "'qwen3'" in err and "convert_hf_to_gguf.py" in err
    assert not (tmp_path / "merged").exists()


def test_gguf_type_without_a_file_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(tmp_path), "--merged", str(tmp_path / "m"), "--gguf-type", "f16"])
    assert exit_.value.code == 2 and "--gguf-type needs --gguf" in capsys.readouterr().err
