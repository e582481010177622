"""Training: the article's QLoRA recipe on today's APIs, driven by a profile.

Notebook 04 spells these calls out one by one; this module is the same recipe for the other notebooks,
the tests and the script form:

    python -m ftcourse.train runs/polite-qlora.yaml           # one process
    accelerate launch -m ftcourse.train runs/polite-qlora.yaml  # DDP / FSDP on several devices
    python -m ftcourse.train --data my_chats.jsonl            # your own file (ftcourse.yourdata)

The command line saves a checkpoint every quarter of the step budget (the notebooks save none). After
Ctrl-C, the same command resumes from the newest checkpoint in the output folder; `--fresh` starts
over. A finished run replaces the output folder with the adapter in one move and drops its
checkpoints. Exit status: 0 trained; 2 bad input or an unusable setup, one `error: <message>` line on
stderr (`ftcourse.errors`); 130 interrupted. Any other failure is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import errno
import functools
import json
import os
import shutil
import sys
import time
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ftcourse.chat import prepare_tokenizer
from ftcourse.errors import CourseError, report_errors
from ftcourse.memory import METHODS
from ftcourse.paths import CHECKPOINTS, partial_dir, prepare_output_dir, replace_dir
from ftcourse.profiles import Profile, choose_profile, ensure_available, ensure_fits, same_model

EXIT_INTERRUPTED = 130  # the shell's status for a command stopped by Ctrl-C (128 + SIGINT)


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


def check_method(method: str) -> str:
    """Refuse a training method the course does not know; return it."""
    if method not in METHODS:
        raise CourseError(f"Unknown method {method!r}: use one of {', '.join(METHODS)}.")
    return method


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
    # a folder laid out as data/: <task>/train.jsonl and <task>/validation.jsonl (notebook 02 saves
    # outputs/data); None: the committed training split, cut 90/10
    data_dir: str | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        """Read a run from YAML, refusing bad YAML, unknown keys, wrong types and unknown names."""
        data = _read_yaml_mapping(Path(path))
        _check_keys(data, {f.name for f in dataclasses.fields(cls)}, path)
        _check_types(data, typing.get_type_hints(cls), path)
        _check_sections(data, path)
        run = cls(**data)
        try:
            _check_names(run)
        except CourseError as exc:
            raise CourseError(f"{path}: {exc}") from None
        return run


def _read_yaml_mapping(path: Path) -> dict:
    """A YAML file's top-level mapping (a UTF-8 byte-order mark is skipped), with clear errors."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CourseError(
            f"{path}: no such file. Check the path (relative to {Path.cwd()}); the course's run "
            "files are in runs/."
        ) from None
    except UnicodeDecodeError as err:
        raise CourseError(
            f"{path}: byte 0x{err.object[err.start]:02x} is not valid UTF-8. Re-save the file as "
            "UTF-8."
        ) from None
    except OSError as exc:
        raise CourseError(f"{path}: cannot read it ({exc.strerror or exc}).") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise CourseError(
            f"{path}, line {mark.line + 1}, column {mark.column + 1}: not valid YAML "
            f"({err.problem or err.context}). Write one `key: value` per line, indent nested values "
            "with spaces, and quote text that holds `: ` or `#`."
        ) from None
    except yaml.YAMLError as err:
        raise CourseError(f"{path}: not valid YAML ({err}).") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CourseError(
            f"{path}: the file holds {_kind(data)}, not settings. A run file is a mapping of "
            "`key: value` lines, e.g. `task: polite` (see runs/)."
        )
    return data


# How a YAML value's type reads to a learner
_TYPE_NAMES = {
    list: "a list",
    str: "text",
    bool: "true/false",
    int: "a whole number",
    float: "a number",
    dict: "a mapping",
    type(None): "empty",
}


def _kind(value) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _check_keys(
    given: dict, valid: set[str], path, section: str = "", valid_text: str | None = None
) -> None:
    """Refuse keys outside `valid`, naming each (with the nearest valid one) and the valid keys."""
    unknown = sorted(map(str, set(given) - valid))
    if not unknown:
        return
    near = [difflib.get_close_matches(k, valid, n=1) for k in unknown]
    named = ", ".join(
        f"{k!r}" + (f" (did you mean {m[0]!r}?)" if m else "") for k, m in zip(unknown, near)
    )
    keys = "key" if len(unknown) == 1 else "keys"
    where = f" in {section}" if section else ""
    raise CourseError(
        f"{path}: unknown {keys} {named}{where}. Valid keys: "
        f"{valid_text or ', '.join(sorted(valid))}."
    )


def _check_types(data: dict, hints: dict, path) -> None:
    """Refuse a value of the wrong type, e.g. `train_samples: many`."""
    for key, value in data.items():
        allowed = typing.get_args(hints[key]) or (hints[key],)
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            want = " or ".join(dict.fromkeys(_TYPE_NAMES.get(a, a.__name__) for a in allowed))
            raise CourseError(f"{path}: {key} is {value!r} ({_kind(value)}); it must be {want}.")


def _check_sections(data: dict, path) -> None:
    """The keys of `profile_overrides`, `lora` and `sft`: Profile, LoraConfig and SFTConfig fields."""
    if data.get("profile_overrides"):
        valid = {f.name for f in dataclasses.fields(Profile)}
        _check_keys(data["profile_overrides"], valid, path, "profile_overrides")
    if data.get("lora"):
        from peft import LoraConfig

        valid = {f.name for f in dataclasses.fields(LoraConfig)}
        _check_keys(data["lora"], valid, path, "lora", "the fields of peft's LoraConfig")
    if data.get("sft"):
        from trl import SFTConfig

        valid = {f.name for f in dataclasses.fields(SFTConfig)}
        _check_keys(data["sft"], valid, path, "sft", "the fields of trl's SFTConfig")


def _check_names(run: RunConfig) -> None:
    """Refuse an unknown task, method or profile name before anything loads."""
    from ftcourse.profiles import get_profile
    from ftcourse.tasks import get_task

    get_task(run.task)
    check_method(run.method)
    if run.profile is not None:
        get_profile(run.profile)


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


def train(run: RunConfig, splits: tuple | None = None) -> TrainResult:
    """Train one adapter (or a full fine-tune) on a course task, or on `splits`, and save it."""
    return train_with_callbacks(run, [], splits)


def train_with_callbacks(
    run: RunConfig, callbacks: list, splits: tuple | None = None
) -> TrainResult:
    """`train`, with Trainer callbacks (e.g. to stop early or record timings).

    `splits`, a (train, validation) pair of Datasets with a `messages` column, replaces the task's
    data (`ftcourse.yourdata` passes a learner's own file this way; `run.task` then names it).
    """
    from peft import get_peft_model
    from transformers import set_seed

    profile = choose_profile(run.profile).for_task(run.task).with_overrides(**run.profile_overrides)
    prepare_output_dir(run.output_dir)  # an unwritable folder fails now, not after training
    train_ds, validation_ds = splits or _splits(run)  # and so does a bad data file
    resume = _checkpoint_to_resume(run, profile)  # and a checkpoint of another model
    model, tokenizer = load_model(profile, run.method)
    if run.method != "full":
        set_seed(run.sft.get("seed", 0))  # the adapter's random init: same config, same run
        model = get_peft_model(model, lora_config(profile, **run.lora))
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
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - start
    save_trained(trainer, tokenizer, run.output_dir)
    return TrainResult(
        model, tokenizer, trainer, seconds, Path(run.output_dir), trainer.state.log_history
    )


def train_on_file(run: RunConfig, data: str | Path, score: str | None = None, test=None):
    """Train on your own data file (`ftcourse.yourdata`: prepare, train, measure); its Report."""
    from ftcourse import yourdata

    prepared, scorer, splits = yourdata.start(run, data, score, test)
    return yourdata.finish(train(run, splits=splits), prepared, scorer, run)


def _splits(run: RunConfig):
    """The run's (train, validation) Datasets: from `data_dir` when set, else the committed split."""
    from ftcourse.tasks import load_task, training_splits

    if run.data_dir is None:
        return training_splits(run.task)
    splits = ("train", "validation")
    for path in (Path(run.data_dir) / run.task / f"{split}.jsonl" for split in splits):
        if not path.is_file():
            raise CourseError(
                f"{path} does not exist: data_dir ({run.data_dir}) must hold {run.task}/train.jsonl "
                f"and {run.task}/validation.jsonl. Fix data_dir in the run file, or save the files "
                "(notebook 02 writes them under outputs/data)."
            )
    return tuple(load_task(run.task, split, run.data_dir) for split in splits)


def save_trained(trainer, tokenizer, folder: str | Path) -> Path:
    """Save the adapter (or model) and tokenizer so that `folder` is never half-written.

    Every process calls this (FSDP gathers the weights on all of them); the main process writes a
    hidden sibling (`ftcourse.paths.partial_dir`) and moves it into place (`replace_dir`).
    """
    partial = partial_dir(folder)
    main = trainer.is_world_process_zero()
    if main:
        shutil.rmtree(partial, ignore_errors=True)  # what a crashed save left behind
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(partial))  # adapter weights only for LoRA/QLoRA
    if main:
        tokenizer.save_pretrained(partial)
        replace_dir(partial, folder)
    trainer.accelerator.wait_for_everyone()
    return Path(folder)


def last_checkpoint(folder: str | Path) -> Path | None:
    """The newest complete checkpoint in `folder`: its save got as far as its trainer state."""
    steps = {p: checkpoint_step(p) for p in Path(folder).glob(CHECKPOINTS)}
    complete = [p for p, step in steps.items() if step is not None]
    return max(complete, key=steps.get, default=None)


def checkpoint_step(checkpoint: Path) -> int | None:
    """The training step a checkpoint was saved at; None when its trainer state is missing or cut."""
    try:
        return int(json.loads((checkpoint / "trainer_state.json").read_text())["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _checkpoint_to_resume(run: RunConfig, profile: Profile) -> str | None:
    """`run.resume_from_checkpoint` as a folder (True: the newest one), checked to fit the run."""
    checkpoint = run.resume_from_checkpoint
    if checkpoint is True:
        checkpoint = last_checkpoint(run.output_dir)
        if checkpoint is None:
            raise CourseError(
                f"resume_from_checkpoint is true, but {run.output_dir} holds no complete "
                "checkpoint. Set it to a checkpoint folder, or remove it to start over."
            )
    if not checkpoint:
        return None
    problem = _unresumable(Path(checkpoint), run, profile)
    if problem:
        raise CourseError(
            f"cannot resume from {checkpoint}: {problem}. To start over instead, run again with "
            "--fresh, or choose another output folder."
        )
    return str(checkpoint)


def _unresumable(checkpoint: Path, run: RunConfig, profile: Profile) -> str | None:
    """Why `checkpoint` cannot go on as this run (another base model, other LoRA shapes), if so."""
    adapter = run.method != "full"
    name = "adapter_config.json" if adapter else "config.json"
    try:
        config = json.loads((checkpoint / name).read_text())
    except (OSError, ValueError):
        return f"it has no readable {name} (not a {run.method} checkpoint, or a damaged one)"
    made_for = config.get("base_model_name_or_path" if adapter else "_name_or_path") or ""
    if made_for and not same_model(made_for, profile.model_path):
        return f"it was trained on {made_for}, but this run trains {profile.model} ({profile.name})"
    if adapter:
        lora = lora_config(profile, **run.lora)
        theirs = (config.get("r"), _modules(config.get("target_modules")))
        ours = (lora.r, _modules(lora.target_modules))
        if theirs != ours:
            return (
                f"its adapter has r={theirs[0]} on {', '.join(theirs[1])}; this run's has "
                f"r={ours[0]} on {', '.join(ours[1])}"
            )
    return None


def _modules(target_modules) -> list[str]:
    """LoraConfig's target_modules (a name such as "all-linear", or several names), sorted."""
    if isinstance(target_modules, str):
        return [target_modules]
    return sorted(target_modules or [])


def main(argv: list[str] | None = None) -> int:
    """Command line: train from a YAML run file or your own data file; the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m ftcourse.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument("config", nargs="?", help="YAML run file (see runs/); or use --data")
    parser.add_argument(
        "--data", help="your own .json/.jsonl file, in any of the four formats (ftcourse.yourdata)"
    )
    parser.add_argument("--name", help="with --data: the run's name (default: the file's name)")
    parser.add_argument("--max-steps", type=int, help="override the profile's step budget")
    parser.add_argument("--epochs", type=float, help="train this many epochs, not a step budget")
    parser.add_argument("--output-dir", help="override the output folder")
    parser.add_argument("--profile", help="a profile by name (default: chosen from the hardware)")
    parser.add_argument(
        "--score",
        metavar="MODULE:FUNCTION",
        help="with --data: score(record, answer) -> bool, run on the validation split",
    )
    parser.add_argument(
        "--test",
        help="with --data and --score: a held-out file to score instead (never trained on)",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="start over: ignore (and delete) earlier checkpoints"
    )
    args = parser.parse_args(argv)
    if (args.config is None) == (args.data is None):
        parser.error("give a YAML run file or --data FILE (one of the two)")
    if args.config and (args.name or args.score or args.test):
        parser.error("--name, --score and --test go with --data")
    if args.test and not args.score:
        parser.error("--test needs --score: say how its answers are scored")
    return report_errors(lambda: _train_command(args))


def _run_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig the command line describes: a run file's, or one for a --data file."""
    if args.data:
        name = args.name or default_name(args.data)
        run = RunConfig(task=name, output_dir=f"outputs/adapters/{name}", eval_samples=0)
    else:
        run = RunConfig.from_yaml(args.config)
    if args.profile:
        from ftcourse.profiles import get_profile

        run.profile = get_profile(args.profile).name
    if args.max_steps:
        run.profile_overrides = {**run.profile_overrides, "max_steps": args.max_steps}
    if args.epochs:
        budget = {"max_steps": -1, "num_train_epochs": args.epochs}
        run.profile_overrides = {**run.profile_overrides, **budget}
    if args.output_dir:
        run.output_dir = args.output_dir
    return run


def default_name(data: str | Path) -> str:
    """A run's name from its data file: the file's name, or its folder's for train/data files."""
    path = Path(data)
    generic = path.stem.lower() in ("train", "data", "dataset") and path.parent.name
    return path.parent.name if generic else path.stem


def _train_command(args: argparse.Namespace) -> int:
    run = _run_from_args(args)
    try:
        profile = _fitting_profile(run)
    except CourseError as exc:
        raise CourseError(
            f"{args.config}: {exc}" if args.config and run.profile else str(exc)
        ) from None
    if not args.data:
        run.sft = {**cli_checkpoints(profile), **run.sft}
    run.resume_from_checkpoint = _resume_point(run, args.fresh)
    try:
        if args.data:
            train_on_file(run, args.data, args.score, args.test)
            if _is_main_process():
                remove_checkpoints(run.output_dir)
            return 0
        result = train(run)
    except KeyboardInterrupt:
        return _interrupted(run)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise CourseError(
            f"disk full while writing {exc.filename or run.output_dir}; free space or choose "
            "another --output-dir."
        ) from None
    if result.trainer.is_world_process_zero():
        remove_checkpoints(result.output_dir)  # the run is finished: nothing left to resume
        world = result.trainer.args.world_size
        state = result.trainer.state
        print(f"trained {state.global_step} steps in {result.seconds:.0f} s on {world} process(es)")
        print(f"saved to {result.output_dir}")
        try:
            _report_eval(run, result)
        except KeyboardInterrupt:
            print(
                f"interrupted during the held-out evaluation; the adapter is saved in {result.output_dir}.",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
    return 0


def _fitting_profile(run: RunConfig) -> Profile:
    """The run's profile, refused (a `CourseError`) when this machine cannot run it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "does not fit" is ensure_fits' error, not a warning too
        profile = choose_profile(run.profile)
    return ensure_fits(profile).with_overrides(**run.profile_overrides)


def cli_checkpoints(profile: Profile) -> dict:
    """The command line's SFTConfig checkpoints: every quarter of a step budget (or epoch), one kept."""
    if profile.max_steps > 0:
        return {
            "save_strategy": "steps",
            "save_steps": max(1, profile.max_steps // 4),
            "save_total_limit": 1,
        }
    return {"save_strategy": "epoch", "save_total_limit": 1}


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0  # torchrun and accelerate launch set RANK


def remove_checkpoints(folder: str | Path) -> None:
    """Delete the training checkpoints in `folder`."""
    for checkpoint in Path(folder).glob(CHECKPOINTS):
        shutil.rmtree(checkpoint, ignore_errors=True)


def _resume_point(run: RunConfig, fresh: bool) -> str | bool | None:
    """What the command line resumes from: the run file's checkpoint, else the newest in output_dir."""
    if fresh:
        if _is_main_process():
            remove_checkpoints(run.output_dir)
        return None
    if run.resume_from_checkpoint:
        return run.resume_from_checkpoint
    checkpoint = last_checkpoint(run.output_dir)
    if checkpoint is not None and _is_main_process():
        print(
            f"resuming from {checkpoint} (step {checkpoint_step(checkpoint)}); "
            "add --fresh to start over",
            file=sys.stderr,
        )
    return None if checkpoint is None else str(checkpoint)


def _interrupted(run: RunConfig) -> int:
    """Say what Ctrl-C left and how to go on (main process only); return the exit status."""
    checkpoint = last_checkpoint(run.output_dir)
    if checkpoint is None:
        said = (
            f"interrupted before the first checkpoint: nothing to resume in {run.output_dir}. "
            "Run the same command again to start over."
        )
    else:
        said = (
            f"interrupted: the last checkpoint, {checkpoint} (step {checkpoint_step(checkpoint)}), "
            "is kept. Run the same command again to resume from it, or add --fresh to start over."
        )
    if _is_main_process():
        print(said, file=sys.stderr)
    return EXIT_INTERRUPTED


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
