"""GRPO on top of notebook 04's bugfix adapter: held-out bugfix before and after, with trl's GRPOTrainer.

The prompts are training functions under made-up names (`ftcourse.rl.grpo_prompts`); the reward is
the sandbox's verdict on the record's tests (`ftcourse.rl.bugfix_reward`). Each configuration starts
from the same SFT adapter and is scored greedily on all 250 held-out items (names never seen in
training), paired with the SFT adapter's answers by McNemar's test; also on 100 renamed training
prompts that GRPO does not train on (another renaming seed, so other made-up names).

    python benchmarks/grpo_bugfix.py                                 # the default configuration
    python benchmarks/grpo_bugfix.py --grid "lr=2e-4 iters=1" "T=0.7" "partial=1"
    python benchmarks/grpo_bugfix.py --headroom 100                  # greedy vs pass@k first
    python benchmarks/grpo_bugfix.py --throughput 64 --grid          # sandbox scoring speed only

Grid keys: steps, lr, G (answers per prompt), prompts (per step), T (temperature), beta,
iters (updates per generated batch, trl's num_iterations), partial (1: share of tests passed),
workers (sandbox threads), fp32 (0: keep trl's bf16 copy of the adapter). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time

DEFAULTS = {
    "steps": 20,
    "lr": 1e-4,
    "G": 8,
    "prompts": 4,
    "T": 0.5,
    "beta": 0.0,
    "iters": 2,
    "partial": 0,
    "workers": 2,
    "fp32": 1,
}


def parse(config: str) -> dict:
    """'lr=5e-4 T=0.7' -> DEFAULTS with those values replaced (numbers parsed)."""
    values = dict(part.split("=", 1) for part in config.split())
    unknown = set(values) - set(DEFAULTS)
    if unknown:
        raise SystemExit(f"unknown keys {sorted(unknown)}; use {sorted(DEFAULTS)}")
    return {k: type(v)(float(values[k])) if k in values else v for k, v in DEFAULTS.items()}


def as_eval_records(rows: list[dict]) -> list[dict]:
    """GRPO prompt rows as records `evaluate` scores: `messages` (the prompt) and `tests`."""
    return [{"messages": r["prompt"], "tests": r["tests"]} for r in rows]


def throughput(rows: list[dict], n: int, workers: tuple[int, ...] = (1, 2, 4)) -> None:
    """Answers scored per second by the sandbox, serial and threaded: n/2 right fixes, n/2 bugs."""
    from ftcourse.rl import score_answers

    half = rows[: n // 2]
    answers = [r["reference"] for r in half] + [r["prompt"][-1]["content"] for r in half]
    tests = [r["tests"] for r in half] * 2
    for w in workers:
        start = time.perf_counter()
        scores = score_answers(answers, tests, workers=w)
        rate = len(answers) / (time.perf_counter() - start)
        print(f"sandbox scoring, {w} worker(s): {rate:.1f} answers/s ({sum(scores):.0f} right)")


def run_one(profile, folder, rows, test, renamed, config: dict, out: str) -> dict:
    """Train the SFT adapter further with GRPO under `config`; score it on `test` and `renamed`."""
    from ftcourse.evaluate import evaluate
    from ftcourse.rl import bugfix_reward, grpo_trainer

    trainer = grpo_trainer(
        profile,
        folder,
        rows,
        out,
        functools.partial(
            bugfix_reward, workers=config["workers"], partial=bool(config["partial"])
        ),
        max_steps=config["steps"],
        learning_rate=config["lr"],
        num_generations=config["G"],
        per_device_train_batch_size=config["G"] * config["prompts"],
        temperature=config["T"],
        beta=config["beta"],
        num_iterations=config["iters"],
        disable_tqdm=True,
    )
    if not config["fp32"]:  # trl's own choice: the adapter of a 4-bit base in bf16
        for param in trainer.model.parameters():
            if param.requires_grad:
                param.data = param.data.bfloat16()
    tokenizer = trainer.processing_class
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    logs = [h for h in trainer.state.log_history if "reward" in h]
    start = time.perf_counter()
    after = evaluate(trainer.model, tokenizer, "bugfix", test, progress=False)
    eval_seconds = time.perf_counter() - start
    on_renamed = evaluate(trainer.model, tokenizer, "bugfix", renamed, progress=False)
    return {
        "after": after,
        "renamed": on_renamed.accuracy,
        "rewards": [h["reward"] for h in logs],
        "zero_std": sum(h["frac_reward_zero_std"] for h in logs) / max(len(logs), 1),
        "seconds": seconds,
        "eval_seconds": eval_seconds,
    }


def main() -> None:
    """Score the SFT adapter, then train and score every configuration of the grid."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", nargs="*", default=[""])
    parser.add_argument("--throughput", type=int, default=0, help="answers for the scoring speed")
    parser.add_argument("--headroom", type=int, default=0, help="items for greedy vs pass@k")
    parser.add_argument("--samples", type=int, default=8, help="samples per item for pass@k")
    parser.add_argument("--temperature", type=float, default=0.5, help="for the headroom")
    opts = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from peft import PeftModel

    from ftcourse.adapters import ensure_adapters, inference_base
    from ftcourse.evaluate import evaluate, headroom, mcnemar
    from ftcourse.profiles import get_profile
    from ftcourse.rl import grpo_prompts
    from ftcourse.tasks import load_task, training_splits

    profile = get_profile("cpu-tiny")
    folder = ensure_adapters(["bugfix"], profile)["bugfix"]
    test = list(load_task("bugfix", "test"))
    train = list(training_splits("bugfix")[0])
    rows = grpo_prompts(train, seed=0)
    renamed = as_eval_records(grpo_prompts(train[:100], seed=1))
    if opts.throughput:
        throughput(rows, opts.throughput)
        if not opts.grid:
            return
    base, tokenizer = inference_base(profile)
    sft = PeftModel.from_pretrained(base, str(folder))
    start = time.perf_counter()
    before = evaluate(sft, tokenizer, "bugfix", test, progress=False)
    print(f"held-out evaluation: {time.perf_counter() - start:.0f} s for {len(test)} items")
    sft_renamed = evaluate(sft, tokenizer, "bugfix", renamed, progress=False).accuracy
    if opts.headroom:
        room = headroom(
            sft,
            tokenizer,
            "bugfix",
            test[: opts.headroom],
            opts.samples,
            opts.temperature,
            progress=False,
        )
        share = sum(0 < c < opts.samples for c in room.right) / len(room.right)
        print(
            f"headroom, first {opts.headroom} held-out items, T={opts.temperature}: "
            f"greedy {room.greedy:.0%}, "
            + ", ".join(f"pass@{k} {v:.0%}" for k, v in room.pass_at.items())
            + f"; items with right and wrong samples: {share:.0%}"
        )
    print(
        "| model | held-out | fixed / broken | p (McNemar) | renamed train | "
        "reward first -> last | groups all-same | train s | eval s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| SFT | {before.accuracy:.1%} |  |  | {sft_renamed:.0%} |  |  |  |  |", flush=True)
    tmp = tempfile.mkdtemp(prefix="grpo-bugfix-")
    for i, text in enumerate(opts.grid):
        config = parse(text)
        r = run_one(profile, folder, rows, test, renamed, config, f"{tmp}/grpo-{i}")
        p = mcnemar(before.correct, r["after"].correct)
        first, last = r["rewards"][0], r["rewards"][-1]
        pairs = list(zip(before.correct, r["after"].correct))
        fixed, broken = pairs.count((False, True)), pairs.count((True, False))
        print(
            f"| + GRPO {text or 'defaults'} | {r['after'].accuracy:.1%} | {fixed} / {broken} | "
            f"{p:.3f} | "
            f"{r['renamed']:.0%} | {first:.2f} -> {last:.2f} | {r['zero_std']:.0%} | "
            f"{r['seconds']:.0f} | {r['eval_seconds']:.0f} |",
            flush=True,
        )
        print(
            "  reward per generated batch:", " ".join(f"{x:.2f}" for x in r["rewards"]), flush=True
        )


if __name__ == "__main__":
    main()
