"""Tracking with trackio: a real run's loss per step lands in a local folder and reads back, offline."""

import socket
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
from conftest import TRACKIO_DIR

from ftcourse import CourseError
from ftcourse.tracking import INSTALL, PROJECT, logged, report_to, runs, where

ROOT = Path(__file__).resolve().parents[1]
needs_trackio = pytest.mark.skipif(
    find_spec("trackio") is None, reason=f"trackio is not installed ({INSTALL})"
)


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    """A 3-step QLoRA run of cpu-tiny reporting to trackio in a temporary folder; the folder, the
    trainer, and every connection a socket tried during the run."""
    from peft import get_peft_model

    from ftcourse.profiles import choose_profile
    from ftcourse.tasks import training_splits
    from ftcourse.trainer import (
        load_model,
        lora_config,
        match_adapter_dtype,
        sft_config,
        sft_trainer_class,
    )

    folder = Path(TRACKIO_DIR)  # tests/conftest.py sets it before trl imports trackio
    tried = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        tried.append(address)
        return real_connect(sock, address)

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("TRACKIO_DIR", raising=False)  # report_to sets it; undone after the run
        patch.setattr(socket.socket, "connect", connect)
        profile = choose_profile("cpu-tiny")
        model, tokenizer = load_model(profile, "qlora")
        model = get_peft_model(model, lora_config(profile))
        train, _ = training_splits("polite")
        args = sft_config(
            profile,
            folder / "out",
            report_to=report_to("trackio", folder),
            project=PROJECT,
            max_steps=3,
            logging_steps=1,
            per_device_train_batch_size=4,
            eval_strategy="no",
        )
        trainer = sft_trainer_class()(
            model=model,
            args=args,
            train_dataset=train.select(range(12)),
            processing_class=tokenizer,
        )
        match_adapter_dtype(trainer.model, profile)
        trainer.train()
    return folder, trainer, tried


@needs_trackio
def test_the_loss_of_each_step_is_written_locally_and_reads_back(tracked_run):
    folder, trainer, _ = tracked_run
    assert where() == folder and (folder / f"{PROJECT}.db").is_file()
    assert len(runs()) == 1
    # the Trainer's own record of the run, against what trackio stored and gives back
    losses = {h["step"]: h["loss"] for h in trainer.state.log_history if "loss" in h}
    assert sorted(losses) == [1, 2, 3]
    assert logged() == pytest.approx(losses)
    assert set(logged(metric="train/learning_rate")) == {1, 2, 3}


@needs_trackio
def test_the_run_tried_no_connection(tracked_run):
    _, _, tried = tracked_run
    assert tried == [], f"the tracked run opened connections: {tried}"


@needs_trackio
def test_a_second_folder_in_the_same_process_is_refused(tracked_run, tmp_path, monkeypatch):
    folder, _, _ = tracked_run
    monkeypatch.delenv("TRACKIO_DIR", raising=False)
    with pytest.raises(CourseError, match="restart Python"):
        report_to("trackio", tmp_path)
    assert report_to("trackio", folder) == "trackio"


def test_a_missing_trackio_is_one_line_saying_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.delenv("TRACKIO_DIR", raising=False)
    for module in ("trackio", "trackio.utils"):  # None in sys.modules makes `import` fail
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(CourseError) as error:
        report_to("trackio", tmp_path)
    message = str(error.value)
    assert "trackio is not installed" in message and INSTALL in message and "\n" not in message


def test_none_needs_nothing_and_other_names_are_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "trackio", None)
    assert report_to(None) == report_to("none") == "none"
    with pytest.raises(CourseError, match="unknown tracker 'wandb'"):
        report_to("wandb")


def test_a_space_id_in_the_environment_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("TRACKIO_DIR", raising=False)
    monkeypatch.setenv("TRACKIO_SPACE_ID", "someone/runs")
    with pytest.raises(CourseError, match="TRACKIO_SPACE_ID is set"):
        report_to("trackio", tmp_path)


@needs_trackio
def test_the_command_line_logs_a_run_to_trackio(tracked_run, tmp_path, monkeypatch):
    import json

    from ftcourse.train import main

    monkeypatch.setattr("ftcourse.tracking.output_dir", lambda *parts: Path(TRACKIO_DIR))
    pairs = [(f"Sort: {a} {b}", f"{min(a, b)} {max(a, b)}") for a in "pqrstu" for b in "vwxyz"]
    data = tmp_path / "sorting.jsonl"
    data.write_text(
        "".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n" for q, a in pairs)
    )
    argv = ["--data", str(data), "--max-steps", "2", "--output-dir", str(tmp_path / "a")]
    assert main([*argv, "--report-to", "trackio"]) == 0
    assert sorted(logged()) == [1, 2]  # the newest run: this command's, one loss per step
