"""Is the course's base model a better starting point than random weights? Measured, not assumed.

Fine-tunes two models of exactly the same shape with the profile's recipe (notebook 04's QLoRA
adapter, step budget and learning rate), one task at a time, and scores each on the held-out split:
- the course's pretrained base model (`data/base-model` on cpu-tiny);
- the same architecture with freshly initialised (seeded) weights and the same tokenizer.
The base model without an adapter is scored too: the starting line.

    python benchmarks/base_vs_random.py                                   # ~8 min on 2 cores
    python benchmarks/base_vs_random.py --update-card data/base-model/README.md
    python benchmarks/base_vs_random.py --steps 2 --eval-samples 2        # a smoke run, seconds
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

TASKS = ("polite", "bugfix")


def random_twin(model_path: str, out: Path, seed: int = 0) -> Path:
    """Save a randomly initialised model with the same config and tokenizer as `model_path`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_path))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_path).save_pretrained(out)
    return out


def score(model_path: str, task: str, steps: int | None, eval_samples: int) -> dict:
    """Held-out accuracy of `model_path` before and after the profile's fine-tune on `task`."""
    from ftcourse.evaluate import evaluate
    from ftcourse.runfile import RunConfig
    from ftcourse.tasks import load_task
    from ftcourse.train import train

    overrides = {"model": model_path} | ({"max_steps": steps} if steps else {})
    records = list(load_task(task, "test").select(range(eval_samples)))
    with tempfile.TemporaryDirectory() as out:
        result = train(RunConfig(task=task, output_dir=out, profile_overrides=overrides))
    tuned = evaluate(result.model, result.tokenizer, task, records, progress=False)
    with result.model.disable_adapter():
        before = evaluate(result.model, result.tokenizer, task, records, progress=False)
    return {
        "task": task,
        "before": before.accuracy,
        "after": tuned.accuracy,
        "stop_rate": tuned.stop_rate,
        "train_seconds": round(result.seconds, 1),
        "steps": result.trainer.state.global_step,
        "eval_samples": eval_samples,
    }


def table(rows: list[dict]) -> str:
    """Markdown: one line per (starting point, task)."""
    from ftcourse.docblocks import markdown_table

    header = ["starting point", "task", "held-out before", "after fine-tuning", "stops at EOS"]
    cells = [
        [r["start"], r["task"], f"{r['before']:.0%}", f"{r['after']:.0%}", f"{r['stop_rate']:.0%}"]
        + [f"{r['train_seconds']:.0f}"]
        for r in rows
    ]
    return markdown_table([*header, "train s"], cells, right_from=2)


def main(argv: list[str] | None = None) -> list[dict]:
    """Measure both starting points on both tasks; print (and optionally record) the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=None, help="default: the profile's")
    parser.add_argument("--eval-samples", type=int, default=100)
    parser.add_argument("--update-card", type=Path, help="a model card with a finetune block")
    args = parser.parse_args(argv)

    from ftcourse.docblocks import replace_block
    from ftcourse.profiles import choose_profile

    profile = choose_profile()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        starts = {
            "this base model": profile.model_path,
            "same shape, random weights": str(random_twin(profile.model_path, Path(tmp))),
        }
        for start, path in starts.items():
            for task in TASKS:
                row = {"start": start, **score(path, task, args.steps, args.eval_samples)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    text = table(rows)
    print(text)
    if args.update_card:
        first = rows[0]
        replace_block(
            args.update_card,
            "finetune",
            f"Profile `{profile.name}`: one QLoRA adapter per task (r {profile.lora_r}, "
            "lr "
            + ", ".join(f"{t} {profile.learning_rate_for(t):g}" for t in TASKS)
            + f", {first['steps']} steps), scored on "
            f"{first['eval_samples']} held-out examples whose names and words never occur in "
            f"training. Measured by `python benchmarks/base_vs_random.py`.\n\n{text}",
        )
        print(f"updated {args.update_card}")
    return rows


if __name__ == "__main__":
    main()
