"""Training: the recipe runs, the loss falls, a resumed run matches an uninterrupted one, DDP starts 2 processes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from ftcourse import CourseError
from ftcourse.profiles import get_profile
from ftcourse.train import (
    NOTEBOOK_REDRAW_S,
    ModelLoss,
    RunConfig,
    bnb_config,
    check_lengths,
    epoch_table,
    match_adapter_dtype,
    sft_config,
    train,
    train_with_callbacks,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = {"max_steps": 8, "batch_size": 4, "learning_rate": 4e-3, "lora_dropout": 0.0}


def run(tmp_path, **changes) -> RunConfig:
    values = dict(
        task="polite",
        method="lora",
        profile="cpu-tiny",
        output_dir=str(tmp_path / "out"),
        train_samples=64,
        profile_overrides=dict(TINY),
    )
    values.update(changes)
    return RunConfig(**values)


def test_profile_decides_precision_flags():
    cpu = sft_config(get_profile("cpu-tiny"), "/tmp/x")
    assert not cpu.bf16 and not cpu.fp16 and cpu.use_cpu, (
        "trl's bf16 default must be overridden on CPU"
    )
    assert not cpu.activation_checkpointing, "checkpointing only slows a tiny model down"
    # padding-free batches: trl does not cut them, so max_length is None and check_lengths guards
    assert cpu.assistant_only_loss and cpu.padding_free and cpu.max_length is None
    assert cpu.eval_strategy == "steps" and cpu.eval_steps == get_profile("cpu-tiny").max_steps // 4
    assert bnb_config(get_profile("t4")).bnb_4bit_compute_dtype == torch.float32
    t4 = sft_config(get_profile("t4"), "/tmp/x")
    assert not t4.bf16 and not t4.fp16, "a T4 has no bf16, and fp16 overflows Qwen2.x"
    assert not t4.padding_free and t4.max_length == get_profile("t4").max_length
    big = sft_config(get_profile("gpu-24gb"), "/tmp/x")
    assert big.bf16 and not big.fp16 and big.activation_checkpointing
    assert big.eval_strategy == "epoch", "an epoch budget reports the validation loss per epoch"


def test_qlora_training_lowers_the_loss_and_saves_an_adapter(tmp_path):
    result = train(run(tmp_path, method="qlora", sft={"logging_steps": 2}))
    losses = [h["loss"] for h in result.log_history if "loss" in h]
    assert losses[-1] < losses[0], losses
    assert (result.output_dir / "adapter_model.safetensors").is_file()
    assert (result.output_dir / "adapter_config.json").is_file()
    # trl casts QLoRA adapters to bf16; on an fp32 profile the course casts them back (speed)
    trainable = [p for p in result.model.parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)


def test_match_adapter_dtype_keeps_bf16_only_for_bf16_profiles():
    layer = torch.nn.Linear(2, 2).to(torch.bfloat16)
    assert match_adapter_dtype(layer, get_profile("gpu-24gb")) == 0
    assert layer.weight.dtype == torch.bfloat16
    assert match_adapter_dtype(layer, get_profile("t4")) == 2
    assert layer.weight.dtype == torch.float32


class StopAt(TrainerCallback):
    """Simulate an interruption: stop right after a given step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


def _adapter(result) -> dict:
    return {k: v.detach().clone() for k, v in result.model.named_parameters() if "lora_" in k}


def test_resume_from_checkpoint_matches_an_uninterrupted_run(tmp_path):
    sft = {"save_strategy": "steps", "save_steps": 4, "logging_steps": 1}
    full = train(run(tmp_path / "a", sft=sft))
    interrupted = run(tmp_path / "b", sft=sft)
    # The first run stops after its step-4 checkpoint, as if the machine had gone away.
    from ftcourse import train as ft_train

    first = ft_train.train_with_callbacks(interrupted, [StopAt(4)])
    assert first.trainer.state.global_step == 4
    checkpoint = tmp_path / "b" / "out" / "checkpoint-4"
    assert checkpoint.is_dir()
    interrupted.resume_from_checkpoint = str(checkpoint)
    resumed = train(interrupted)
    assert resumed.trainer.state.global_step == full.trainer.state.global_step == 8
    a, b = _adapter(full), _adapter(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_yaml_run_file_rejects_unknown_keys(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: polite\nlearning_rte: 0.1\n")
    with pytest.raises(CourseError, match="learning_rte"):
        RunConfig.from_yaml(bad)


@pytest.mark.slow
def test_two_process_ddp_run(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "task: polite\nmethod: lora\nprofile: cpu-tiny\ntrain_samples: 32\neval_samples: 0\n"
        f"output_dir: {tmp_path / 'ddp'}\nprofile_overrides: {{batch_size: 2}}\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    # accelerate launch --cpu --num_processes 2 silently starts ONE process; torchrun starts two.
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "ftcourse.train",
        str(cfg),
        "--max-steps",
        "3",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "on 2 process(es)" in out.stdout, out.stdout[-2000:]
    assert (tmp_path / "ddp" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("path", sorted((ROOT / "runs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_run_files_load(path):
    run = RunConfig.from_yaml(path)  # unknown keys fail here
    assert run.task in ("polite", "bugfix", "python_qa") and run.method in ("qlora", "lora", "full")
    if run.profile:
        get_profile(run.profile).with_overrides(**run.profile_overrides)


def test_a_4bit_model_evaluated_before_training_still_gets_every_gradient():
    """bitsandbytes 0.50 repacks 4-bit layers for CPU inference at the first eval-mode forward
    (on AVX512-BF16 CPUs); the packed kernel has no backward, so a model evaluated first trained
    with no gradient through its 4-bit layers. `load_model` turns the repacking off."""
    from peft import get_peft_model

    from ftcourse.train import keep_trainable_on_cpu, load_model, lora_config

    profile = get_profile("cpu-tiny")
    model = get_peft_model(load_model(profile, "qlora")[0], lora_config(profile))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    ids = torch.randint(100, 4000, (2, 24), generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        model(input_ids=ids)  # what notebook 04's baseline evaluation does first
    model.train()
    model(input_ids=ids, labels=ids).loss.backward()
    first = model.base_model.model.model.layers[0].self_attn.q_proj
    assert first.lora_A["default"].weight.grad is not None
    assert first.lora_A["default"].weight.grad.abs().sum() > 0
    packed = [
        m for m in model.modules() if getattr(m, "support_avx512bf16_for_cpu", False)
    ]  # every 4-bit layer has it switched off
    assert not packed and keep_trainable_on_cpu(model) is model


def test_training_reports_the_validation_loss_and_padding_free_matches_padded_batches(tmp_path):
    result = train(run(tmp_path, method="lora"))
    evals = [h for h in result.log_history if "eval_loss" in h]
    assert len(evals) == 4, "the validation loss four times a run"
    batch = next(iter(result.trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch  # padding-free
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist() + [
        batch["input_ids"].shape[1]
    ]
    model = result.model.eval()
    with torch.no_grad():
        packed = model(**{k: batch[k] for k in ("input_ids", "position_ids", "labels")}).loss
        # the same examples, one by one: the position ids keep each example's attention to itself
        total, count = 0.0, 0
        for a, b in zip(starts, starts[1:]):
            ids, labels = batch["input_ids"][:, a:b], batch["labels"][:, a:b]
            n = int((labels[:, 1:] != -100).sum())
            total += model(input_ids=ids, labels=labels).loss.item() * n
            count += n
    assert abs(packed.item() - total / count) < 1e-4


def test_model_loss_gives_trls_loss_and_gradients(tmp_path):
    from trl import SFTTrainer

    trainer = train(run(tmp_path, method="lora")).trainer
    assert isinstance(trainer, SFTTrainer) and isinstance(trainer, ModelLoss)
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    answer_tokens = int((batch["labels"][:, 1:] != -100).sum())
    model = trainer.model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    results = []
    for compute in (
        trainer.compute_loss,
        lambda *a, **k: SFTTrainer.compute_loss(trainer, *a, **k),
    ):
        model.zero_grad()
        loss = compute(model, dict(batch), num_items_in_batch=answer_tokens)
        loss.backward()
        results.append((loss.item(), [p.grad.clone() for p in trainable]))
    (ours, our_grads), (trls, trl_grads) = results
    assert ours > 0 and abs(ours - trls) < 1e-5 * max(1.0, trls)
    assert any(g.abs().sum() > 0 for g in our_grads)
    for a, b in zip(our_grads, trl_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_notebook_progress_table_is_redrawn_every_two_seconds(tmp_path, monkeypatch):
    from transformers.utils import notebook

    redraws = []
    original = notebook.NotebookTrainingTracker.update_bar

    def spy(tracker, *args, **kwargs):
        redraws.append(tracker.update_every)
        return original(tracker, *args, **kwargs)

    monkeypatch.setattr(notebook.NotebookTrainingTracker, "update_bar", spy)
    callbacks = [notebook.NotebookProgressCallback]
    trainer = train_with_callbacks(run(tmp_path, method="lora"), callbacks).trainer
    tables = [c for c in trainer.callback_handler.callbacks if isinstance(c, callbacks[0])]
    assert [type(c).__name__ for c in tables] == ["SteadyNotebookProgress"]
    assert redraws and set(redraws) == {NOTEBOOK_REDRAW_S} and NOTEBOOK_REDRAW_S == 2.0


def test_check_lengths_names_the_first_long_record():
    check_lengths({"input_ids": [[1] * 5, [1] * 9]}, 9, "ok")
    with pytest.raises(
        CourseError, match=r"1 example\(s\) longer than max_length=8.*record 1 has 9"
    ):
        check_lengths({"input_ids": [[1] * 5, [1] * 9]}, 8, "polite training split")


def test_epoch_table_pairs_each_epoch_with_its_losses_and_score():
    from types import SimpleNamespace

    history = [
        {"loss": 2.0, "epoch": 0.5, "step": 5},
        {"loss": 1.5, "epoch": 1.0, "step": 10},
        {"eval_loss": 1.6, "epoch": 1.0, "step": 10},
        {"loss": 1.0, "epoch": 2.0, "step": 20},
        {"eval_loss": 1.4, "epoch": 2.0, "step": 20},
        {"train_loss": 1.5, "epoch": 2.0, "step": 20},
    ]
    scores = [SimpleNamespace(accuracy=0.25), SimpleNamespace(accuracy=0.5)]
    assert epoch_table(history, scores) == [
        {"epoch": 1, "train_loss": 1.5, "eval_loss": 1.6, "accuracy": 0.25},
        {"epoch": 2, "train_loss": 1.0, "eval_loss": 1.4, "accuracy": 0.5},
    ]
