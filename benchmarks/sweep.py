"""Hyperparameters measured, not recited: LoRA rank, learning rate and alpha/r sweeps, and QLoRA vs
LoRA vs full fine-tuning, each scored on a course task's held-out split.

Every point trains the profile's base model with `ftcourse.train` (the same recipe as notebook 04)
in a fresh Python process, so its peak memory is its own, then scores it with `ftcourse.evaluate`.
The article's recommended ranges (r 8-64, alpha 1-2x r, learning rate 1e-4 to 3e-4) are drawn on
the chart beside the measurements.

    python benchmarks/sweep.py --out build/benchmarks/sweep              # everything, ~30 min on 2 cores
    python benchmarks/sweep.py --only lr methods --steps 60 --out /tmp/s # a slice
    python benchmarks/sweep.py --from-json build/benchmarks/sweep/sweep.json \\
        --out build/benchmarks/sweep --update-docs docs/benchmarks.md

Writes `sweep.json` (raw results), `sweep.md` (tables) and `sweep.png` (the chart).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARTICLE_RANGES = {"r": (8, 64), "lr": (1e-4, 3e-4), "alpha_ratio": (1, 2)}
SWEEPS = {
    "r": [4, 16, 64],
    "lr": [1e-4, 3e-4, 1e-3, 2e-3, 4e-3, 1e-2],
    "alpha_ratio": [1.0, 2.0, 4.0],  # floats: 2 and 2.0 would be two runs
}
METHODS = ("qlora", "lora", "full")
MODULES = ("attention", "all-linear")  # the article's q/k/v/o, or every linear layer of a block
# Full fine-tuning moves every weight, so its fair rate is lower than LoRA's: the usual range for
# full fine-tuning, measured rather than guessed, before any claim that it does worse.
FULL_LRS = (1e-5, 3e-5, 1e-4, 3e-4)


def points(only: list[str], lr: float, r: int = 16) -> list[dict]:
    """The runs to make: each sweep varies one knob around r=16, alpha=2r and the profile's rate."""
    base = {"method": "qlora", "r": r, "alpha_ratio": 2.0, "lr": lr, "modules": "profile"}
    runs = []
    for knob in (k for k in SWEEPS if k in only):
        runs += [{**base, knob: value, "sweep": knob} for value in SWEEPS[knob]]
    if "methods" in only:
        for method in METHODS:
            for run_lr in FULL_LRS if method == "full" else (lr,):
                runs.append({**base, "method": method, "lr": run_lr, "sweep": "methods"})
    if "modules" in only:
        runs += [{**base, "modules": m, "sweep": "modules"} for m in MODULES]
    return runs


def run_point(point: dict, task: str, steps: int, eval_samples: int) -> dict:
    """Train and score one point in this process; returns its measurements."""
    import torch

    from ftcourse.evaluate import evaluate
    from ftcourse.profiles import ALL_LINEAR, ATTENTION, choose_profile
    from ftcourse.runfile import RunConfig
    from ftcourse.tasks import load_task
    from ftcourse.train import train

    lora = {"r": point["r"], "lora_alpha": point["r"] * point["alpha_ratio"]}
    if point.get("modules", "profile") != "profile":
        modules = ATTENTION if point["modules"] == "attention" else ALL_LINEAR
        lora["target_modules"] = list(modules)

    with tempfile.TemporaryDirectory() as out:
        run = RunConfig(
            task=task,
            method=point["method"],
            output_dir=out,
            profile_overrides={"max_steps": steps, "learning_rate": point["lr"]},
            lora=lora,
        )
        result = train(run)
    model = result.model
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer_state = result.trainer.optimizer.state.values()
    state_bytes = sum(t.numel() * t.element_size() for s in optimizer_state for t in s.values())
    records = list(load_task(task, "test").select(range(eval_samples)))
    score = evaluate(model, result.tokenizer, task, records, progress=False)
    losses = [h["loss"] for h in result.log_history if "loss" in h]
    return {
        **point,
        "task": task,
        "steps": steps,
        "accuracy": score.accuracy,
        "stop_rate": score.stop_rate,
        "eval_samples": eval_samples,
        "train_seconds": round(result.seconds, 1),
        "final_train_loss": losses[-1] if losses else None,
        "trainable_params": sum(p.numel() for p in trainable),
        # weights as stored (4-bit packed for QLoRA) + gradients + AdamW state, all measured tensors
        "weight_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "grad_bytes": sum(p.numel() * p.element_size() for p in trainable),
        "optimizer_bytes": state_bytes,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "torch_threads": torch.get_num_threads(),
        "profile": choose_profile().name,
    }


def run_all(runs: list[dict], task: str, steps: int, eval_samples: int) -> list[dict]:
    """Each point in a fresh subprocess (so peak memory is per run); identical points run once."""
    from ftcourse.profiles import ALL_LINEAR, choose_profile

    profile_is_all_linear = tuple(choose_profile().target_modules) == tuple(ALL_LINEAR)
    done: dict[str, dict] = {}
    results = []
    for i, point in enumerate(runs, 1):
        # "all-linear" is the profile's own choice on cpu-tiny: the same run as the baseline
        same = point
        if profile_is_all_linear and point.get("modules") == "all-linear":
            same = {**point, "modules": "profile"}
        key = json.dumps({k: v for k, v in same.items() if k != "sweep"}, sort_keys=True)
        if key not in done:
            start = time.perf_counter()
            args = [sys.executable, __file__, "--point", key, "--task", task]
            args += ["--steps", str(steps), "--eval-samples", str(eval_samples)]
            proc = subprocess.run(args, capture_output=True, text=True, check=False)
            if proc.returncode:
                sys.exit(f"point {key} failed:\n{proc.stderr[-3000:]}")
            done[key] = json.loads(proc.stdout.strip().splitlines()[-1])
            took = time.perf_counter() - start
            print(
                f"[{i}/{len(runs)}] {key}: {done[key]['accuracy']:.0%} ({took:.0f} s)", flush=True
            )
        results.append({**done[key], "sweep": point["sweep"], "modules": point["modules"]})
    return results


def chart(results: list[dict], path: Path) -> None:
    """One panel per sweep: held-out accuracy against the knob, the article's range shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ftcourse import plots

    plots.style()
    knobs = [k for k in SWEEPS if any(r["sweep"] == k for r in results)]
    fig, axes = plt.subplots(1, len(knobs), figsize=(4.2 * len(knobs), 3.4), squeeze=False)
    labels = {"r": "rank r", "lr": "learning rate", "alpha_ratio": "alpha / r"}
    for ax, knob in zip(axes[0], knobs):
        rows = sorted((r[knob], r["accuracy"]) for r in results if r["sweep"] == knob)
        ax.plot([x for x, _ in rows], [100 * y for _, y in rows], "o-", color="C0")
        low, high = ARTICLE_RANGES[knob]
        ax.axvspan(low, high, color="C2", alpha=0.15, label="article's range")
        ax.set_xscale("log", base=10 if knob == "lr" else 2)
        ax.set_xlabel(labels[knob])
        ax.set_ylabel("held-out accuracy (%)")
        ax.set_ylim(-3, 103)
        ax.legend(loc="lower right", fontsize=8)
    first = results[0]
    fig.suptitle(
        f"{first['task']}: {first['steps']} QLoRA steps, {first['eval_samples']} held-out examples"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tables(results: list[dict]) -> str:
    """Markdown tables: one per sweep, the target modules, and the methods side by side."""
    from ftcourse.docblocks import markdown_table

    parts = []
    for knob in SWEEPS:
        rows = sorted((r for r in results if r["sweep"] == knob), key=lambda r: r[knob])
        if rows:
            header = [knob, "held-out accuracy", "stops at EOS", "final train loss"]
            cells = [
                [f"{r[knob]:g}", f"{r['accuracy']:.0%}", f"{r['stop_rate']:.0%}"]
                + [_loss(r["final_train_loss"])]
                for r in rows
            ]
            parts.append(markdown_table(header, cells, right_from=0))
    modules = [r for r in results if r["sweep"] == "modules"]
    if modules:
        header = ["LoRA on", "trainable params", "train s", "held-out accuracy", "stops at EOS"]
        cells = [
            [r["modules"], f"{r['trainable_params']:,}", f"{r['train_seconds']:.0f}"]
            + [f"{r['accuracy']:.0%}", f"{r['stop_rate']:.0%}"]
            for r in modules
        ]
        parts.append(markdown_table(header, cells))
    methods = [r for r in results if r["sweep"] == "methods"]
    if methods:
        header = ["method", "lr", "trainable params", "weights MB", "grads + AdamW MB"]
        header += ["peak RSS MB", "train s", "held-out accuracy"]
        cells = [
            [r["method"], f"{r['lr']:g}", f"{r['trainable_params']:,}"]
            + [f"{r['weight_bytes'] / 1e6:.1f}"]
            + [f"{(r['grad_bytes'] + r['optimizer_bytes']) / 1e6:.1f}", f"{r['peak_rss_mb']:,}"]
            + [f"{r['train_seconds']:.0f}", f"{r['accuracy']:.0%}"]
            for r in methods
        ]
        parts.append(markdown_table(header, cells))
    return "\n\n".join(parts)


def _loss(value: float | None) -> str:
    """A logged loss, or n/a for a run too short to log one."""
    return "n/a" if value is None else f"{value:.3f}"


def update_docs(doc: Path, results: list[dict], chart_name: str) -> None:
    """Fill the sweep block of a docs page with the measured tables."""
    from ftcourse.docblocks import replace_block

    first = results[0]
    block = (
        f"Measured on the `cpu-tiny` profile ({first['torch_threads']} CPU threads): "
        f"task `{first['task']}`, {first['steps']} training steps per point, "
        f"{first['eval_samples']} held-out examples.\n\n"
        f"![sweep]({chart_name})\n\n{tables(results)}"
    )
    replace_block(doc, "sweep", block)


def main(argv: list[str] | None = None) -> None:
    """Run the sweeps (or one point, or re-render saved results)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("build/benchmarks/sweep"))
    parser.add_argument("--task", default="bugfix", choices=["bugfix", "polite"])
    parser.add_argument("--only", nargs="+", default=[*SWEEPS, "methods", "modules"])
    parser.add_argument("--steps", type=int, default=None, help="default: the profile's")
    parser.add_argument("--eval-samples", type=int, default=100)
    parser.add_argument("--point", help=argparse.SUPPRESS)  # internal: one run, JSON on stdout
    parser.add_argument("--from-json", type=Path)
    parser.add_argument("--update-docs", type=Path)
    args = parser.parse_args(argv)

    from ftcourse.profiles import choose_profile

    profile = choose_profile()
    steps = args.steps or profile.max_steps
    if args.point:
        print(json.dumps(run_point(json.loads(args.point), args.task, steps, args.eval_samples)))
        return
    if args.from_json:
        results = json.loads(args.from_json.read_text())
    else:
        runs = points(args.only, profile.learning_rate_for(args.task), profile.lora_r)
        results = run_all(runs, args.task, steps, args.eval_samples)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sweep.json").write_text(json.dumps(results, indent=1))
    (args.out / "sweep.md").write_text(tables(results) + "\n")
    chart(results, args.out / "sweep.png")
    print(tables(results))
    if args.update_docs:
        for name in ("sweep.png", "sweep.json"):  # notebook 04 shows them
            shutil.copy(args.out / name, args.update_docs.parent / name)
        update_docs(args.update_docs, results, "sweep.png")
        print(f"updated {args.update_docs}")


if __name__ == "__main__":
    main()
