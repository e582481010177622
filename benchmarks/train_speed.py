"""Training speed: the course's trl training against a plain PyTorch loop, in one process, as a ratio.

Both sides train the same freshly loaded model (same LoRA init) on the same data. The plain loop
iterates over a trainer's own dataloader with padded batches (same sampler, collator and
answer-only labels) and does what a textbook loop does (forward, backward, gradient clipping,
the Trainer's optimizer and schedule): the baseline. Each trl variant changes one thing, so its
ratio says what that change buys against the same baseline: `padded` is trl's SFTTrainer on
padded batches, `padding-free` the profile's batches, `model-loss` adds the course's
`ftcourse.trainer.ModelLoss` (the trainer the course builds), `model-loss-padded` is that on padded
batches. Runs alternate (trl, plain, trl, plain, ...), and each trl run is divided by the plain
run right after it, so a machine that slows down for a minute slows both halves of a pair; the
median of the pairs is the ratio quoted.

    python benchmarks/train_speed.py                            # QLoRA and LoRA, bugfix
    python benchmarks/train_speed.py --variants padded model-loss  # a slice
    python benchmarks/train_speed.py --update-docs docs/benchmarks.md

Steps per second are timed from the end of step WARMUP to the last step, so loading, the first
steps' allocations and the trainer's setup are left out; `wall s` is the whole `train()` call.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

WARMUP = 5
# What each trl variant changes in the course's SFTConfig (`ftcourse.trainer.sft_config`)
VARIANTS = {
    "padded": {"padding_free": False},  # the course's recipe before padding-free batches
    "padding-free": {},  # the profile's settings (padding-free on cpu-tiny), trl's own loss
    "model-loss": {"model_loss": True},  # and the model's own loss (`ftcourse.trainer.ModelLoss`)
    "model-loss-padded": {"model_loss": True, "padding_free": False},  # the two apart
}
BASELINE = "padded"  # the batches the plain loop trains on


def _trainer(profile, method: str, task: str, steps: int, sft: dict, out: str):
    """A fresh SFTTrainer on the profile's model, as `ftcourse.train.train` builds it."""
    from peft import get_peft_model
    from transformers import set_seed
    from trl import SFTTrainer

    from ftcourse.tasks import load_task
    from ftcourse.trainer import (
        load_model,
        lora_config,
        match_adapter_dtype,
        sft_config,
        sft_trainer_class,
    )

    sft = dict(sft)
    trainer_class = sft_trainer_class() if sft.pop("model_loss", False) else SFTTrainer
    model, tokenizer = load_model(profile, method)
    set_seed(0)
    model = get_peft_model(model, lora_config(profile))
    sft = {"eval_strategy": "no", **sft}  # no evaluation pauses: the plain loop has none either
    if sft.get("padding_free") is False:  # padded batches are cut to max_length
        sft["max_length"] = profile.max_length
    args = sft_config(profile, out, max_steps=steps, **sft)
    trainer = trainer_class(
        model=model, args=args, train_dataset=load_task(task, "train"), processing_class=tokenizer
    )
    match_adapter_dtype(trainer.model, profile)
    return trainer


class _Clock:
    """Step end times, from a Trainer callback or the plain loop."""

    def __init__(self):
        self.times: list[float] = []

    def rate(self) -> float:
        """Steps per second after the warm-up steps."""
        steps = len(self.times) - WARMUP
        return steps / (self.times[-1] - self.times[WARMUP - 1])


def time_trl(trainer) -> tuple[_Clock, float, list[float]]:
    """Train with `trainer.train()`; the clock, the wall time and the logged losses."""
    from transformers import TrainerCallback

    clock = _Clock()

    class Tick(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            clock.times.append(time.perf_counter())

    trainer.add_callback(Tick())
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return clock, wall, losses


def time_plain(trainer) -> tuple[_Clock, float, list[float], int]:
    """The same steps as a plain loop over the trainer's dataloader; clock, wall, losses, tokens."""
    import torch
    from transformers import get_scheduler

    args, model = trainer.args, trainer.model
    params = [p for p in model.parameters() if p.requires_grad]
    # the optimizer the Trainer picks (`optim`: fused AdamW by default) and its own schedule function
    fused = getattr(args.optim, "value", args.optim) == "adamw_torch_fused"
    optimizer = torch.optim.AdamW(
        params, lr=args.learning_rate, weight_decay=args.weight_decay, fused=fused
    )
    schedule = get_scheduler(args.lr_scheduler_type, optimizer, args.warmup_steps, args.max_steps)
    accepted = {"input_ids", "attention_mask", "labels", "position_ids"}
    clock, losses, tokens = _Clock(), [], 0
    model.train()
    start = time.perf_counter()
    step = 0
    while step < args.max_steps:
        for batch in trainer.get_train_dataloader():
            batch = {k: v.to(model.device) for k, v in batch.items() if k in accepted}
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            mask = batch.get("attention_mask")
            tokens += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
            losses.append(loss.item())
            clock.times.append(time.perf_counter())
            step += 1
            if step == args.max_steps:
                break
    return clock, time.perf_counter() - start, losses, tokens


def measure(profile, method: str, task: str, steps: int, variant: str, repeats: int) -> dict:
    """Alternate trl and plain runs of one variant; best rates, and the median ratio of the pairs.

    Each trl run is divided by the plain run right after it, so a machine that is slower for a
    minute slows both halves of a pair; the median of the pairs is the figure quoted.
    """
    import gc
    import statistics

    rates = {"trl": [], "plain": []}
    walls = {"trl": [], "plain": []}
    tokens = 0
    for _ in range(repeats):
        for side in ("trl", "plain"):
            with tempfile.TemporaryDirectory() as out:
                # the baseline is always the same: a plain loop over padded batches
                sft = VARIANTS[variant if side == "trl" else BASELINE]
                trainer = _trainer(profile, method, task, steps, sft, out)
                if side == "trl":
                    clock, wall, _ = time_trl(trainer)
                else:
                    clock, wall, _, tokens = time_plain(trainer)
                del trainer
                gc.collect()
            rates[side].append(clock.rate())
            walls[side].append(wall)
    import torch

    pairs = [t / p for t, p in zip(rates["trl"], rates["plain"])]
    return {
        "profile": profile.name,
        "batch_size": profile.batch_size,
        "threads": torch.get_num_threads(),
        "method": method,
        "task": task,
        "variant": variant,
        "steps": steps,
        "repeats": repeats,
        "trl_steps_per_s": max(rates["trl"]),
        "plain_steps_per_s": max(rates["plain"]),
        "pair_ratios": pairs,
        "ratio": statistics.median(pairs),
        "tokens_per_step": tokens / steps,
        "trl_wall_s": min(walls["trl"]),
        "plain_wall_s": min(walls["plain"]),
    }


def table(rows: list[dict]) -> str:
    """The measurements as a markdown table."""
    from ftcourse.docblocks import markdown_table

    return markdown_table(
        [
            "method",
            "trl variant",
            "trl steps/s",
            "plain steps/s",
            "trl / plain (median of pairs)",
            "tokens/s (trl)",
            "wall s (trl, plain)",
        ],
        [
            [
                r["method"],
                r["variant"],
                f"{r['trl_steps_per_s']:.2f}",
                f"{r['plain_steps_per_s']:.2f}",
                f"{r['ratio']:.0%}",
                f"{r['trl_steps_per_s'] * r['tokens_per_step']:,.0f}",
                f"{r['trl_wall_s']:.0f}, {r['plain_wall_s']:.0f}",
            ]
            for r in rows
        ],
        right_from=2,
    )


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, optionally write JSON and the docs block."""
    import torch

    from ftcourse.docblocks import replace_block
    from ftcourse.profiles import choose_profile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["qlora", "lora"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--task", default="bugfix")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("build/benchmarks/train_speed.json"))
    parser.add_argument("--update-docs", type=Path)
    args = parser.parse_args(argv)
    profile = choose_profile().for_task(args.task)
    rows = []
    for method in args.methods:
        for variant in args.variants:
            rows.append(measure(profile, method, args.task, args.steps, variant, args.repeats))
            print(json.dumps(rows[-1]), flush=True)
    text = (
        f"Measured on the `{profile.name}` profile ({torch.get_num_threads()} threads), task "
        f"`{args.task}`, batch {profile.batch_size}, {args.steps} steps per run, "
        f"{args.repeats} alternating trl/plain pairs; rates are the best run of each side, the ratio "
        "is the median of the pairs' ratios.\n\n" + table(rows)
    )
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    if args.update_docs:  # the table, and the rows notebook 04 reads back
        replace_block(args.update_docs, "train-speed", text)
        (args.update_docs.parent / "train_speed.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
