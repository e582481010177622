"""Bad input never gives a raw traceback: the corpus in tests/bad_inputs/ through the real commands.

Each row of CASES is the arguments of `python -m ftcourse.train` (files of the corpus, run from inside
tests/bad_inputs/) and the words its one `error:` line must hold: the file, the place (line,
record, key) and what to do; a row whose one entry starts with "error: " is the whole line. A new
case is a small file there and a row here. The files of READABLE (another encoding, a CSV, a
compressed file) hold the records of accents.jsonl, and are read as it is.
"""

import errno
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from transformers import Trainer, TrainerCallback

from ftcourse.checkpoints import save_trained
from ftcourse.data import load_records
from ftcourse.errors import EXIT_BAD_INPUT, CourseError
from ftcourse.paths import partial_dir, replace_dir
from ftcourse.runfile import RunConfig
from ftcourse.train import EXIT_INTERRUPTED, main, train_with_callbacks

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "bad_inputs"
RUN = (
    "bom-run.yaml"  # a good run (8 steps on 32 records of bom-data/), saved with a byte-order mark
)

CASES = [
    ("malformed.yaml", ["malformed.yaml, line 4, column 20: not valid YAML", "`key: value`"]),
    (
        "unknown-key.yaml",
        [
            "unknown-key.yaml: unknown key 'train_sample' (did you mean 'train_samples'?)",
            "data_dir",
        ],
    ),
    (
        "unknown-override.yaml",
        ["unknown-override.yaml", "'max_step' (did you mean 'max_steps'?) in profile_overrides"],
    ),
    (
        "unknown-sft-key.yaml",
        ["unknown-sft-key.yaml", "'lerning_rate' (did you mean 'learning_rate'?) in sft"],
    ),
    ("not-a-mapping.yaml", ["not-a-mapping.yaml: the file holds a list, not settings", "task:"]),
    (
        "wrong-type.yaml",
        ["wrong-type.yaml: train_samples is 'many' (text); it must be a whole number or empty"],
    ),
    ("latin1.yaml", ["latin1.yaml: byte 0xe9 is not valid UTF-8", "Re-save the file as UTF-8"]),
    ("unknown-task.yaml", ["unknown-task.yaml: Unknown task 'poilte'", "polite, bugfix"]),
    ("unknown-profile.yaml", ["unknown-profile.yaml: Unknown profile 'gpu-99gb'", "cpu-tiny"]),
    (
        "gpu-profile.yaml",
        [
            "gpu-profile.yaml: Profile 'gpu-24gb' does not fit this machine (no CUDA GPU",
            "it needs a CUDA GPU with bf16",
            "Use 'cpu-tiny'",
            "'gpu-24gb-standin'",
        ],
    ),
    ("no-such-run.yaml", ["no-such-run.yaml: no such file", "runs/"]),
    (
        "missing-data.yaml",
        ["missing-data/polite/train.jsonl does not exist", "Fix data_dir in the run file"],
    ),
    ("empty-data.yaml", ["empty-data/polite/train.jsonl: the file is empty", "Add records"]),
    (
        "bad-line-data.yaml",
        [
            "bad-line-data/polite/train.jsonl, line 2 (record 1): not valid JSON",
            "must be one complete JSON object",
        ],
    ),
    (
        f"{RUN} --output-dir bom.json/adapter",  # a folder inside a file: it cannot be made
        ["cannot write to the output folder bom.json/adapter (Not a directory)", "--output-dir"],
    ),
    (
        "--data cp1252.jsonl",  # what Windows editors save as "ANSI"
        [
            "error: cp1252.jsonl, line 1 (record 0), field 'input': byte 0xe9 (offset 73) is not "
            "valid UTF-8: the file seems to be in Windows-1252 (cp1252), not UTF-8. Convert it "
            "with `iconv -f cp1252 -t utf-8 cp1252.jsonl > cp1252-utf8.jsonl` and use "
            "cp1252-utf8.jsonl.\n"
        ],
    ),
    (
        "--data excel.csv",  # what Excel saves as plain "CSV"
        [
            "error: excel.csv, line 2: byte 0xe9 (offset 70) is not valid UTF-8: the file seems "
            "to be in Windows-1252 (cp1252), not UTF-8. Convert it with `iconv -f cp1252 -t utf-8 "
            "excel.csv > excel-utf8.csv` and use excel-utf8.csv.\n"
        ],
    ),
    (
        "--data stray-byte.jsonl",  # UTF-8 but for one byte: converting the file would garble it
        [
            "error: stray-byte.jsonl, line 3 (record 2), field 'input': byte 0xe9 is not valid "
            "UTF-8, though the rest of the file is. Retype the text there, or save the file again "
            "as UTF-8.\n"
        ],
    ),
    (
        "--data cut-utf16.jsonl",
        [
            "error: cut-utf16.jsonl: read as UTF-16 (as its first bytes say), the file breaks at "
            "byte offset 904 (truncated data): it is cut short or mixes encodings. Save it again "
            "as UTF-8.\n"
        ],
    ),
    (
        "--data questions.csv",
        [
            "error: questions.csv, line 1 (the header): the columns ['question', 'answer'] are "
            "not those of a known format. Name them instruction, input (optional), output "
            "(Alpaca) or prompt, completion.\n"
        ],
    ),
    (
        "--data cells.csv",
        [
            "error: cells.csv, line 2 (record 0): 4 cells, but the header has 3 columns. Put a "
            "cell that holds a comma or a line break in double quotes, and double each quote "
            'inside a cell ("").\n'
        ],
    ),
    (
        "--data cut.jsonl.gz",
        [
            "error: cut.jsonl.gz: a gzip file that cannot be decompressed (Compressed file ended "
            "before the end-of-stream marker was reached): it is cut short or damaged. Download "
            "it or compress it again.\n"
        ],
    ),
    (
        "--data two-files.zip",
        [
            "error: two-files.zip: the zip archive holds 2 data files (train.jsonl, test.jsonl), "
            "not one. Extract the one you mean (e.g. `unzip two-files.zip train.jsonl`) and pass "
            "it.\n"
        ],
    ),
    (
        "--data accents.tar.gz",
        [
            "error: accents.tar.gz: a tar archive. Extract it (`tar -xf accents.tar.gz`) and "
            "pass the data file inside.\n"
        ],
    ),
    (
        "--data accents.jsonl.zst",
        [
            "error: accents.jsonl.zst: a zstd-compressed file. Decompress it (`zstd -d "
            "accents.jsonl.zst`) and pass the result.\n"
        ],
    ),
    (
        "--data accents.parquet",
        [
            "error: accents.parquet: a Parquet file. Convert it to JSON lines, e.g. `python -c "
            "\"import pandas; pandas.read_parquet('accents.parquet').to_json('accents.jsonl', "
            "orient='records', lines=True, force_ascii=False)\"`, and pass accents.jsonl.\n"
        ],
    ),
    (
        "--data sheet.xlsx",
        [
            "error: sheet.xlsx: an Excel workbook. Save it as CSV (in Excel: File > Save As > CSV "
            "UTF-8) and pass the .csv file.\n"
        ],
    ),
]
READABLE = [
    "accents-utf16.jsonl",  # what Windows Notepad saves as "Unicode": a byte-order mark, UTF-16
    "accents-utf16-nobom.json",  # UTF-16 without the mark: JSON's NUL-byte rule says which
    "accents.csv",  # what Excel saves as "CSV UTF-8": a byte-order mark, CRLF, quoted cells
    "accents.jsonl.gz",
    "accents.json.bz2",
    "accents.csv.xz",
    "accents.zip",  # one data file inside (and what macOS adds, skipped)
]


@pytest.fixture
def corpus(monkeypatch, tmp_path):
    """Run from inside the corpus, as on a machine without a GPU; adapters go to tmp_path/out."""
    monkeypatch.chdir(BAD)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    for name in ("FTCOURSE_PROFILE", "FTCOURSE_DTYPE", "FTCOURSE_NO_BF16"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "out"


def error_line(capsys) -> str:
    """The one line a refused command wrote to stderr."""
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def said(err: str, start: str) -> str:
    """The one message of a training run's stderr that starts with `start`, among progress bars."""
    found = [line[line.index(start) :] for line in re.split(r"[\r\n]", err) if start in line]
    assert len(found) == 1, err
    return found[0]


@pytest.mark.parametrize("case", CASES, ids=[c[0].split()[c[0].startswith("-")] for c in CASES])
def test_bad_input_gets_one_error_line_and_status_2(case, corpus, capsys):
    args, words = case
    argv = args.split()
    if "--output-dir" not in argv:
        argv += ["--output-dir", str(corpus)]
    assert main(argv) == EXIT_BAD_INPUT
    err = error_line(capsys)
    for w in words:
        assert w in err
    assert not (corpus / "adapter_config.json").exists()


def test_the_command_line_exits_2_without_a_traceback():
    out = subprocess.run(
        [sys.executable, "-m", "ftcourse.train", "tests/bad_inputs/malformed.yaml"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: tests/bad_inputs/malformed.yaml, line 4"), out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1


def test_doctor_refuses_a_profile_this_machine_cannot_run():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    env.pop("FTCOURSE_PROFILE", None)
    out = subprocess.run(
        [sys.executable, "-m", "ftcourse", "doctor", "--profile", "gpu-24gb"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert "profile" in out.stdout  # the report comes first
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Profile 'gpu-24gb' does not fit this machine"), out.stderr
    assert "Traceback" not in out.stderr


def test_files_with_a_byte_order_mark_load():
    plain = load_records(ROOT / "data" / "polite" / "train.jsonl")[:2]
    assert load_records(BAD / "bom.json") == plain
    assert load_records(BAD / "bom.jsonl") == plain
    run = RunConfig.from_yaml(BAD / RUN)
    assert (run.task, run.data_dir) == ("polite", "bom-data")  # the first key, right after the mark


@pytest.mark.parametrize("name", READABLE)
def test_other_encodings_csv_and_compressed_files_are_read(name, corpus, capsys):
    lines = (BAD / "accents.jsonl").read_text(encoding="utf-8").splitlines()
    assert load_records(name) == [json.loads(line) for line in lines]  # accents, emoji and all
    # the command reads them too: its three records, then too few to train on
    assert main(["--data", name, "--output-dir", str(corpus)]) == EXIT_BAD_INPUT
    assert error_line(capsys) == (
        f"error: {name}: 3 records left after the quality checklist (of 3); training needs at "
        "least 10. Add records, or see what was removed above.\n"
    )


def test_a_byte_order_mark_inside_a_file_is_still_an_error(tmp_path):
    path = tmp_path / "mid.jsonl"
    path.write_bytes(b'{"instruction": "a", "output": "b"}\n\xef\xbb\xbf{"instruction": "c"}\n')
    with pytest.raises(CourseError, match=r"mid.jsonl, line 2 \(record 1\): not valid JSON"):
        load_records(path)


def test_a_folder_of_other_files_is_never_replaced(corpus, capsys):
    corpus.mkdir(parents=True)
    (corpus / "notes.txt").write_text("mine")
    assert main([RUN, "--output-dir", str(corpus)]) == EXIT_BAD_INPUT
    err = error_line(capsys)
    assert f"{corpus} already holds other files (notes.txt)" in err and "new or empty" in err
    assert (corpus / "notes.txt").read_text() == "mine"


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="no /sys: not Linux")
def test_a_read_only_output_folder_is_refused_before_training(corpus, capsys):
    """A folder inside /sys, where no one can write, root included (chmod does not stop root)."""
    folder = Path("/sys/ftcourse-adapter")
    with pytest.raises(OSError) as denied:  # what this system says, e.g. "Operation not permitted"
        folder.mkdir()
    assert main([RUN, "--output-dir", str(folder)]) == EXIT_BAD_INPUT
    assert error_line(capsys) == (
        f"error: cannot write to the output folder {folder} ({denied.value.strerror}). Choose a "
        "folder you can write to (output_dir, --output-dir), or fix its permissions.\n"
    )


def test_a_scorer_that_raises_names_the_record_and_the_trained_adapter_is_kept(
    corpus, capsys, tmp_path
):
    scorer = tmp_path / "rules.py"  # a file of the learner's: where it raised is named
    scorer.write_text((BAD / "scorer_raises.py").read_text())
    data = "sorting-with-copies.jsonl"  # records 2 and 3 copy 0 and 1: the checklist drops them
    argv = ["--data", data, "--score", f"{scorer}:score", "--max-steps", "1"]
    assert main([*argv, "--output-dir", str(corpus)]) == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "removed 2 (2 by drop_exact_duplicates)" in out
    card = (corpus / "README.md").read_text()
    shown = re.search(r"\*\*prompt:\*\* (.*)", card)[1]  # the first record scored
    number = next(
        i
        for i, r in enumerate(load_records(data))
        if " ".join(f"{r['instruction']} {r['input']}".split()) == shown
    )
    raised = (
        f"your scorer score raised KeyError: 'answer' (rules.py, line 6) on record {number} of "
        f"{data}"
    )
    assert said(err, "error: ") == (
        f"error: {raised}, so no accuracy was measured. The adapter and its model card are saved "
        f"in {corpus}; fix the scorer and run the same command again to score it."
    )
    assert f"- Accuracy (your scorer): not measured: {raised}\n" in card
    assert (corpus / "adapter_model.safetensors").is_file() and (corpus / "loss.png").is_file()


def fake_checkpoint(folder: Path, **config) -> Path:
    """A complete-looking adapter checkpoint (config and trainer state only)."""
    folder.mkdir(parents=True)
    values = {"peft_type": "LORA", "r": 16, "target_modules": ["q_proj"], **config}
    (folder / "adapter_config.json").write_text(json.dumps(values))
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    return folder


def test_a_checkpoint_of_another_model_is_not_resumed(corpus, capsys):
    qwen = fake_checkpoint(
        corpus / "checkpoint-4", base_model_name_or_path="Qwen/Qwen2.5-1.5B-Instruct"
    )
    assert main([RUN, "--output-dir", str(corpus)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"resuming from {qwen} (step 4)" in err
    line = err.splitlines()[-1]
    assert line.startswith(f"error: cannot resume from {qwen}: it was trained on Qwen/Qwen2.5")
    assert "this run trains data/base-model (cpu-tiny)" in line and "--fresh" in line
    (qwen / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "r": 8, "target_modules": ["q_proj", "v_proj"]})
    )
    assert main([RUN, "--output-dir", str(corpus)]) == EXIT_BAD_INPUT
    assert "its adapter has r=8 on q_proj, v_proj; this run's has r=16 on down_proj" in (
        capsys.readouterr().err
    )


class InterruptAt(TrainerCallback):
    """Ctrl-C right after a given step; records every step that ran."""

    def __init__(self, step: int | None = None) -> None:
        self.step, self.steps = step, []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)
        if state.global_step == self.step:
            raise KeyboardInterrupt


def with_callback(monkeypatch, callback: TrainerCallback) -> TrainerCallback:
    monkeypatch.setattr("ftcourse.train.train", lambda run: train_with_callbacks(run, [callback]))
    return callback


def test_ctrl_c_keeps_the_last_checkpoint_and_the_same_command_resumes(corpus, capsys, monkeypatch):
    argv = [RUN, "--output-dir", str(corpus)]
    # the command line checkpoints every quarter of the 8 steps and keeps the newest one
    first = with_callback(monkeypatch, InterruptAt(5))
    assert main(argv) == EXIT_INTERRUPTED
    assert said(capsys.readouterr().err, "interrupted") == (
        f"interrupted: the last checkpoint, {corpus / 'checkpoint-4'} (step 4), is kept. Run the "
        "same command again to resume from it, or add --fresh to start over."
    )
    assert first.steps == [1, 2, 3, 4, 5]
    assert [p.name for p in corpus.glob("checkpoint-*")] == ["checkpoint-4"]
    assert not (corpus / "adapter_config.json").exists(), "an unfinished run saves no adapter"
    # --fresh drops that checkpoint and starts again at step 1
    fresh = with_callback(monkeypatch, InterruptAt(3))
    assert main([*argv, "--fresh"]) == EXIT_INTERRUPTED
    assert f"{corpus / 'checkpoint-2'} (step 2)" in said(capsys.readouterr().err, "interrupted")
    assert fresh.steps == [1, 2, 3] and not (corpus / "checkpoint-4").exists()
    # the same command again goes on from step 2 to the end, then keeps only the adapter
    resumed = with_callback(monkeypatch, InterruptAt())
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert (
        said(err, "resuming")
        == f"resuming from {corpus / 'checkpoint-2'} (step 2); add --fresh to start over"
    )
    assert resumed.steps == [3, 4, 5, 6, 7, 8] and "trained 8 steps" in out
    assert (corpus / "adapter_model.safetensors").is_file()
    assert not list(corpus.glob("checkpoint-*")), "a finished run leaves nothing to resume"
    assert sorted(p.name for p in corpus.parent.iterdir()) == ["out"], "no partial save left"


def test_a_full_disk_while_saving_says_so(corpus, capsys, monkeypatch):
    def full(self, output_dir=None, _internal_call=False):
        raise OSError(errno.ENOSPC, "No space left on device", f"{output_dir}/model.safetensors")

    monkeypatch.setattr(Trainer, "save_model", full)
    assert main([RUN, "--output-dir", str(corpus)]) == EXIT_BAD_INPUT
    assert said(capsys.readouterr().err, "error: ") == (
        f"error: disk full while writing {corpus / 'checkpoint-2'}/model.safetensors; free space "
        "or choose another --output-dir."
    )


def test_unexpected_errors_keep_their_traceback(corpus, monkeypatch):
    def bug(run):
        raise ZeroDivisionError("a bug, not bad input")

    monkeypatch.setattr("ftcourse.train.train", bug)
    with pytest.raises(ZeroDivisionError):
        main([RUN, "--output-dir", str(corpus)])


# ---------------------------------------------------------------- saves never tear


class FakeTrainer:
    """What `save_trained` uses of a Trainer; `save_model` writes one file, then maybe fails."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.accelerator = types.SimpleNamespace(wait_for_everyone=lambda: None)

    def is_world_process_zero(self) -> bool:
        return True

    def save_model(self, folder: str) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "adapter_config.json").write_text('{"new": true}')
        if self.fail:
            raise OSError(errno.ENOSPC, "No space left on device")


class FakeTokenizer:
    def save_pretrained(self, folder) -> None:
        (Path(folder) / "tokenizer_config.json").write_text("{}")


def test_a_failed_save_leaves_the_old_adapter_whole(tmp_path):
    dest = tmp_path / "adapter"
    dest.mkdir()
    (dest / "adapter_config.json").write_text('{"old": true}')
    (dest / "checkpoint-4").mkdir()
    with pytest.raises(OSError):
        save_trained(FakeTrainer(fail=True), FakeTokenizer(), dest)
    assert (dest / "adapter_config.json").read_text() == '{"old": true}'
    assert not (dest / "tokenizer_config.json").exists()
    save_trained(FakeTrainer(fail=False), FakeTokenizer(), dest)  # the next save cleans up
    assert (dest / "adapter_config.json").read_text() == '{"new": true}'
    assert (dest / "tokenizer_config.json").is_file() and (dest / "checkpoint-4").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


def test_replace_dir_refuses_a_folder_that_is_not_a_save(tmp_path):
    dest, new = tmp_path / "mine", partial_dir(tmp_path / "mine")
    dest.mkdir()
    (dest / "thesis.tex").write_text("years of work")
    (dest / "README.md").write_text("# My thesis\n")  # not a model card that a save writes
    new.mkdir()
    with pytest.raises(CourseError, match="holds other files"):
        replace_dir(new, dest)
    assert (dest / "thesis.tex").is_file()


def test_save_merged_writes_the_folder_in_one_go(tmp_path, monkeypatch):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ftcourse.inference import save_merged
    from ftcourse.paths import BASE_MODEL_DIR

    tiny = LlamaConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    model, tokenizer = LlamaForCausalLM(tiny), AutoTokenizer.from_pretrained(BASE_MODEL_DIR)
    dest = save_merged(model, tokenizer, tmp_path / "merged")
    assert (dest / "config.json").is_file() and (dest / "model.safetensors").is_file()
    before = (dest / "model.safetensors").read_bytes()

    def cut_off(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(tokenizer), "save_pretrained", cut_off)
    with pytest.raises(OSError):
        save_merged(LlamaForCausalLM(tiny), tokenizer, dest)
    assert (dest / "model.safetensors").read_bytes() == before  # the old save, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]
