"""DPO where it works: a polite set with bad targets, SFT on it, DPO on top, against SFT on the filtered set.

A share of the polite training targets is made bad (`ftcourse.preference.mixed_set`: the curt request
returned, or a looping answer). Three adapters train from the same base on cpu-tiny: SFT on the mixed
set, SFT on the filtered set (the bad records dropped), and DPO on top of the mixed SFT adapter with
one pair per bad record (the good answer chosen, the bad target rejected). A fourth run, DPO at an
SFT-like rate, shows likelihood displacement. All are scored on the same 250 held-out requests:
accuracy, the share of bad answers of the kinds the set was given, paired tests between them.

    python benchmarks/dpo_mixed.py                       # the notebook's settings
    python benchmarks/dpo_mixed.py --share 0.4 --sft-steps 200 --dpo-steps 60 --dpo-lr 1e-4

Prints a Markdown table and writes the rows as JSON (--json).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

DEFAULT_GRID = ["lr=5e-4 steps=20", "lr=5e-4 steps=20 loss=sigmoid+sft"]  # the notebook's two runs


def parse(config: str) -> dict:
    """'lr=1e-4 steps=40 beta=0.1 loss=sigmoid+sft' -> the DPO run's settings."""
    values = dict(part.split("=", 1) for part in config.split())
    return {
        "lr": float(values.get("lr", 1e-4)),
        "steps": int(values.get("steps", 40)),
        "beta": float(values.get("beta", 0.1)),
        "loss": values.get("loss", "sigmoid").split("+"),
    }


def sft(profile, records, validation, steps: int, folder: str) -> float:
    """SFT from the base on `records`; the seconds it took."""
    from datasets import Dataset

    from ftcourse.runfile import RunConfig
    from ftcourse.train import train

    data = Dataset.from_list([{"messages": r["messages"]} for r in records])
    run = RunConfig(
        task="polite",
        profile=profile.name,
        output_dir=folder,
        eval_samples=0,
        profile_overrides={"max_steps": steps},
        sft={"disable_tqdm": True},
    )
    return train(run, splits=(data, validation)).seconds


def dpo(profile, folder, pairs, config: dict, out: str):
    """DPO on top of the adapter in `folder`; (trainer, seconds)."""
    from ftcourse.preference import dpo_trainer

    trainer = dpo_trainer(
        profile,
        folder,
        pairs,
        out,
        max_steps=config["steps"],
        learning_rate=config["lr"],
        beta=config["beta"],
        loss_type=config["loss"],
        per_device_train_batch_size=8,
        gradient_accumulation_steps=1,
        warmup_steps=2,
        logging_steps=2,
        disable_tqdm=True,
    )
    start = time.perf_counter()
    trainer.train()
    return trainer, time.perf_counter() - start


def score(model, tokenizer, test) -> dict:
    """Held-out accuracy, per-item verdicts and the bad-answer flags of one model."""
    from ftcourse.evaluate import evaluate
    from ftcourse.preference import bad_answers, failure_rates

    result = evaluate(model, tokenizer, "polite", test, progress=False)
    requests = [r["input"] for r in test]
    return {
        "accuracy": result.accuracy,
        "correct": result.correct,
        "bad": bad_answers(requests, result.answers),
        "failures": failure_rates(requests, result.answers),
        "eval_seconds": result.seconds,
    }


def main() -> None:
    """Train the three adapters and the displacement run, score them, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--share", type=float, default=0.3)
    parser.add_argument("--sft-steps", type=int, default=150)
    parser.add_argument(
        "--grid", nargs="+", default=DEFAULT_GRID, help="DPO runs, as in the default"
    )
    parser.add_argument("--json", default=None)
    opts = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from peft import PeftModel

    from ftcourse.adapters import inference_base
    from ftcourse.evaluate import mcnemar
    from ftcourse.preference import filtered, mixed_pairs, mixed_set
    from ftcourse.profiles import get_profile
    from ftcourse.tasks import load_task, training_splits

    profile = get_profile("cpu-tiny")
    tmp = tempfile.mkdtemp(prefix="dpo-mixed-")
    train_ds, validation = training_splits("polite")
    mixed = mixed_set(list(train_ds), opts.share)
    test = list(load_task("polite", "test"))
    rows, seconds = {}, {}
    for name, records in (("SFT on mixed", mixed), ("SFT on filtered", filtered(mixed))):
        folder = f"{tmp}/{name.split()[-1]}"
        seconds[name] = sft(profile, records, validation, opts.sft_steps, folder)
        base, tokenizer = inference_base(profile)
        rows[name] = score(PeftModel.from_pretrained(base, folder), tokenizer, test)
    pairs = mixed_pairs(mixed)
    logs = {}
    runs = [(f"+ DPO ({config})", parse(config)) for config in opts.grid]
    for name, config in runs:
        trainer, seconds[name] = dpo(profile, f"{tmp}/mixed", pairs, config, f"{tmp}/dpo")
        logs[name] = trainer.state.log_history
        rows[name] = score(trainer.model, trainer.processing_class, test)
    ref = rows["SFT on mixed"]
    print(f"share {opts.share}, {len(pairs)} pairs, SFT {opts.sft_steps} steps")
    print(
        "| model | held-out | bad answers | impolite | looping | p (bad vs mixed) | p (acc vs mixed) | s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        p_bad = mcnemar(ref["bad"], r["bad"])
        p_acc = mcnemar(ref["correct"], r["correct"])
        f = r["failures"]
        print(
            f"| {name} | {r['accuracy']:.1%} | {sum(r['bad']) / len(r['bad']):.1%} | "
            f"{f['impolite']:.1%} | {f['looping']:.1%} | {p_bad:.2g} | {p_acc:.2g} | "
            f"{seconds[name]:.0f} |"
        )
    for name, _ in runs:
        p = mcnemar(rows["SFT on filtered"]["correct"], rows[name]["correct"])
        print(f"filtered vs {name}, accuracy: p = {p:.2g}")
    for name, history in logs.items():
        kept = [h for h in history if "rewards/margins" in h]
        print(
            name,
            [
                (
                    h["step"],
                    round(h["rewards/margins"], 2),
                    h["rewards/accuracies"],
                    round(h["logps/chosen"], 1),
                )
                for h in kept
            ],
        )
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"rows": rows, "seconds": seconds, "logs": logs}, f)


if __name__ == "__main__":
    main()
