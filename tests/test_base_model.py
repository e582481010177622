"""The course's base model (data/base-model) and the script that makes it."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "data" / "base-model"
SCRIPT = ROOT / "scripts" / "make_base_model.py"
# The committed model scores 9.0 on this sample (random init: ~4,300, about the vocabulary size);
# the bound leaves margin for another Python version's stdlib and for CPU numerics.
MAX_HELDOUT_PPL = 15.0

CODE = 'def add(a, b):\n    """Return the sum."""\n    return a + b\n\n\nclass Stack:\n    pass\n'
ENGLISH = "Hello, world! Could you please   send me the report?\n\tThanks -- é, ü, 日本.\n"
CHAT = [
    {"role": "system", "content": "You are polite."},
    {"role": "user", "content": "give me the file"},
    {"role": "assistant", "content": "Could you please send me the file?"},
    {"role": "user", "content": "fix: return a - b"},
    {"role": "assistant", "content": "def add(a, b):\n    return a + b"},
]


def load_script():
    """Import scripts/make_base_model.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_base_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(MODEL_DIR)


@pytest.fixture(scope="module")
def model():
    return AutoModelForCausalLM.from_pretrained(MODEL_DIR).eval()


def test_files_are_small_safetensors():
    weights = list(MODEL_DIR.glob("*.safetensors"))
    assert weights, "no safetensors weights"
    assert sum(p.stat().st_size for p in MODEL_DIR.iterdir()) < 25 * 2**20
    assert "PSF" in (MODEL_DIR / "README.md").read_text()


def test_fp32_load_is_a_small_gqa_llama(model):
    cfg = model.config
    assert type(model).__name__ == "LlamaForCausalLM"
    assert cfg.num_key_value_heads < cfg.num_attention_heads  # grouped-query attention
    assert cfg.hidden_size % 64 == 0 and cfg.intermediate_size % 64 == 0  # bnb-friendly
    assert next(model.parameters()).dtype == torch.float32
    assert 1e6 < sum(p.numel() for p in model.parameters()) < 2e7


def test_generation_config_has_special_ids(model, tokenizer):
    gen = model.generation_config
    assert (gen.bos_token_id, gen.eos_token_id, gen.pad_token_id) == (
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    )
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_nf4_load_matches_fp32(model, tokenizer):
    quant = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32
    )
    q_model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, quantization_config=quant)
    assert type(q_model.model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    ids = tokenizer(CODE, return_tensors="pt").input_ids
    with torch.no_grad():
        agree = (model(ids).logits.argmax(-1) == q_model(ids).logits.argmax(-1)).float().mean()
    assert agree > 0.7


@pytest.mark.parametrize("text", [CODE, ENGLISH, "  leading spaces and trailing  "])
def test_tokenizer_round_trip(tokenizer, text):
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert tokenizer.bos_token_id not in ids  # nothing is added behind the user's back


def test_special_tokens(tokenizer):
    assert tokenizer.bos_token == "<|begin|>"
    assert tokenizer.eos_token == "<|end|>"
    assert tokenizer.pad_token == "<|pad|>"
    for marker in ["<|system|>", "<|user|>", "<|assistant|>"]:
        assert tokenizer.encode(marker) == [tokenizer.convert_tokens_to_ids(marker)]


def test_chat_template_renders(tokenizer):
    text = tokenizer.apply_chat_template(CHAT[:2], tokenize=False, add_generation_prompt=True)
    expected = "<|begin|><|system|>\nYou are polite.\n<|user|>\ngive me the file\n<|assistant|>\n"
    assert text == expected
    full = tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert full.count("<|end|>") == 2  # every assistant turn, and only those, ends with EOS


def test_assistant_mask_is_exactly_assistant_text_and_eos(tokenizer):
    out = tokenizer.apply_chat_template(
        CHAT, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = out["input_ids"], out["assistant_masks"]
    masked = [i for i, m in zip(ids, mask) if m]
    answers = [m["content"] for m in CHAT if m["role"] == "assistant"]
    assert tokenizer.decode(masked) == "".join(a + "<|end|>" for a in answers)
    assert sum(mask) == sum(len(tokenizer.encode(a)) + 1 for a in answers)
    eos_positions = [k for k, i in enumerate(ids) if i == tokenizer.eos_token_id]
    assert all(mask[k] for k in eos_positions)
    assert not mask[-1] or ids[-1] == tokenizer.eos_token_id


def test_heldout_perplexity(model, tokenizer):
    script = load_script()
    _, heldout = script.split_files(script.stdlib_files())
    text = "".join(script.wrap(script.read_source(p)) for p in heldout[:3])
    ids = tokenizer(text, return_tensors="pt").input_ids[:, : 8 * 256].view(-1, 256)
    with torch.no_grad():
        loss = model(ids, labels=ids).loss.item()
    assert math.exp(loss) < MAX_HELDOUT_PPL


def test_greedy_generation_is_deterministic_and_bounded(model, tokenizer):
    ids = tokenizer("def is_even(n):\n", return_tensors="pt").input_ids
    runs = [model.generate(ids, max_new_tokens=12, do_sample=False) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    assert runs[0].shape[1] <= ids.shape[1] + 12
    torch.manual_seed(0)
    sampled = model.generate(ids, max_new_tokens=12, do_sample=True)
    torch.manual_seed(0)
    assert torch.equal(sampled, model.generate(ids, max_new_tokens=12, do_sample=True))


def test_generation_stops_at_eos(model, tokenizer):
    ids = tokenizer("import os\n", return_tensors="pt").input_ids
    free = model.generate(ids, max_new_tokens=10, do_sample=False)[0, ids.shape[1] :]
    # Declare the 5th token the model would emit as EOS: generation must stop right there.
    stop = int(free[4])
    out = model.generate(ids, max_new_tokens=10, do_sample=False, eos_token_id=stop)
    assert out[0, ids.shape[1] :].tolist() == free[: free.tolist().index(stop) + 1].tolist()


def test_chat_answer_ends_with_eos(model, tokenizer):
    # an editing exercise (see edit_chats): the first word changes case, the answer ends with EOS
    question = 'Begin this sentence with "Then":\n\nReturn the size of the queue.'
    chat = [{"role": "user", "content": question}]
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt")
    ids = ids if torch.is_tensor(ids) else ids["input_ids"]
    out = model.generate(ids, max_new_tokens=40, do_sample=False)[0, ids.shape[1] :]
    assert out[-1] == tokenizer.eos_token_id  # learned from the docstring chats in pretraining
    assert tokenizer.decode(out, skip_special_tokens=True) == "Then return the size of the queue."


def test_made_up_words_replace_the_first_word_and_keep_the_edit(tokenizer):
    script = load_script()
    pieces = script.word_pieces(tokenizer)
    assert len(pieces) > 500 and all(p.isalpha() and p.islower() for p in pieces)
    sentences = ["Return the size of the queue.", "Create a new empty list for every caller."]
    chats = script.edit_chats(sentences * 20, seed=5, pieces=pieces)
    firsts = set()
    for chat in chats:
        question, answer = chat[0]["content"], chat[1]["content"]
        sentence = question.split("\n\n", 1)[1].split(", ")[-1]
        first = sentence.split()[0]
        firsts.add(first)
        assert first.lower() not in ("return", "create"), sentence
        assert first.lower() in answer.lower(), (question, answer)  # copied, case changed or not
        assert " i " not in answer + " ", answer  # "Should I" keeps its capital I in a question
    assert len(firsts) > 30  # made up afresh each time
    again = script.edit_chats(sentences * 20, seed=5, pieces=pieces)
    assert again == chats, "the seed decides the words"
    assert script.edit_chats(sentences * 20, seed=6, pieces=pieces) != chats


def test_script_tiny_run_and_resume(tmp_path, capsys):
    script = load_script()
    argv = ["--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work")]
    argv += ["--steps", "3", "--ckpt-every", "2", "--max-files", "12", "--vocab-size", "300"]
    argv += ["--layers", "1", "--hidden", "64", "--heads", "2", "--kv-heads", "1"]
    argv += ["--seq-len", "32", "--batch-size", "2", "--warmup", "1"]
    script.main(argv)
    tiny = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert tiny.config.num_hidden_layers == 1
    assert AutoTokenizer.from_pretrained(tmp_path / "out").eos_token == "<|end|>"
    assert "held-out" in (tmp_path / "out" / "README.md").read_text()
    script.main(argv)  # a re-run resumes from the finished checkpoint instead of retraining
    assert "resuming from step 3" in capsys.readouterr().out
    # a second stage continues from the export, with repeated spans mixed into every batch
    stage2 = ["--out", str(tmp_path / "out2"), "--work-dir", str(tmp_path / "work2")]
    stage2 += argv[4:] + ["--init-from", str(tmp_path / "out"), "--repeat-share", "0.5"]
    script.main(stage2)
    card = (tmp_path / "out2" / "README.md").read_text()
    assert "stage 2" in card and "start of this stage" in card and "repeated spans" in card
    history = json.loads((tmp_path / "out2" / "training.json").read_text())
    assert len(history["commands"]) == 2 and history["tokens_seen"] == 2 * 3 * 2 * 32


def test_repeat_rows_carry_one_span_three_times():
    script = load_script()
    recipe = script.Recipe(batch_size=4, seq_len=128, repeat_share=0.5, vocab_size=300)
    stream = torch.arange(5000) % 300
    batch = script.get_batch(stream, recipe, step=7)

    def count(row, span):
        return sum(
            torch.equal(row[j : j + len(span)], span) for j in range(len(row) - len(span) + 1)
        )

    for row in batch[:2]:  # the repeat rows: some span of 8+ tokens occurs three times
        assert any(count(row, row[j : j + 8]) >= 3 for j in range(len(row) - 8))
    for row in batch[2:]:  # plain rows are windows of the stream
        assert torch.equal(row[1:] - row[:-1], torch.ones(127, dtype=row.dtype)) or 299 in row
    assert torch.equal(batch, script.get_batch(stream, recipe, step=7))


def test_base_model_copies_from_its_context(model):
    from ftcourse.evaluate import copy_probe

    probe = copy_probe(model.eval())  # measured 8.69 -> 2.68; the course's tasks need this
    assert probe.copies, probe


def test_second_stage_without_a_first_says_what_to_run(tmp_path):
    script = load_script()
    with pytest.raises(SystemExit, match="Run stage 1 first"):
        script.main(["--init-from", str(tmp_path / "missing"), "--out", str(tmp_path / "out")])


def test_edit_exercises_copy_the_sentence_with_one_edit():
    script = load_script()
    source = '"""Return the size of the queue."""\n\ndef f():\n    """Create a new empty list."""\n'
    sentences = script.summary_sentences(source)
    assert sentences == ["Return the size of the queue.", "Create a new empty list."]
    chats = script.edit_chats(sentences * 20, seed=3)
    for chat in chats:
        question, answer = chat[0]["content"], chat[1]["content"]
        instruction, sentence = question.split("\n\n", 1)
        assert sentence.split(", ")[-1].rstrip(".").lower() in answer.lower(), (question, answer)
        if question.startswith("Address"):  # the made-up name leads the answer
            name = instruction.split(" to ", 1)[1].rstrip(":")
            assert answer.startswith(f"{name}, ")
    kinds = {c[0]["content"].split()[0] for c in chats}
    assert kinds == {"Begin", "Address", "Remove", "End", "Turn"}
    assert script.edit_chats(sentences * 20, seed=3) == chats, "the seed decides the edits"
    assert script.edit_chats(sentences * 20, seed=4) != chats
