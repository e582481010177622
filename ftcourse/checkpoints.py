"""Checkpoints and resuming: a run saved whole, its checkpoints found, checked, resumed or removed.

Training saves checkpoint folders (`checkpoint-<step>`, `ftcourse.paths.CHECKPOINTS`) in its output
folder as it goes. A run resumes from one only when it fits: the same base model, the same LoRA
rank and target modules. A finished run replaces the output folder with the adapter in one move
(`save_trained`), so the folder never holds half an adapter.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from ftcourse.errors import CourseError
from ftcourse.paths import CHECKPOINTS, partial_dir, replace_dir
from ftcourse.profiles import Profile, other_base
from ftcourse.runfile import RunConfig
from ftcourse.trainer import lora_config


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


def remove_checkpoints(folder: str | Path) -> None:
    """Delete the training checkpoints in `folder`."""
    for checkpoint in Path(folder).glob(CHECKPOINTS):
        shutil.rmtree(checkpoint, ignore_errors=True)


def checkpoint_to_resume(run: RunConfig, profile: Profile) -> str | None:
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
    made_for = other_base(config, profile.model_path)
    if made_for:
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


def cli_checkpoints(profile: Profile) -> dict:
    """The command line's SFTConfig checkpoints: every quarter of a step budget (or epoch), one kept."""
    if profile.max_steps > 0:
        return {
            "save_strategy": "steps",
            "save_steps": max(1, profile.max_steps // 4),
            "save_total_limit": 1,
        }
    return {"save_strategy": "epoch", "save_total_limit": 1}


def resume_point(run: RunConfig, fresh: bool) -> str | bool | None:
    """What the command line resumes from: the run file's checkpoint, else the newest in output_dir."""
    if fresh:
        if is_main_process():
            remove_checkpoints(run.output_dir)
        return None
    if run.resume_from_checkpoint:
        return run.resume_from_checkpoint
    checkpoint = last_checkpoint(run.output_dir)
    if checkpoint is not None and is_main_process():
        print(
            f"resuming from {checkpoint} (step {checkpoint_step(checkpoint)}); "
            "add --fresh to start over",
            file=sys.stderr,
        )
    return None if checkpoint is None else str(checkpoint)


def is_main_process() -> bool:
    """Whether this is the main process of a run (the only one, or rank 0 of several)."""
    return int(os.environ.get("RANK", "0")) == 0  # torchrun and accelerate launch set RANK
