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
from ftcourse.runfile import RunConfig
from ftcourse.train import epoch_table, train, train_with_callbacks
from ftcourse.trainer import (
    NOTEBOOK_REDRAW_S,
    ModelLoss,
    bnb_config,
    check_lengths,
    match_adapter_dtype,
    sft_config,
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


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """One 8-step LoRA run with the notebook progress table on, shared by the tests that read it;
    and the redraw interval its table had at each redraw."""
    from transformers.utils import notebook

    redraws = []
    original = notebook.NotebookTrainingTracker.update_bar

    def spy(tracker, *args, **kwargs):
        redraws.append(tracker.update_every)
        return original(tracker, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(notebook.NotebookTrainingTracker, "update_bar", spy)
        folder = tmp_path_factory.mktemp("lora")
        callbacks = [notebook.NotebookProgressCallback]
        return train_with_callbacks(run(folder, method="lora"), callbacks), redraws


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

    from ftcourse.trainer import keep_trainable_on_cpu, load_model, lora_config

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


def test_training_reports_the_validation_loss_and_padding_free_matches_padded_batches(lora_run):
    result = lora_run[0]
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


def test_model_loss_gives_trls_loss_and_gradients(lora_run):
    from trl import SFTTrainer

    trainer = lora_run[0].trainer
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


def redraw_times(monkeypatch, callback_class, steps: int = 200, step_s: float = 0.05) -> list:
    """The (simulated) times at which a notebook progress table is redrawn over `steps` steps."""
    from types import SimpleNamespace

    from transformers.trainer_utils import IntervalStrategy
    from transformers.utils import notebook

    now, redraws = [0.0], []
    monkeypatch.setattr(notebook, "time", SimpleNamespace(time=lambda: now[0]))
    monkeypatch.setattr(
        notebook.NotebookTrainingTracker, "display", lambda t: redraws.append(now[0])
    )
    args = SimpleNamespace(eval_strategy=IntervalStrategy.NO)
    state = SimpleNamespace(max_steps=steps, global_step=0, epoch=0.0, num_train_epochs=1)
    table = callback_class()
    table.on_train_begin(args, state, None)
    for step in range(steps):
        now[0] += step_s
        state.global_step, state.epoch = step, step / steps
        table.on_step_end(args, state, None)
    return redraws


def test_notebook_progress_table_is_redrawn_every_two_seconds(lora_run, monkeypatch):
    from transformers.utils.notebook import NotebookProgressCallback

    result, redraws = lora_run
    tables = [
        c
        for c in result.trainer.callback_handler.callbacks
        if isinstance(c, NotebookProgressCallback)
    ]
    assert [type(c).__name__ for c in tables] == ["SteadyNotebookProgress"]
    assert redraws and set(redraws) == {NOTEBOOK_REDRAW_S}, "in the course's trainer"
    # 10 s of 0.05 s steps: after six redraws to learn the pace, one every 2 s, then the last step
    steady, plain = (
        redraw_times(monkeypatch, c) for c in (type(tables[0]), NotebookProgressCallback)
    )
    assert [round(b - a, 6) for a, b in zip(steady[5:-1], steady[6:-1])] == [2.0] * 4
    assert len(steady) == 11 and steady[-1] == pytest.approx(10.0)
    assert len(plain) > 50, "transformers' own table: every 0.2 s"


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


def command_run(*argv: str) -> RunConfig:
    """The run `python -m ftcourse.train ARGV` would train (nothing is trained)."""
    from ftcourse import train as ft_train

    parsed = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ft_train, "_train_command", lambda args: parsed.append(args) or 0)
        assert ft_train.main(list(argv)) == 0
    return ft_train._run_from_args(parsed[0])


def _lora_weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.named_parameters() if "lora_" in k}


HELD_OUT = 2  # polite test records the epoch run scores
EPOCH_RUN = """task: polite
method: lora
profile: cpu-tiny
train_samples: 8
eval_samples: {held_out}
profile_overrides: {{max_steps: 50, batch_size: 4, learning_rate: 4.0e-3, lora_dropout: 0.0}}
sft: {{logging_strategy: epoch}}
output_dir: {folder}
"""


@pytest.fixture(scope="module")
def epoch_command(tmp_path_factory):
    """`python -m ftcourse.train RUN.yaml --epochs 2` on 8 records (4 a step), an `epoch_scorer`
    added to its training: what it printed, its result, the scorer, the adapter at each scoring.

    Generation is fixed: the first held-out record is answered right at epoch 1, both at epoch 2,
    the first only in the held-out report after training.
    """
    import contextlib
    import io
    from types import SimpleNamespace

    from conftest import answer_with
    from transformers import AutoTokenizer

    from ftcourse import train as ft_train
    from ftcourse.chat import prepare_tokenizer
    from ftcourse.tasks import load_task

    folder = tmp_path_factory.mktemp("epochs")
    config = folder / "run.yaml"
    config.write_text(EPOCH_RUN.format(held_out=HELD_OUT, folder=folder / "adapter"))
    profile = get_profile("cpu-tiny")
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(profile.model_path), profile)
    records = list(load_task("polite", "test"))[:HELD_OUT]
    scorer, weights, results = ft_train.epoch_scorer(tokenizer, "polite", records), [], []
    right = [1, 2, 1]  # records answered right at each scoring

    def pick(i, reference, model):
        if i == 0:
            weights.append(_lora_weights(model))
        scoring = len(weights) - 1
        return (reference if i < right[scoring % len(right)] else "Do it now.", True)

    def train_scored(run, splits=None):
        results.append(ft_train.train_with_callbacks(run, [scorer], splits))
        return results[-1]

    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        answer_with(patch, pick)
        patch.setattr(ft_train, "train", train_scored)
        assert ft_train.main([str(config), "--epochs", "2"]) == 0
    return SimpleNamespace(
        config=config, printed=printed.getvalue(), result=results[0], scorer=scorer, weights=weights
    )


def test_the_epochs_option_trains_whole_epochs_in_place_of_the_step_budget(epoch_command):
    run = command_run(str(epoch_command.config), "--epochs", "1.5")
    assert run.profile_overrides == {
        "max_steps": -1,
        "num_train_epochs": 1.5,
        "batch_size": 4,
        "learning_rate": 4e-3,
        "lora_dropout": 0.0,
    }
    result = epoch_command.result
    state = result.trainer.state
    assert (state.global_step, state.max_steps, state.epoch) == (4, 4, 2.0), "2 epochs of 2 steps"
    assert "trained 4 steps in" in epoch_command.printed
    assert [h["epoch"] for h in result.log_history if "eval_loss" in h] == [1.0, 2.0]


def test_epoch_scorer_scores_the_weights_as_they_are_at_each_epochs_end(epoch_command):
    scores, weights = epoch_command.scorer.scores, epoch_command.weights
    assert [(s.label, s.n, s.accuracy) for s in scores] == [
        ("epoch 1", HELD_OUT, 0.5),
        ("epoch 2", HELD_OUT, 1.0),
    ]
    final = _lora_weights(epoch_command.result.model)
    assert all(torch.equal(weights[1][k], final[k]) for k in final), "the run ends with epoch 2"
    assert not all(torch.equal(weights[0][k], final[k]) for k in final), "trained on after epoch 1"
    history = epoch_command.result.log_history
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    losses = [h["loss"] for h in history if "loss" in h]  # the mean over each epoch
    assert epoch_table(history, scores) == [
        {"epoch": 1, "train_loss": losses[0], "eval_loss": evals[0], "accuracy": 0.5},
        {"epoch": 2, "train_loss": losses[1], "eval_loss": evals[1], "accuracy": 1.0},
    ]


def test_the_command_scores_the_trained_adapter_on_held_out_records(epoch_command):
    assert f"held-out polite accuracy: 50.0% (n={HELD_OUT})\n" in epoch_command.printed
    final = _lora_weights(epoch_command.result.model)
    assert len(epoch_command.weights) == 3, "two epochs, then the report"
    assert all(torch.equal(epoch_command.weights[2][k], final[k]) for k in final)


def test_the_held_out_report_scores_the_profiles_count_unless_the_run_says(
    fixed_answers, capsys, monkeypatch, mode_model
):
    from types import SimpleNamespace

    from ftcourse.train import _report_eval

    monkeypatch.delenv("FTCOURSE_FAST", raising=False)
    fixed_answers(lambda i, reference, model: (reference if i % 4 == 0 else "No.", True))

    result = SimpleNamespace(model=mode_model, tokenizer=None)
    _report_eval(RunConfig(task="polite", profile="cpu-tiny"), result)
    n = get_profile("cpu-tiny").eval_samples
    assert capsys.readouterr().out == f"held-out polite accuracy: 25.0% (n={n})\n"
    _report_eval(RunConfig(task="polite", profile="cpu-tiny", eval_samples=0), result)
    _report_eval(RunConfig(task="python_qa", profile="cpu-tiny", eval_samples=4), result)
    assert capsys.readouterr().out == "", "nothing asked, or no scoring rule: nothing said"


def test_the_name_option_names_a_data_files_run_and_its_folder(tmp_path, capsys):
    from ftcourse.train import main

    data = tmp_path / "chats" / "train.jsonl"
    run = command_run("--data", str(data), "--name", "support-bot")
    assert (run.task, run.output_dir) == ("support-bot", "outputs/adapters/support-bot")
    run = command_run("--data", str(data))
    assert (run.task, run.output_dir) == ("chats", "outputs/adapters/chats")  # the folder's name
    with pytest.raises(SystemExit) as exit_:
        main([str(ROOT / "runs" / "polite-lora.yaml"), "--name", "support-bot"])
    assert exit_.value.code == 2 and "--name, --score and --test go with --data" in (
        capsys.readouterr().err
    )
