"""Your own data, one command: every format trains, bad files and scorers fail clearly, chats mask."""

import json
import random

import pytest

from ftcourse.errors import CourseError
from ftcourse.train import main
from ftcourse.yourdata import best_checkpoint_settings, load_scorer

WORDS = (
    "amber basil cedar dune ember fjord garnet hazel iris juniper kelp lotus maple nectar onyx "
    "pebble quartz raven sage thistle umber violet willow yarrow zinnia"
).split()


def _pairs(n: int = 30, seed: int = 0) -> list[tuple[str, str]]:
    """(question, answer) pairs of a task the course never trains on: sort three words."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        three = rng.sample(WORDS, 3)
        out.append((f"Sort these words: {' '.join(three)}", " ".join(sorted(three))))
    return out


def _records(fmt: str) -> list:
    pairs = _pairs()
    if fmt == "alpaca":
        return [{"instruction": q, "input": "", "output": a} for q, a in pairs]
    if fmt == "sharegpt":
        return [
            {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
            for q, a in pairs
        ]
    if fmt == "messages":
        return [
            {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for q, a in pairs
        ]
    return [
        {
            "prompt": [{"role": "user", "content": q}],
            "completion": [{"role": "assistant", "content": a}],
        }
        for q, a in pairs
    ]


def _write(path, records, jsonl: bool = True):
    if jsonl:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        path.write_text(json.dumps(records))
    return path


@pytest.mark.parametrize("fmt", ["alpaca", "sharegpt", "messages", "prompt_completion"])
def test_the_command_trains_an_adapter_from_a_file_in_each_format(fmt, tmp_path, capsys):
    data = _write(tmp_path / f"sorting-{fmt}.jsonl", _records(fmt) + _records(fmt)[:2])
    out = tmp_path / "adapter"
    argv = ["--data", str(data), "--max-steps", "3", "--output-dir", str(out)]
    assert main([*argv, "--profile", "cpu-tiny"]) == 0
    printed = capsys.readouterr().out
    assert f"32 records in the {fmt} format" in printed
    assert "removed 2 (2 by drop_exact_duplicates)" in printed  # and says which
    assert "kept 27 for training, 3 for validation" in printed
    assert "best validation loss" in printed and "perplexity" in printed
    for name in ("adapter_model.safetensors", "adapter_config.json", "README.md", "loss.png"):
        assert (out / name).is_file(), name
    assert not list(out.glob("checkpoint-*"))  # the best one was loaded and saved; the rest gone
    card = (out / "README.md").read_text()
    assert "base_model: data/base-model" in card and f"sorting-{fmt}.jsonl" in card
    assert "Best validation loss: " in card and "Sample answers" in card


def test_the_saved_adapter_is_the_checkpoint_with_the_lowest_validation_loss(tmp_path, capsys):
    """A rate high enough to overshoot: the validation loss turns up, the saved adapter is earlier."""
    from peft import PeftModel

    from ftcourse.adapters import inference_base
    from ftcourse.profiles import get_profile
    from ftcourse.runfile import RunConfig
    from ftcourse.train import train_on_file
    from ftcourse.trainer import sft_config, sft_trainer_class
    from ftcourse.yourdata import _dataset, prepare

    data = _write(tmp_path / "sorting.json", _records("alpaca"), jsonl=False)  # .json works too
    overrides = {"max_steps": 8, "learning_rate": 3e-2}
    run = RunConfig(task="sorting", profile="cpu-tiny", output_dir=str(tmp_path / "a"))
    run.profile_overrides, run.eval_samples = overrides, 0
    report = train_on_file(run, data, f"{__file__}:score_early_first_word")
    assert "validation accuracy (your scorer): 66.7% (n=3)" in capsys.readouterr().out
    assert report.best_step < report.steps == 8  # overshot: an earlier checkpoint was best

    profile = get_profile("cpu-tiny")
    base, tokenizer = inference_base(profile)
    saved = PeftModel.from_pretrained(base, str(tmp_path / "a"))
    validation_records = prepare(data, tokenizer, profile.max_length).validation
    right = [score_early_first_word(r, "") for r in validation_records]
    assert report.n_scored == 3 and report.accuracy == sum(right) / 3 == 2 / 3  # each record scored
    validation = _dataset(validation_records)
    args = sft_config(profile, tmp_path / "eval", eval_strategy="no")
    trainer = sft_trainer_class()(
        model=saved,
        args=args,
        train_dataset=validation,
        eval_dataset=validation,
        processing_class=tokenizer,
    )
    assert trainer.evaluate()["eval_loss"] == pytest.approx(report.best_eval_loss, abs=1e-4)


def test_a_test_file_is_scored_instead_of_the_validation_split(tmp_path, capsys):
    data = _write(tmp_path / "sorting.jsonl", _records("messages"))
    held_out = _write(tmp_path / "unseen.jsonl", _records("alpaca")[:5])  # any format
    argv = ["--data", str(data), "--max-steps", "2", "--output-dir", str(tmp_path / "a")]
    argv += ["--score", f"{__file__}:score_sorted", "--test", str(held_out)]
    assert main([*argv, "--profile", "cpu-tiny"]) == 0
    printed = capsys.readouterr().out
    assert "unseen.jsonl: 5 held-out records to score" in printed
    assert "held-out accuracy on unseen.jsonl (your scorer):" in printed and "(n=5)" in printed
    assert "held-out accuracy on unseen.jsonl, n=5" in (tmp_path / "a" / "README.md").read_text()
    with pytest.raises(SystemExit):
        main(["--data", str(data), "--test", str(held_out)])  # --test without --score


def test_a_cut_to_the_scored_records_is_said(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("ftcourse.yourdata.MAX_SCORED", 2)
    data = _write(tmp_path / "sorting.jsonl", _records("messages"))
    held_out = _write(tmp_path / "unseen.jsonl", _records("alpaca")[:5])
    argv = ["--data", str(data), "--max-steps", "1", "--output-dir", str(tmp_path / "a")]
    argv += ["--score", f"{__file__}:score_sorted", "--test", str(held_out)]
    assert main([*argv, "--profile", "cpu-tiny"]) == 0
    assert "the first 2 of 5 records (your scorer):" in capsys.readouterr().out


def test_the_model_card_states_the_learning_rate_and_lora_shape_trained_with(tmp_path, monkeypatch):
    """A run named after a task with its own rate (cpu-tiny's bugfix) trains at that rate, and the
    card says so: the rate the optimizer started from, the LoRA shape peft saved."""
    from ftcourse import yourdata
    from ftcourse.profiles import get_profile

    profile = get_profile("cpu-tiny")
    rate = profile.learning_rate_for("bugfix")
    assert rate != profile.learning_rate  # else the card could be right by chance
    used = {}

    def measure(result, *args):  # the optimizer's own starting rate, read during the run
        used["rate"] = result.trainer.optimizer.param_groups[0]["initial_lr"]
        return real_measure(result, *args)

    real_measure = yourdata.measure
    monkeypatch.setattr(yourdata, "measure", measure)
    data = _write(tmp_path / "sorting.jsonl", _records("alpaca"))
    out = tmp_path / "a"
    argv = ["--data", str(data), "--name", "bugfix", "--max-steps", "2", "--output-dir", str(out)]
    assert main([*argv, "--profile", "cpu-tiny"]) == 0
    assert used["rate"] == pytest.approx(rate)
    card = (out / "README.md").read_text()
    assert f"- Recipe: 2 steps, learning rate {rate:g}, batch " in card, card
    saved = json.loads((out / "adapter_config.json").read_text())
    lora = f"LoRA r={saved['r']} alpha={saved['lora_alpha']} on "
    assert lora + ", ".join(sorted(saved["target_modules"])) in card, card


def score_sorted(record: dict, answer: str) -> bool:
    """The scorer the tests pass by file path: the three words in order."""
    reference = record["messages"][-1]["content"]
    return answer.split() == reference.split()


def score_early_first_word(record: dict, answer: str) -> bool:
    """A scorer whose verdicts the test knows: right when the first word to sort is before "m"."""
    return record["instruction"].split()[3] < "m"


def test_a_malformed_record_stops_the_command_with_one_line_naming_it(tmp_path, capsys):
    records = _records("alpaca")
    records[7] = {"instruction": "Sort these words: a b c", "input": "", "output": 3}
    data = _write(tmp_path / "broken.jsonl", records)
    assert main(["--data", str(data), "--max-steps", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "broken.jsonl: record 7, field 'output'" in err and err.startswith("error: ")


def test_a_file_in_no_known_format_and_a_missing_file_are_refused(tmp_path, capsys):
    data = _write(tmp_path / "odd.jsonl", [{"question": "q", "reply": "a"}] * 20)
    assert main(["--data", str(data)]) == 2
    assert "no record is in a known format" in capsys.readouterr().err.lower()
    assert main(["--data", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


def test_too_few_records_left_after_cleaning_is_refused(tmp_path, capsys):
    data = _write(tmp_path / "small.jsonl", _records("messages")[:3] * 5)  # 3 distinct of 15
    assert main(["--data", str(data), "--max-steps", "2"]) == 2
    err = capsys.readouterr().err
    assert "3 records left after the quality checklist (of 15)" in err


def test_a_run_is_named_after_its_file_or_its_folder_for_a_generic_file_name():
    from ftcourse.train import default_name

    assert default_name("my/chats.jsonl") == "chats"
    assert default_name("data/python_qa/train.jsonl") == "python_qa"
    assert default_name("train.jsonl") == "train"
    assert default_name("my/chats.csv.xz") == "chats"  # a compressed file by its data file's name
    assert default_name("data/python_qa/train.jsonl.gz") == "python_qa"


def test_run_file_and_data_file_are_one_or_the_other(capsys):
    with pytest.raises(SystemExit):
        main([])
    with pytest.raises(SystemExit):
        main(["runs/polite-qlora.yaml", "--data", "x.jsonl"])
    with pytest.raises(SystemExit):
        main(["runs/polite-qlora.yaml", "--score", "a:b"])


def test_scorers_load_from_a_module_or_a_file_and_bad_ones_are_named(tmp_path):
    assert load_scorer("ftcourse.tasks:score_polite").__name__ == "score_polite"
    file = tmp_path / "rules.py"
    file.write_text("def exact(record, answer):\n    return answer == 'x'\n")
    assert load_scorer(f"{file}:exact")({}, "x") is True
    for spec, said in [
        ("nocolon", "module:function"),
        ("no_such_module_xyz:f", "cannot import 'no_such_module_xyz'"),
        ("ftcourse.tasks:nope", "Functions there:"),
        (f"{tmp_path / 'gone.py'}:f", "does not exist"),
    ]:
        with pytest.raises(CourseError, match=said):
            load_scorer(spec)


def test_a_step_budget_is_checked_eight_times_and_an_epoch_budget_each_epoch():
    from ftcourse.profiles import get_profile

    steps = best_checkpoint_settings(get_profile("cpu-tiny").with_overrides(max_steps=80))
    assert steps["eval_steps"] == steps["save_steps"] == 10 and steps["load_best_model_at_end"]
    epochs = best_checkpoint_settings(get_profile("cpu-tiny").with_overrides(max_steps=-1))
    assert epochs["eval_strategy"] == epochs["save_strategy"] == "epoch"


def test_python_qa_trains_with_loss_on_every_assistant_turn_of_a_chat(tmp_path):
    """The multi-turn ShareGPT task trains; in each chat every answer carries loss, no question."""
    from ftcourse.data import load_records, to_messages
    from ftcourse.runfile import RunConfig
    from ftcourse.train import train
    from ftcourse.yourdata import _dataset

    records = load_records("data/python_qa/train.jsonl")
    chats = [{"messages": to_messages(r)} for r in records if len(r["conversations"]) >= 4][:40]
    run = RunConfig(
        task="python_qa",
        profile="cpu-tiny",
        output_dir=str(tmp_path / "qa"),
        eval_samples=0,
        profile_overrides={"max_steps": 2},
    )
    result = train(run, splits=(_dataset(chats), _dataset(chats[:4])))
    data, tokenizer = result.trainer.train_dataset, result.tokenizer
    for row, chat in zip(data.select(range(10)), chats):
        ids = row["input_ids"]
        mask = [label != -100 for label in row["labels"]]  # trl 1.16 masks through the labels
        learned = tokenizer.decode([i for i, m in zip(ids, mask) if m])
        context = tokenizer.decode([i for i, m in zip(ids, mask) if not m])
        answers = [t["content"] for t in chat["messages"] if t["role"] == "assistant"]
        questions = [t["content"] for t in chat["messages"] if t["role"] == "user"]
        assert len(answers) >= 2
        for answer in answers:
            assert answer in learned
        for question in questions:
            assert question in context and question not in learned
    assert result.trainer.state.global_step == 2
