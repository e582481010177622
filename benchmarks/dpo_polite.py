"""DPO on top of notebook 04's polite adapter: held-out accuracy and failure types, before and after.

Preference pairs come from the adapter's own answers on training prompts (`ftcourse.preference`):
its greedy answer plus `--samples` answers sampled at `--temperature`; each distinct wrong one is
rejected, the chosen answer is the model's own right answer to the same prompt when it gave one
(`--chosen own`) or the record's reference (`--chosen reference`). trl's DPOTrainer then trains the
same adapter further; with a PEFT model and no `ref_model`, trl copies the adapter into a frozen
`ref` adapter on the same base (no second base model). Each configuration starts from the same SFT
adapter, and all are scored on the same held-out split (names and words never seen in training).

    python benchmarks/dpo_polite.py                                  # the default grid
    python benchmarks/dpo_polite.py --grid "lr=1e-5" "lr=5e-5 beta=0.5" "lr=5e-5 loss=ipo"
    python benchmarks/dpo_polite.py --sft-steps 100                  # a weaker SFT adapter first

About 2 minutes a configuration on 2 CPU cores (cpu-tiny). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter

DEFAULT_GRID = ["lr=1e-5", "lr=5e-5", "lr=5e-5 beta=0.5", "lr=5e-5 loss=ipo", "lr=5e-5 loss=sft"]


def parse(config: str) -> dict:
    """'lr=5e-5 beta=0.5 loss=ipo' -> {'lr': 5e-5, 'beta': 0.5, 'loss': 'ipo'}."""
    values = dict(part.split("=", 1) for part in config.split())
    return {
        "lr": float(values.get("lr", 5e-5)),
        "beta": float(values.get("beta", 0.1)),
        "loss": values.get("loss", "sigmoid"),
        "steps": int(values.get("steps", 80)),
    }


def sft_adapter(profile, steps: int | None, folder: str):
    """Notebook 04's polite adapter (trained if missing), or a fresh one of `steps` steps."""
    from ftcourse.adapters import ensure_adapters
    from ftcourse.runfile import RunConfig
    from ftcourse.train import train

    if steps is None:
        return ensure_adapters(["polite"], profile)["polite"]
    overrides = {"max_steps": steps}
    train(
        RunConfig(
            task="polite",
            profile=profile.name,
            output_dir=folder,
            eval_samples=0,
            profile_overrides=overrides,
        )
    )
    return folder


def harvest(model, tokenizer, records, samples, temperature, chosen, synthetic=0, kinds=None):
    """Preference pairs from the model's greedy and sampled answers to `records`."""
    import torch

    from ftcourse.evaluate import generate, prompt_messages
    from ftcourse.preference import harvest_pairs, validate_pairs

    prompts = [prompt_messages(r["messages"]) for r in records]
    answers = generate(model, tokenizer, prompts, 64, 16, False)
    for seed in range(samples):
        torch.manual_seed(seed + 1)
        answers += generate(model, tokenizer, prompts, 64, 16, False, temperature=temperature)
    made = dict(synthetic=synthetic, kinds=tuple(kinds)) if kinds else dict(synthetic=synthetic)
    return validate_pairs(harvest_pairs(records * (samples + 1), answers, chosen=chosen, **made))


def run_one(profile, folder, pairs, test, config: dict, out: str) -> dict:
    """Train the SFT adapter further with DPO under `config`; score it on `test`."""
    from ftcourse.evaluate import evaluate
    from ftcourse.preference import dpo_trainer, failure_rates

    loss = {"sft": ["sigmoid", "sft"]}.get(config["loss"], [config["loss"]])
    trainer = dpo_trainer(
        profile,
        folder,
        pairs,
        out,
        max_steps=config["steps"],
        learning_rate=config["lr"],
        beta=config["beta"],
        loss_type=loss,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=1,
        warmup_steps=5,
        logging_steps=10,
        disable_tqdm=True,
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    logs = [h for h in trainer.state.log_history if "rewards/margins" in h]
    result = evaluate(trainer.model, trainer.processing_class, "polite", test, progress=False)
    return {
        "accuracy": result.accuracy,
        "stop": result.stop_rate,
        "failures": failure_rates([r["input"] for r in test], result.answers),
        "margin": logs[-1]["rewards/margins"],
        "reward_accuracy": logs[-1]["rewards/accuracies"],
        "chosen_logp": (logs[0]["logps/chosen"], logs[-1]["logps/chosen"]),
        "seconds": seconds,
    }


def row(label: str, r: dict) -> str:
    """One Markdown table row."""
    f = r["failures"]
    extra = (
        f"{r['margin']:.2f} | {r['reward_accuracy']:.0%} | "
        f"{r['chosen_logp'][0]:.1f} -> {r['chosen_logp'][1]:.1f} | {r['seconds']:.0f}"
        if "margin" in r
        else " |  |  | "
    )
    return (
        f"| {label} | {r['accuracy']:.1%} | {f['looping']:.1%} | {f['impolite']:.1%} | "
        f"{f['mangled word']:.1%} | {f['dropped word']:.1%} | {r['stop']:.0%} | {extra} |"
    )


def main() -> None:
    """Harvest once, then train and score every configuration of the grid."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", nargs="+", default=DEFAULT_GRID)
    parser.add_argument("--prompts", type=int, default=500, help="training prompts harvested")
    parser.add_argument("--samples", type=int, default=3, help="sampled answers per prompt")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--chosen", choices=["own", "reference"], default="own")
    parser.add_argument("--sft-steps", type=int, default=None)
    parser.add_argument("--synthetic", type=int, default=0, help="made rejections added")
    parser.add_argument(
        "--kinds", nargs="+", default=None, help="failure types of the made rejections"
    )
    opts = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from peft import PeftModel

    from ftcourse.adapters import inference_base
    from ftcourse.evaluate import evaluate
    from ftcourse.preference import failure_rates
    from ftcourse.profiles import get_profile
    from ftcourse.tasks import load_task, training_splits

    profile = get_profile("cpu-tiny")
    tmp = tempfile.mkdtemp(prefix="dpo-polite-")
    folder = sft_adapter(profile, opts.sft_steps, f"{tmp}/sft")
    test = list(load_task("polite", "test"))
    records = list(training_splits("polite")[0])[: opts.prompts]
    base, tokenizer = inference_base(profile)
    sft = PeftModel.from_pretrained(base, str(folder))
    before = evaluate(sft, tokenizer, "polite", test, progress=False)
    pairs = harvest(
        sft,
        tokenizer,
        records,
        opts.samples,
        opts.temperature,
        opts.chosen,
        opts.synthetic,
        opts.kinds,
    )
    print(
        f"{len(pairs)} pairs:",
        dict(Counter(p["source"] for p in pairs)),
        dict(Counter(p["chosen_from"] for p in pairs)),
    )
    print(
        "| model | held-out | looping | impolite | mangled | dropped | stop | margin | "
        "reward acc | chosen logp | s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    requests = [r["input"] for r in test]
    print(
        row(
            "SFT",
            {
                "accuracy": before.accuracy,
                "stop": before.stop_rate,
                "failures": failure_rates(requests, before.answers),
            },
        ),
        flush=True,
    )
    for i, config in enumerate(opts.grid):
        print(
            row(
                f"+ DPO {config}",
                run_one(profile, folder, pairs, test, parse(config), f"{tmp}/dpo-{i}"),
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
