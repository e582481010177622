"""Training: the article's QLoRA recipe on today's APIs, driven by a profile.

Notebook 04 spells these calls out one by one; this module is the same recipe for the other notebooks,
the tests and the script form:

    python -m ftcourse.train runs/polite-qlora.yaml           # one process
    accelerate launch -m ftcourse.train runs/polite-qlora.yaml  # DDP / FSDP on several devices
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ftcourse.chat import prepare_tokenizer
from ftcourse.errors import CourseError
from ftcourse.memory import METHODS
from ftcourse.profiles import Profile, choose_profile, ensure_available


def bnb_config(profile: Profile):
    """4-bit NormalFloat storage with the profile's compute dtype (QLoRA paper, section 3)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=profile.torch_dtype,
    )


def load_model(profile: Profile, method: str = "qlora"):
    """The profile's base model (4-bit for QLoRA) and its tokenizer, prepared (`prepare_tokenizer`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if method not in METHODS:
        raise CourseError(f"Unknown method {method!r}: use one of {', '.join(METHODS)}.")
    ensure_available(profile)
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(profile.model_path), profile)
    quant = bnb_config(profile) if method == "qlora" else None
    model = AutoModelForCausalLM.from_pretrained(
        profile.model_path,
        dtype=profile.torch_dtype,
        quantization_config=quant,
        device_map={"": _device()} if torch.cuda.is_available() else None,
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    return keep_trainable_on_cpu(model), tokenizer


def keep_trainable_on_cpu(model):
    """Stop bitsandbytes repacking a 4-bit model for CPU inference, which breaks training; return it.

    bitsandbytes 0.50, on a CPU with AVX512-BF16, repacks each 4-bit layer for its fused inference
    kernel at the first forward pass in eval mode without gradients (an evaluation, a `generate`).
    That kernel has no backward: training the model afterwards silently loses the gradients through
    every 4-bit layer (LoRA's A matrices of the first layers get none at all), and a layer with a
    bias, as Qwen's q, k and v projections have, fails outright. The course evaluates its models
    before training them (notebook 04), so every 4-bit model it may train keeps the plain layout.
    """
    import bitsandbytes as bnb
    from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            weight = module.weight
            if getattr(weight.quant_state, "packing_format_for_cpu", False):  # packed already
                weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(
                    weight.data, weight.quant_state
                )
    return model


def _device() -> int | str:
    from accelerate import PartialState

    return PartialState().local_process_index if torch.cuda.is_available() else "cpu"


def lora_config(profile: Profile, **overrides):
    """The article's LoraConfig (r=16, alpha=32), with the profile's dropout and target modules."""
    from peft import LoraConfig

    values = dict(
        r=profile.lora_r,
        lora_alpha=profile.lora_alpha,
        lora_dropout=profile.lora_dropout,
        target_modules=list(profile.target_modules),
        task_type="CAUSAL_LM",
    )
    return LoraConfig(**{**values, **overrides})


def sft_config(profile: Profile, output_dir: str | Path, **overrides):
    """SFTConfig for the profile: dtype flags, step budget and memory savers set explicitly."""
    from trl import SFTConfig

    values = dict(
        output_dir=str(output_dir),
        max_steps=profile.max_steps,
        num_train_epochs=profile.num_train_epochs,
        per_device_train_batch_size=profile.batch_size,
        per_device_eval_batch_size=profile.batch_size,
        gradient_accumulation_steps=profile.grad_accum,
        learning_rate=profile.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=profile.warmup_steps,
        # trl does not cut padding-free examples to max_length: `check_lengths` refuses long ones
        max_length=None if profile.padding_free else profile.max_length,
        padding_free=profile.padding_free,
        assistant_only_loss=True,  # learn the answers, not the prompts (needs generation markers)
        # trl turns bf16 on by default: it fails on a CPU or a T4, so the profile decides
        bf16=profile.compute_dtype == "bfloat16",
        fp16=profile.compute_dtype == "float16",
        use_cpu=not torch.cuda.is_available(),
        activation_checkpointing=profile.gradient_checkpointing,
        logging_steps=profile.logging_steps,
        save_strategy="no",
        # the loss on the validation split, four times a run: the overfitting alarm
        eval_strategy=profile.eval_strategy,
        eval_steps=profile.eval_steps,
        report_to="none",
        seed=0,
        dataloader_num_workers=0,
    )
    return SFTConfig(**{**values, **overrides})


class ModelLoss:
    """Mix in before trl's `SFTTrainer`: the loss from the model's own forward, as a plain loop does.

    trl 1.16 computes every training loss through its chunked log-probability head, which also
    computes the entropy and top-1 accuracy it logs; off a GPU it scores every position, the masked
    prompt included, and recomputes the logits in the backward pass. The model's own forward projects
    once and takes the cross-entropy of the answer tokens: the same loss (`tests/test_train.py`),
    measured about a third faster on cpu-tiny (docs/benchmarks.md). trl's `entropy` and
    `mean_token_accuracy` log entries are what is given up.
    """

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """`transformers.Trainer.compute_loss`: labels in, the model's loss out."""
        from transformers import Trainer

        inputs["use_cache"] = False
        return Trainer.compute_loss(
            self,
            model,
            inputs,
            return_outputs=return_outputs,
            num_items_in_batch=num_items_in_batch,
        )


def sft_trainer_class():
    """trl's `SFTTrainer` with `ModelLoss`: the trainer the course's plumbing builds."""
    global _SFT_TRAINER
    if _SFT_TRAINER is None:
        from trl import SFTTrainer

        _SFT_TRAINER = type("CourseSFTTrainer", (ModelLoss, SFTTrainer), {})
    return _SFT_TRAINER


_SFT_TRAINER = None


def match_adapter_dtype(model, profile: Profile) -> int:
    """Undo trl's bf16 cast of QLoRA adapters unless the profile computes in bf16; returns the count.

    trl stores QLoRA adapter weights in bf16 (the QLoRA paper's choice). On a CPU without native bf16
    that makes every step 1.5-2x slower, and fp16 mixed precision (a T4) wants fp32 master weights.
    """
    if profile.compute_dtype == "bfloat16":
        return 0
    cast = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
            cast += 1
    return cast


def check_lengths(dataset, max_length: int, source: str) -> None:
    """Refuse tokenized examples longer than `max_length` (padding-free training keeps them whole)."""
    lengths = [len(ids) for ids in dataset["input_ids"]]
    long = [i for i, n in enumerate(lengths) if n > max_length]
    if long:
        raise CourseError(
            f"{source}: {len(long)} example(s) longer than max_length={max_length} tokens "
            f"(record {long[0]} has {lengths[long[0]]}). Drop or shorten them (notebook 02's "
            "length check), or raise the profile's max_length."
        )


@dataclass
class RunConfig:
    """One training run, as written in a YAML file for `python -m ftcourse.train`."""

    task: str = "polite"
    method: str = "qlora"
    profile: str | None = None  # None: choose from the hardware / FTCOURSE_PROFILE
    output_dir: str = "outputs/adapters/polite"
    train_samples: int | None = None  # None: the whole training split
    eval_samples: int | None = None  # None: the profile's eval_samples; 0 to skip
    profile_overrides: dict = field(
        default_factory=dict
    )  # e.g. {max_steps: 50, learning_rate: 1e-3}
    lora: dict = field(default_factory=dict)  # extra LoraConfig values
    sft: dict = field(default_factory=dict)  # extra SFTConfig values
    renamed_copies: int = 0  # bugfix: add this many copies under made-up names (ftcourse.augment)
    resume_from_checkpoint: str | bool | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        """Read a run from YAML, refusing unknown keys."""
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CourseError(f"{path}: unknown keys {unknown}; valid keys are {sorted(known)}.")
        return cls(**data)


@dataclass
class TrainResult:
    """What a training run leaves behind."""

    model: object
    tokenizer: object
    trainer: object
    seconds: float
    output_dir: Path
    log_history: list[dict]


def renamed_dataset(dataset, copies: int, seed: int = 0):
    """A task's Dataset plus `copies` renamed versions of each record (see ftcourse.augment)."""
    from datasets import Dataset

    from ftcourse.augment import with_renamed_copies

    return Dataset.from_list(with_renamed_copies(list(dataset), copies, seed))


def train(run: RunConfig) -> TrainResult:
    """Train one adapter (or a full fine-tune) on a course task and save it."""
    return train_with_callbacks(run, [])


def train_with_callbacks(run: RunConfig, callbacks: list) -> TrainResult:
    """`train`, with Trainer callbacks (e.g. to stop early or record timings)."""
    from peft import get_peft_model
    from transformers import set_seed

    from ftcourse.tasks import training_splits

    profile = choose_profile(run.profile).for_task(run.task).with_overrides(**run.profile_overrides)
    model, tokenizer = load_model(profile, run.method)
    if run.method != "full":
        set_seed(run.sft.get("seed", 0))  # the adapter's random init: same config, same run
        model = get_peft_model(model, lora_config(profile, **run.lora))
    train_ds, validation_ds = training_splits(run.task)
    if run.train_samples:
        train_ds = train_ds.select(range(min(run.train_samples, len(train_ds))))
    if run.renamed_copies:
        train_ds = renamed_dataset(train_ds, run.renamed_copies)
    args = sft_config(profile, run.output_dir, **run.sft)
    trainer = sft_trainer_class()(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=None if args.eval_strategy == "no" else validation_ds,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    check_lengths(trainer.train_dataset, profile.max_length, f"{run.task} training split")
    match_adapter_dtype(trainer.model, profile)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=run.resume_from_checkpoint)
    seconds = time.perf_counter() - start
    trainer.save_model(run.output_dir)  # adapter weights only for LoRA/QLoRA
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(run.output_dir)
    return TrainResult(
        model, tokenizer, trainer, seconds, Path(run.output_dir), trainer.state.log_history
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: train from a YAML run file, then report held-out accuracy."""
    parser = argparse.ArgumentParser(
        prog="python -m ftcourse.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument("config", help="YAML run file (see runs/)")
    parser.add_argument("--max-steps", type=int, help="override the profile's step budget")
    args = parser.parse_args(argv)
    try:
        run = RunConfig.from_yaml(args.config)
        if args.max_steps:
            run.profile_overrides = {**run.profile_overrides, "max_steps": args.max_steps}
        result = train(run)
    except CourseError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    state = result.trainer.state
    if result.trainer.is_world_process_zero():
        world = result.trainer.args.world_size
        print(f"trained {state.global_step} steps in {result.seconds:.0f} s on {world} process(es)")
        print(f"saved to {result.output_dir}")
        _report_eval(run, result)
    return 0


def _report_eval(run: RunConfig, result: TrainResult) -> None:
    from ftcourse.evaluate import evaluate
    from ftcourse.tasks import load_task

    profile = choose_profile(run.profile)
    n = profile.eval_samples if run.eval_samples is None else run.eval_samples
    if n and run.task in ("polite", "bugfix"):
        test = load_task(run.task, "test").select(range(n))
        res = evaluate(result.model, result.tokenizer, run.task, list(test), label=run.method)
        print(f"held-out {run.task} accuracy: {res.accuracy:.1%} (n={res.n})")


if __name__ == "__main__":
    sys.exit(main())


def epoch_scorer(tokenizer, task: str, records: list):
    """A Trainer callback that scores `records` on `task` at the end of every epoch.

    Its `scores` list gets one `EvalResult` per epoch (labelled "epoch N"), measured on the weights
    as they are at that moment: what a checkpoint saved then would score.
    """
    from transformers import TrainerCallback

    from ftcourse.evaluate import evaluate

    class EpochScorer(TrainerCallback):
        def __init__(self):
            self.scores = []

        def on_epoch_end(self, args, state, control, model=None, **kwargs):
            label = f"epoch {round(state.epoch)}"
            self.scores.append(
                evaluate(model, tokenizer, task, records, label=label, progress=False)
            )
            model.train()  # evaluate() switched it to eval mode

    return EpochScorer()


def epoch_table(history: list[dict], scores: list) -> list[dict]:
    """Per epoch: the last training loss logged in it, its validation loss, held-out accuracy."""
    rows = []
    for result, evals in zip(scores, [h for h in history if "eval_loss" in h]):
        epoch = round(evals["epoch"])
        train = [h["loss"] for h in history if "loss" in h and h["epoch"] <= evals["epoch"]]
        rows.append(
            {
                "epoch": epoch,
                "train_loss": train[-1] if train else float("nan"),
                "eval_loss": evals["eval_loss"],
                "accuracy": result.accuracy,
            }
        )
    return rows
