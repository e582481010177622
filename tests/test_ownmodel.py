"""Your own model: --model derives a profile from any model folder, trains each family's stand-in with
the loss on the answer and its end-of-turn token, and refuses what cannot work in one line."""

import json
import random
import shutil

import pytest
import torch

from ftcourse.chat import as_prompt_completion, end_of_turn, training_form
from ftcourse.errors import CourseError
from ftcourse.ownmodel import model_profile
from ftcourse.profiles import Hardware
from ftcourse.runfile import RunConfig
from ftcourse.standins import ensure_standin, family_standins
from ftcourse.train import main, train

# every family stand-in: the GPU profiles' and the families a learner is likely to pick
FAMILIES = family_standins()
WORDS = (
    "amber basil cedar dune ember fjord garnet hazel iris juniper kelp lotus maple nectar onyx "
    "pebble quartz raven sage thistle umber violet willow yarrow zinnia"
).split()
CPU = Hardware(cuda=False, gpu_name="", gpu_memory_gb=0.0, bf16=False, cpu_count=2)
T4 = Hardware(True, "Tesla T4", 15.0, False, 2, (7, 5))


def _chats(n: int = 12, turns: int = 1, seed: int = 0) -> list[dict]:
    """Chats of a task no model here was trained on: sort three words (distinct, so none is dropped)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        messages = []
        for _ in range(turns):
            three = rng.sample(WORDS, 3)
            messages += [
                {"role": "user", "content": f"Sort these words: {' '.join(three)}"},
                {"role": "assistant", "content": " ".join(sorted(three))},
            ]
        out.append({"messages": messages})
    return out


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_trains_through_model_with_the_loss_on_answer_and_end_of_turn(family, tmp_path):
    from datasets import Dataset
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    folder = ensure_standin(family)
    profile = model_profile(str(folder), CPU)
    rows = _chats()
    run = RunConfig(task="spell", model=str(folder), output_dir=str(tmp_path / "a"), method="lora")
    result = train(run, splits=(Dataset.from_list(rows), Dataset.from_list(rows[:4])))
    tok = result.tokenizer
    example = result.trainer.train_dataset[0]
    learned = [i for i in example["labels"] if i != -100]  # trl folds the masks into the labels
    text = tok.decode(learned)
    answer = rows[0]["messages"][1]["content"]
    assert answer in text and "Sort" not in text, text
    eot = tok.convert_tokens_to_ids(end_of_turn(tok))
    assert eot == tok.eos_token_id and eot in learned, (text, tok.eos_token)
    assert tok.decode([learned[-1]]).strip() in ("", tok.eos_token), text
    # the adapter reloads with plain peft and holds exactly the trained weights
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    reloaded = PeftModel.from_pretrained(base, tmp_path / "a")
    trained = {k: v for k, v in result.model.state_dict().items() if "lora_" in k}
    loaded = {k: v for k, v in reloaded.state_dict().items() if "lora_" in k}
    assert trained.keys() == loaded.keys() and trained
    assert all(torch.equal(trained[k].float(), loaded[k].float()) for k in trained)
    assert profile.loss_on == training_form(tok)[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_the_command_trains_each_family_and_says_how_the_answers_were_found(
    family, tmp_path, capsys
):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = ensure_standin(family)
    data = _write(tmp_path / "sort.jsonl", _chats(30))
    argv = ["--data", str(data), "--model", str(folder), "--output-dir", str(tmp_path / "o")]
    assert main(argv) == 0
    form = training_form(AutoTokenizer.from_pretrained(folder))[0]
    said = "prompt/completion records" if form == "completion" else "generation markers"
    assert f"model:{family}" in capsys.readouterr().out
    card = (tmp_path / "o" / "README.md").read_text()
    assert said in card.split("Loss on:")[1].splitlines()[0], card
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    reloaded = PeftModel.from_pretrained(base, tmp_path / "o")  # plain peft
    trained_b = [p for n, p in reloaded.named_parameters() if "lora_B" in n]
    assert trained_b and all(p.any() for p in trained_b), "every lora_B moved from zero"


def test_multi_turn_data_with_a_template_that_cannot_mark_answers_is_one_error_line(
    tmp_path, capsys
):
    folder = ensure_standin("llama-3.1-8b")
    data = _write(tmp_path / "chats.jsonl", _chats(5) + _chats(25, turns=2, seed=1))
    assert main(["--data", str(data), "--model", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: "), err
    assert "chats.jsonl, record 5: 2 assistant turns" in err and "Traceback" not in err


def test_single_turn_records_become_prompt_completion_and_multi_turn_is_refused():
    single = _chats(2)
    assert as_prompt_completion(single) == [
        {"prompt": r["messages"][:1], "completion": r["messages"][1:]} for r in single
    ]
    with pytest.raises(CourseError, match="record 7: 2 assistant turns"):
        as_prompt_completion(_chats(1, turns=2), "f.jsonl", numbers=[7])


def test_a_model_that_does_not_fit_is_one_error_line_with_the_estimate(
    tmp_path, capsys, monkeypatch
):
    from ftcourse.architectures import load_architecture

    folder = tmp_path / "big"
    shutil.copytree(ensure_standin("llama-3.1-8b"), folder)
    load_architecture("llama-3.1-8b").save_pretrained(folder)  # the real 8B's shape
    small = Hardware(True, "a 4 GB GPU", 4.0, True, 2, (8, 6))
    with pytest.raises(CourseError, match=r"does not fit: even in 4-bit .* offers 3.6 GB"):
        model_profile(str(folder), small)
    monkeypatch.setattr(Hardware, "detect", classmethod(lambda cls: small))
    data = _write(tmp_path / "spell.jsonl", _chats(30))
    assert main(["--data", str(data), "--model", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not fit" in err and "GB" in err, err


def test_the_plan_follows_the_hardware(tmp_path):
    from ftcourse.architectures import load_architecture

    folder = tmp_path / "qwen"
    shutil.copytree(ensure_standin("qwen2.5-7b-instruct"), folder)
    load_architecture("qwen2.5-7b-instruct").save_pretrained(folder)
    (folder / "standin.json").unlink()  # planned as the real 7B, not as a stand-in
    on_t4 = model_profile(str(folder), T4)
    assert on_t4.load_in_4bit and on_t4.compute_dtype == "float32"  # 7B in 16-bit: not on 15 GB
    assert on_t4.batch_size * on_t4.grad_accum == 16
    big = model_profile(str(folder), Hardware(True, "H100", 80.0, True, 16, (9, 0)))
    assert not big.load_in_4bit and big.compute_dtype == "bfloat16" and big.max_length == 2048


def test_an_uncached_hub_model_offline_is_one_error_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    data = _write(tmp_path / "spell.jsonl", _chats(30))
    assert main(["--data", str(data), "--model", "someone/not-cached-model"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not in the local Hugging Face cache" in err, err


def test_a_stand_in_path_from_the_repository_root_works_from_any_folder(tmp_path, monkeypatch):
    """A notebook runs in notebooks/: FTCOURSE_MODEL=build/standins/... still finds (or builds) it."""
    from ftcourse import standins
    from ftcourse.ownmodel import resolve

    built = []
    monkeypatch.setattr(standins, "STANDINS_DIR", tmp_path / "build" / "standins")
    monkeypatch.setattr("ftcourse.ownmodel.REPO_ROOT", tmp_path)
    monkeypatch.setattr(standins, "ensure_standin", lambda name: built.append(name))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CourseError, match="no such folder"):  # the fake build made nothing
        resolve("build/standins/lfm2-1.2b")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    folder = tmp_path / "build" / "standins" / "gemma-3-1b-it"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert resolve("build/standins/gemma-3-1b-it") == str(folder.resolve())
    assert built == ["lfm2-1.2b", "lfm2-1.2b"]  # asked for from the folder and from the root
