"""Your own model: a profile derived from any causal LM (a Hub id or a local folder) and this machine.

The course's profiles hard-code what a model needs; for another model the same values are derived:

- the compute dtype from the hardware: bf16 on a GPU that has it (compute capability 8.0+), else
  fp32 (a T4: fp16 is faster, at your risk: FTCOURSE_DTYPE=float16); fp32 on a CPU;
- LoRA on every linear layer of the model (read from its config, so any module names work);
- the sequence length, batch and gradient accumulation from `ftcourse.memory.estimate`: the
  longest length up to 2,048 (512 on a CPU) and the largest batch up to 16 that fit in 90% of the
  GPU's memory (80% of the free RAM on a CPU), accumulating to an effective batch of 16; the base
  in 16-bit (fp32 without bf16) when that fits at batch 4, else in 4-bit. The estimate reads every
  layer as Llama's (attention and a gated MLP): for other blocks (LFM2's convolutions) it is an
  approximation, not checked against a measurement;
- pad and end-of-turn tokens from the tokenizer and its chat template (`ftcourse.chat`), and how
  the loss finds the answers: the template's markers, trl's training version of it, or
  prompt/completion records.

    python -m ftcourse.train --data my_chats.jsonl --model Qwen/Qwen3-1.7B
    FTCOURSE_MODEL=path/to/model jupyter lab    # every notebook's setup cell picks it up

A stand-in folder built by `ftcourse.standins` (a tiny random model) gets a stand-in's tiny
budgets: it checks code paths, never accuracy.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

from ftcourse.errors import CourseError
from ftcourse.paths import REPO_ROOT
from ftcourse.profiles import (
    Hardware,
    Profile,
    choose_profile,
    in_hub_cache,
    is_offline,
    with_env_settings,
)

EFFECTIVE_BATCH = 16  # the article's effective batch
MAX_LENGTH = {"cuda": 2048, "cpu": 512}
MIN_LENGTH = 256  # shorter than this and most chat records would not fit: refuse instead
RAM_SHARE = 0.8  # of the RAM free now, what a CPU run may plan to use
GPU_SHARE = 0.9  # of the GPU's memory: room for the estimate's error and the allocator's slack


def resolve(model: str) -> str:
    """A local folder as an absolute path, or a Hub id that can be loaded here; else a CourseError."""
    from ftcourse.standins import STANDINS_DIR, ensure_standin

    path = Path(model).expanduser()
    # a relative path from the working folder or, as a notebook runs in notebooks/, the repository's
    for candidate in [path] if path.is_absolute() else [path, REPO_ROOT / path]:
        if candidate.resolve().parent == STANDINS_DIR.resolve() and not candidate.is_dir():
            ensure_standin(candidate.name)  # a course stand-in is built on first use, offline
        if candidate.is_dir():
            path = candidate
            break
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CourseError(f"{path} has no config.json: give a model folder or a Hub id.")
        return str(path.resolve())
    if model.count("/") != 1 or model.startswith((".", "/", "~")):
        raise CourseError(
            f"--model {model}: no such folder, and not a Hub id (owner/name). Give a folder that "
            "holds config.json, or a Hub id such as Qwen/Qwen3-1.7B."
        )
    if is_offline() and not in_hub_cache(model):
        raise CourseError(
            f"{model} is not in the local Hugging Face cache and this machine is offline "
            f"(HF_HUB_OFFLINE=1 or no network): download it once online (`hf download {model}`), "
            "or give a local folder."
        )
    return model


def linear_modules(config) -> tuple[str, ...]:
    """The names of the model's linear layers (all but the output head): LoRA's targets."""
    from ftcourse.lora import _linear_shapes

    names = {name.rsplit(".", 1)[-1] for name, _, _ in _linear_shapes(config)[1]}
    return tuple(sorted(names - {"lm_head"}))


@functools.lru_cache(maxsize=16)
def model_profile(model: str, hw: Hardware | None = None) -> Profile:
    """The profile for `model` on this hardware: dtype, 4-bit or not, length, batch, LoRA, tokens.

    Worked out once per process: a run asks for it several times (checks, data, training, model
    card), and a CPU plan read from the free RAM must not change between them.
    """
    from transformers import AutoConfig

    from ftcourse.chat import end_of_turn, training_form

    hw = hw or Hardware.detect()
    path = resolve(model)
    config = AutoConfig.from_pretrained(path)
    tokenizer = _tokenizer(path)
    form, how = training_form(tokenizer)
    eot = end_of_turn(tokenizer)
    standin = Path(path, "standin.json").is_file()
    plan = plan_for(config, hw)
    memory, dtype, targets = plan["memory_gb"], plan["compute_dtype"], plan["target_modules"]
    budget = dict(max_steps=-1, num_train_epochs=3 if hw.cuda else 1, learning_rate=2e-4)
    if standin:  # a tiny random model: a few steps at a high rate move the adapter measurably
        plan |= dict(max_length=256, batch_size=2, grad_accum=2)
        budget = dict(max_steps=4, num_train_epochs=1, learning_rate=1e-2)
    name = Path(path).name if Path(path).is_dir() else path.split("/")[-1]
    return Profile(
        name=f"model:{name}",
        summary=(
            f"{path}: {'QLoRA (4-bit base)' if plan['load_in_4bit'] else 'LoRA'}, {dtype}, "
            f"length {plan['max_length']}, batch {plan['batch_size']} x {plan['grad_accum']}; "
            + (
                "a course stand-in's tiny budgets"
                if standin
                else f"estimate {plan['estimate_gb']:.1f} GB of {memory:.1f} GB"
            )
            + f"; answers: {how}"
        ),
        model=path,
        compute_dtype=dtype,
        load_in_4bit=plan["load_in_4bit"],
        max_length=plan["max_length"],
        batch_size=plan["batch_size"],
        grad_accum=plan["grad_accum"],
        **budget,
        lora_dropout=0.05 if hw.cuda else 0.0,
        target_modules=targets,
        eval_samples=4 if standin else 100,
        gradient_checkpointing=hw.cuda,
        needs_cuda=hw.cuda,
        needs_bf16=hw.bf16,
        gpu_gb=memory if hw.cuda else 0.0,
        end_of_turn=eot if eot != tokenizer.eos_token else None,
        loss_on=form,
        notes=""
        if hw.bf16 or not hw.cuda
        else "fp32: no bf16 here; FTCOURSE_DTYPE=float16 is faster",
        standin_for="" if standin else None,  # a stand-in for no profile: for itself
        opt_in=True,
    )


def plan_for(model, hw: Hardware) -> dict:
    """What `hw` can do with `model` (a config, bundled name or model folder): `plan_memory`'s plan,
    with the memory planned for, the compute dtype and LoRA's targets; a CourseError if it won't fit."""
    from ftcourse.memory import as_config

    config = as_config(model)
    device = "cuda" if hw.cuda else "cpu"
    memory = GPU_SHARE * hw.gpu_memory_gb if hw.cuda else RAM_SHARE * _free_ram_gb()
    dtype = "bfloat16" if hw.bf16 else "float32"
    targets = linear_modules(config)
    plan = plan_memory(config, memory, device, dtype, targets, cap=_context(config, device))
    return plan | dict(memory_gb=memory, compute_dtype=dtype, target_modules=targets)


def plan_memory(
    config, memory_gb: float, device: str, dtype: str, targets: tuple[str, ...], cap: int
) -> dict:
    """Length, batch, accumulation and 4-bit or not that fit `memory_gb`, from the estimate."""
    from ftcourse.memory import GB, estimate

    def fits(method: str, length: int, batch: int) -> float | None:
        est = estimate(
            config, method, seq_len=length, batch_size=batch, compute_dtype=dtype,
            gradient_checkpointing=device == "cuda", target_modules=targets, device=device,
        )  # fmt: skip
        return est.total / GB if est.total / GB <= memory_gb else None

    length, floor = cap, min(MIN_LENGTH, cap)
    while length >= floor:
        for method, batch_floor in (("lora", 4), ("qlora", 1)):
            if fits(method, length, batch_floor) is None:
                continue
            batch = batch_floor
            while batch < EFFECTIVE_BATCH and fits(method, length, batch * 2) is not None:
                batch *= 2
            return dict(
                load_in_4bit=method == "qlora",
                max_length=length,
                batch_size=batch,
                grad_accum=max(EFFECTIVE_BATCH // batch, 1),
                estimate_gb=fits(method, length, batch),
            )
        length //= 2
    smallest = estimate(
        config, "qlora", seq_len=floor, compute_dtype=dtype,
        gradient_checkpointing=device == "cuda", target_modules=targets, device=device,
    ).total / GB  # fmt: skip
    where = "90% of this GPU" if device == "cuda" else "80% of this machine's free RAM"
    raise CourseError(
        f"This model does not fit: even in 4-bit at batch 1 and {floor} tokens the estimate "
        f"is {smallest:.1f} GB, and {where} offers {memory_gb:.1f} GB. Choose a smaller model, or "
        "a machine with more memory (notebook 01 shows where the memory goes)."
    )


def _context(config, device: str) -> int:
    """The longest length to plan for: the model's context, at most MAX_LENGTH on this device."""
    context = getattr(config, "max_position_embeddings", None) or MAX_LENGTH[device]
    return min(context, MAX_LENGTH[device])


def _tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _free_ram_gb() -> float:
    import psutil

    return psutil.virtual_memory().available / 1e9


def profile_for(
    name: str | None = None, model: str | None = None, hw: Hardware | None = None
) -> Profile:
    """The profile a run or notebook gets: derived from `model` (else $FTCOURSE_MODEL, unless a
    profile is named), else `ftcourse.profiles.choose_profile(name)`."""
    hw = hw or Hardware.detect()
    model = model or (None if name else os.environ.get("FTCOURSE_MODEL") or None)
    if model:
        return with_env_settings(model_profile(model, hw), hw)
    return choose_profile(name, hw)


def notebook_profile() -> Profile:
    """The profile `setup_notebook` gives a notebook here (for checkers), without its warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return profile_for()
