"""The trainer the course builds: model and config builders, trl's SFTTrainer with mixins, dtype fixes.

Notebook 04 spells these calls out one by one; `ftcourse.train.train` makes them for a run:

    model, tokenizer = load_model(profile, "qlora")      # 4-bit base (bnb_config), tokenizer
    model = get_peft_model(model, lora_config(profile))  # the article's LoRA, r=16, alpha=32
    trainer = sft_trainer_class()(model=model, args=sft_config(profile, folder), ...)
    check_lengths(trainer.train_dataset, profile.max_length, "training split")
    match_adapter_dtype(trainer.model, profile)          # fp32 adapters off a bf16 profile

`ModelLoss` and `SteadyProgress` are the two mixins of that trainer (its loss, its progress table);
`keep_trainable_on_cpu` and `match_adapter_dtype` undo what bitsandbytes and trl do that breaks or
slows training on the course's hardware.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from ftcourse.chat import prepare_tokenizer
from ftcourse.errors import CourseError
from ftcourse.profiles import Profile, ensure_available
from ftcourse.runfile import check_method


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

    check_method(method)
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


def run_settings(profile: Profile, output_dir: str | Path) -> dict:
    """What every trl config of the course sets alike: the profile's precision and memory saver, no
    saving, no reporting, seeded. trl turns bf16 on by default: refused on a CPU, emulated on a T4,
    so the profile decides."""
    return dict(
        output_dir=str(output_dir),
        bf16=profile.compute_dtype == "bfloat16",
        fp16=profile.compute_dtype == "float16",
        use_cpu=not torch.cuda.is_available(),
        activation_checkpointing=profile.gradient_checkpointing,
        save_strategy="no",
        report_to="none",
        seed=0,
        dataloader_num_workers=0,
    )


def sft_config(profile: Profile, output_dir: str | Path, **overrides):
    """SFTConfig for the profile: dtype flags, step budget and memory savers set explicitly."""
    from trl import SFTConfig

    values = dict(
        **run_settings(profile, output_dir),
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
        # learn the answers, not the prompts: through generation markers, or, for a template that
        # has none, from prompt/completion records (`training_dataset`)
        assistant_only_loss=profile.loss_on == "assistant",
        logging_steps=profile.logging_steps,
        # the loss on the validation split, four times a run: the overfitting alarm
        eval_strategy=profile.eval_strategy,
        eval_steps=profile.eval_steps,
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


NOTEBOOK_REDRAW_S = 2.0  # transformers redraws its notebook progress table every 0.2 s


class SteadyProgress:
    """Mix in before a Trainer: in a notebook, redraw the progress table every 2 s, not every 0.2 s.

    Each redraw is one message from the kernel. A client that reads them only once the cell is done
    (nbval does) holds about a thousand in ZeroMQ's queues and drops the rest, the cell's final
    'idle' among them: a five-minute training cell then never ends for it. A redraw every 2 s keeps
    a ten-minute cell at about 300 messages.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from transformers.utils.notebook import NotebookProgressCallback

        if self.pop_callback(NotebookProgressCallback) is not None:
            self.add_callback(_steady_notebook_progress()())


@functools.cache
def _steady_notebook_progress() -> type:
    """transformers' notebook progress callback with its table redrawn every NOTEBOOK_REDRAW_S."""
    from transformers.utils.notebook import NotebookProgressCallback

    def on_train_begin(self, args, state, control, **kwargs):
        NotebookProgressCallback.on_train_begin(self, args, state, control, **kwargs)
        self.training_tracker.update_every = NOTEBOOK_REDRAW_S

    return type(
        "SteadyNotebookProgress", (NotebookProgressCallback,), {"on_train_begin": on_train_begin}
    )


@functools.cache
def sft_trainer_class() -> type:
    """trl's `SFTTrainer` with `ModelLoss` and `SteadyProgress`: the trainer the course builds."""
    from trl import SFTTrainer

    return type("CourseSFTTrainer", (ModelLoss, SteadyProgress, SFTTrainer), {})


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


def training_dataset(dataset, profile: Profile, source: str = "the training split"):
    """`dataset` in the form the profile's template trains with: chats, or prompt/completion records."""
    if profile.loss_on == "assistant":
        return dataset
    from datasets import Dataset

    from ftcourse.chat import as_prompt_completion

    return Dataset.from_list(as_prompt_completion(list(dataset), source))


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
