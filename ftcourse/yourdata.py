"""Your own dataset, one command: validate, clean, split, train, keep the best checkpoint, report.

    python -m ftcourse.train --data my_chats.jsonl [--name NAME] [--max-steps N | --epochs E]
                             [--output-dir DIR] [--profile P] [--score module:function]

The file is JSON or JSONL in any of the four formats `ftcourse.data` reads (Alpaca, ShareGPT,
messages, prompt/completion), or CSV with a format's columns; compressed or not
(`ftcourse.data.load_records` says which files it reads, and which it refuses with the command that
converts them). A record that breaks its format stops the run before anything loads, with the
file, record and field named. The quality checklist (`ftcourse.quality`) then removes
duplicates, empty and over-long records, printing each one; a seeded 10% becomes the validation
split. Training is the profile's recipe with the validation loss measured as it goes; the adapter
saved is the checkpoint with the lowest validation loss. Every assistant turn carries loss, so a
multi-turn chat teaches every answer in it. Beside the adapter go a model card (README.md) and the
loss curves (loss.png). A scorer `module:function` (or `path/to/file.py:function`), called as
`score(record, answer) -> bool` on each validation record, or on each record of a held-out
`--test FILE` (records the model never trains on), adds an accuracy to the report. A scorer that
raises stops the command with the record it failed on named, once the adapter and its model card
are saved.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ftcourse.data import load_records, validate, with_messages
from ftcourse.errors import CourseError

MIN_RECORDS = 10  # after cleaning: enough for a validation split of at least one record
SAMPLES_SHOWN = 3
MAX_SCORED = 200  # records answered for the scorer's accuracy (the report says when it cut)


@dataclass
class Prepared:
    """A data file made ready to train on: its format, what the checklist removed, the two splits."""

    path: Path
    fmt: str
    n_read: int
    removed: list = field(repr=False)  # ftcourse.quality.Removed
    notes: list = field(repr=False)  # checklist notes about the whole file (e.g. its size)
    train: list[dict] = field(repr=False)
    validation: list[dict] = field(repr=False)
    validation_at: list[int] = field(repr=False)  # each validation row's record number in the file
    test: list[dict] = field(default_factory=list, repr=False)  # --test: scored, never trained on
    test_path: Path | None = None

    def summary(self) -> str:
        """What was read, removed and kept, in a few lines."""
        lines = [f"{self.path}: {self.n_read} records in the {self.fmt} format"]
        lines += [f"  note: {note.reason}" for note in self.notes]
        by_check = Counter(r.check for r in self.removed)
        if by_check:
            counts = ", ".join(f"{n} by {check}" for check, n in by_check.items())
            lines.append(f"  removed {len(self.removed)} ({counts}):")
            lines += [f"    {r}" for r in self.removed[:10]]
            if len(self.removed) > 10:
                lines.append(f"    ... and {len(self.removed) - 10} more")
        else:
            lines.append("  the quality checklist removed nothing")
        lines.append(
            f"  kept {len(self.train)} for training, {len(self.validation)} for validation"
        )
        if self.test_path:
            lines.append(f"{self.test_path}: {len(self.test)} held-out records to score")
        return "\n".join(lines)

    @property
    def scored(self) -> list[dict]:
        """What a scorer answers: the --test file's records when given, else the validation split."""
        return self.test or self.validation

    @property
    def scored_on(self) -> str:
        """The name of what `scored` holds, for the report."""
        return f"held-out accuracy on {self.test_path.name}" if self.test else "validation accuracy"

    def scored_record(self, i: int) -> str:
        """Which record of which file the i-th of `scored` is."""
        if self.test:
            return f"record {i} of {self.test_path.name}"
        return f"record {self.validation_at[i]} of {self.path.name}"


def prepare(
    path: str | Path, tokenizer, max_tokens: int, fraction: float = 0.1, single_turn: bool = False
) -> Prepared:
    """Read, validate, clean (printing nothing) and split a data file; records get `messages`.

    `single_turn`: refuse a chat with more than one answer (a template that cannot mark answers).
    """
    from ftcourse.data import split_records
    from ftcourse.quality import checklist, run_checklist

    path = Path(path)
    records = load_records(path)
    fmt = validate(records, source=str(path))
    kept, report = run_checklist(records, checklist(tokenizer, max_tokens=max_tokens, tone=False))
    if len(kept) < MIN_RECORDS:
        raise CourseError(
            f"{path}: {len(kept)} records left after the quality checklist (of {len(records)}); "
            f"training needs at least {MIN_RECORDS}. Add records, or see what was removed above."
        )
    rows = with_messages(kept)
    train_idx, validation_idx = split_records(rows, fraction, seed=0)
    removed = [r for r in report if r.index is not None]
    notes = [r for r in report if r.index is None]
    gone = {r.index for r in removed}
    at = [i for i in range(len(records)) if i not in gone]  # the checks keep the file's order
    if single_turn:
        from ftcourse.chat import as_prompt_completion

        as_prompt_completion(rows, str(path), at)
    return Prepared(
        path,
        fmt,
        len(records),
        removed,
        notes,
        [rows[i] for i in train_idx],
        [rows[i] for i in validation_idx],
        [at[i] for i in validation_idx],
    )


def load_test(path: str | Path) -> list[dict]:
    """A held-out file to score (any format, validated; nothing removed): records with `messages`."""
    records = load_records(path)
    validate(records, source=str(path))
    return with_messages(records)


def load_scorer(spec: str) -> Callable[[dict, str], bool]:
    """The function `module:function` or `path/to/file.py:function` names, checked to be callable."""
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise CourseError(
            f"--score {spec!r}: write it as module:function (e.g. my_rules:score) or "
            "path/to/file.py:function."
        )
    if where.endswith(".py"):
        file = Path(where)
        if not file.is_file():
            raise CourseError(f"--score {spec!r}: {file} does not exist.")
        loaded = importlib.util.spec_from_file_location(file.stem, file)
        module = importlib.util.module_from_spec(loaded)
        loaded.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as exc:
            raise CourseError(
                f"--score {spec!r}: cannot import {exc.name!r}. Run from the folder that holds it, "
                "or give the file's path (path/to/file.py:function)."
            ) from None
    score = getattr(module, name, None)
    if not callable(score):
        have = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise CourseError(
            f"--score {spec!r}: {where} has no function {name!r}. Functions there: "
            f"{', '.join(have) or 'none'}."
        )
    return score


def answer_budget(tokenizer, records: list[dict]) -> int:
    """New tokens to allow an answer: the longest answer in `records` plus a quarter, at least 32."""
    longest = max(len(tokenizer(r["messages"][-1]["content"])["input_ids"]) for r in records)
    return max(32, longest * 5 // 4 + 8)


@dataclass
class Report:
    """What the run measured: losses, perplexity, accuracy (with a scorer) and sample answers."""

    steps: int
    seconds: float
    best_step: int | None
    best_eval_loss: float | None
    final_train_loss: float | None
    accuracy: float | None
    n_scored: int
    scored_on: str
    samples: list[tuple[str, str, str]]  # (prompt, reference, answer)
    score_error: str | None = None  # what the scorer raised, on which record, when it did
    recipe: str = ""  # the settings the trainer ran with (`recipe_used`), for the model card

    @property
    def perplexity(self) -> float | None:
        """exp(best validation loss): how many tokens the model hesitates between, on average."""
        return None if self.best_eval_loss is None else math.exp(self.best_eval_loss)

    def lines(self) -> list[str]:
        """The report as printed by the command."""
        out = [f"trained {self.steps} steps in {self.seconds:.0f} s"]
        if self.best_eval_loss is not None:
            out.append(
                f"best validation loss {self.best_eval_loss:.3f} at step {self.best_step} "
                f"(perplexity {self.perplexity:.2f}); that checkpoint is the one saved"
            )
        if self.accuracy is not None:
            out.append(f"{self.scored_on} (your scorer): {self.accuracy:.1%} (n={self.n_scored})")
        for prompt, reference, answer in self.samples:
            out += [f"  prompt:    {_one_line(prompt)}", f"  reference: {_one_line(reference)}"]
            out.append(f"  answer:    {_one_line(answer)}")
        return out


def _one_line(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def best_checkpoint_settings(profile) -> dict:
    """SFTConfig values that measure the validation loss 8 times (or each epoch) and keep the best."""
    steps = max(profile.max_steps // 8, 1) if profile.max_steps > 0 else None
    every = {"eval_steps": steps, "save_steps": steps} if steps else {}
    strategy = "steps" if steps else "epoch"
    return {
        "eval_strategy": strategy,
        "save_strategy": strategy,
        **every,
        "save_total_limit": 2,  # the best and the newest
        "load_best_model_at_end": True,
        "metric_for_best_model": "eval_loss",
        "greater_is_better": False,
    }


def measure(result, prepared: Prepared, score: Callable | None) -> Report:
    """Losses from the run's log, then answers to validation prompts (scored when `score` is set)."""
    from ftcourse.evaluate import generate, prompt_messages

    history = result.log_history
    evals = [h for h in history if "eval_loss" in h]
    best = min(evals, key=lambda h: h["eval_loss"], default=None)
    train_losses = [h["loss"] for h in history if "loss" in h]
    records = prepared.scored[: MAX_SCORED if score else SAMPLES_SHOWN]
    scored_on = prepared.scored_on
    if score and len(prepared.scored) > MAX_SCORED:  # said, not silently dropped
        scored_on += f", the first {MAX_SCORED} of {len(prepared.scored)} records"
    model, tokenizer = result.model, result.tokenizer
    model.eval()
    budget = answer_budget(tokenizer, prepared.train + prepared.scored)
    prompts = [prompt_messages(r["messages"]) for r in records]
    answers = generate(model, tokenizer, prompts, budget, 16, progress=bool(score))
    accuracy, score_error = _accuracy(score, records, answers, prepared) if score else (None, None)
    samples = [
        (p[-1]["content"], r["messages"][-1]["content"], a)
        for p, r, a in list(zip(prompts, records, answers))[:SAMPLES_SHOWN]
    ]
    return Report(
        result.trainer.state.global_step,
        result.seconds,
        None if best is None else best["step"],
        None if best is None else best["eval_loss"],
        train_losses[-1] if train_losses else None,
        accuracy,
        len(records) if score else 0,
        scored_on,
        samples,
        score_error,
        recipe_used(result.trainer),
    )


def recipe_used(trainer) -> str:
    """The step budget, learning rate, batch and LoRA shape as the trainer and the adapter ran them.

    Read from the trainer's `TrainingArguments` and the model's `peft_config`, not the profile: a
    task's own learning rate (`Profile.for_task`) or a run's overrides are then stated as used.
    """
    args = trainer.args
    budget = (
        f"{args.max_steps} steps" if args.max_steps > 0 else f"{args.num_train_epochs:g} epochs"
    )
    line = (
        f"{budget}, learning rate {args.learning_rate:g}, batch "
        f"{args.per_device_train_batch_size} x {args.gradient_accumulation_steps}"
    )
    lora = next(iter(getattr(trainer.model, "peft_config", {}).values()), None)
    if lora is None:
        return f"{line}, every weight trained (no adapter)"
    targets = lora.target_modules  # peft keeps a list as a set, a regular expression as a str
    on = targets if isinstance(targets, str) else ", ".join(sorted(targets))
    return f"{line}, LoRA r={lora.r} alpha={lora.lora_alpha} on {on}"


def _accuracy(score: Callable, records: list[dict], answers: list[str], prepared: Prepared):
    """(share of answers `score` accepts, None); when it raises: (None, what it raised and where)."""
    right = 0
    for i, (record, answer) in enumerate(zip(records, answers)):
        try:
            right += bool(score(record, answer))
        except Exception as exc:  # the learner's code: named with its record, not a traceback
            said = _one_line(f"{type(exc).__name__}: {exc}".removesuffix(": "), 200)
            name = getattr(score, "__name__", "score")
            return None, (
                f"your scorer {name} raised {said} ({_raised_at(exc, score)}) on "
                f"{prepared.scored_record(i)}"
            )
    return right / len(records), None


def _raised_at(exc: Exception, score: Callable) -> str:
    """`file.py, line N`: the scorer's line the exception came from (else the innermost line)."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = getattr(getattr(score, "__code__", None), "co_filename", None)
    frame = next((f for f in reversed(frames) if f.filename == own), frames[-1])
    return f"{Path(frame.filename).name}, line {frame.lineno}"


LOSS_ON = {
    "assistant": "the answers only (assistant_only_loss, through the chat template's generation markers)",
    "completion": "the answers only, as prompt/completion records (the chat template has no generation "
    "markers and trl ships no training version of it)",
}


def model_card(prepared: Prepared, report: Report, run, profile) -> str:
    """README.md for the adapter folder: base model, data, settings, losses, time, samples."""
    loss = "not measured" if report.best_eval_loss is None else f"{report.best_eval_loss:.3f}"
    accuracy = (
        f"not measured: {report.score_error}"
        if report.score_error
        else "no scorer given"
        if report.accuracy is None
        else f"{report.accuracy:.1%} ({report.scored_on}, n={report.n_scored})"
    )
    lines = [
        "---",
        "library_name: peft",
        f"base_model: {profile.model}",
        "tags: [lora, qlora, ftcourse]" if run.method == "qlora" else "tags: [lora, ftcourse]",
        "---",
        "",
        f"# {run.task}: a {run.method.upper()} adapter trained with ftcourse",
        "",
        f"- Base model: `{profile.model}` (profile `{profile.name}`, {profile.compute_dtype})",
        f"- Data: `{prepared.path.name}`, {prepared.n_read} records ({prepared.fmt}); "
        f"{len(prepared.removed)} removed by the quality checklist; "
        f"{len(prepared.train)} trained on, {len(prepared.validation)} held out for validation",
        f"- Recipe: {report.recipe}",
        f"- Loss on: {LOSS_ON[profile.loss_on]}",
        f"- Trained {report.steps} steps in {report.seconds:.0f} s; last training loss "
        + ("not logged" if report.final_train_loss is None else f"{report.final_train_loss:.3f}"),
        f"- Best validation loss: {loss}"
        + (
            f" at step {report.best_step} (perplexity {report.perplexity:.2f}); this is the saved "
            "checkpoint"
            if report.best_eval_loss is not None
            else ""
        ),
        f"- Accuracy (your scorer): {accuracy}",
        "",
        "![training and validation loss](loss.png)",
        "",
        "## Sample answers (the prompts scored)",
        "",
    ]
    for prompt, reference, answer in report.samples:
        lines += [
            f"- **prompt:** {_one_line(prompt, 300)}",
            f"  - reference: {_one_line(reference, 300)}",
            f"  - answer: {_one_line(answer, 300)}",
        ]
    lines += [
        "",
        "Load it with `peft.PeftModel.from_pretrained(base, this_folder)`, or merge and export it:",
        "`python -m ftcourse export this_folder --merged merged/ --gguf model.gguf`.",
        "",
    ]
    return "\n".join(lines)


def write_outputs(folder: Path, prepared: Prepared, report: Report, result, run, profile) -> None:
    """The model card (README.md) and the loss curves (loss.png) beside the saved adapter."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ftcourse.plots import loss_curves

    fig = loss_curves({run.task: result.log_history}, title=f"{run.task}: loss")
    if report.best_step is not None:
        fig.axes[0].axvline(report.best_step, color="grey", ls=":", label="saved checkpoint")
        fig.axes[0].legend()
    fig.savefig(folder / "loss.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    (folder / "README.md").write_text(model_card(prepared, report, run, profile), encoding="utf-8")


def start(run, data: str | Path, score: str | None = None, test: str | Path | None = None):
    """Before training: the scorer loaded, the file prepared and summed up, best-checkpoint settings.

    Returns (prepared, scorer, splits); `ftcourse.train.train_on_file` trains on the splits and
    hands the result to `finish`.
    """
    from transformers import AutoTokenizer

    from ftcourse.chat import prepare_tokenizer

    scorer = load_scorer(score) if score else None  # a bad --score fails before training
    profile = run.resolved_profile()
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(profile.model_path), profile)
    prepared = prepare(
        data, tokenizer, profile.max_length, single_turn=profile.loss_on == "completion"
    )
    if test:
        prepared.test, prepared.test_path = load_test(test), Path(test)
    print(prepared.summary(), f"loss on: {LOSS_ON[profile.loss_on]}", sep="\n", flush=True)
    run.sft = {**best_checkpoint_settings(profile), **run.sft}
    return prepared, scorer, (_dataset(prepared.train), _dataset(prepared.validation))


def finish(result, prepared: Prepared, scorer, run) -> Report:
    """After training: measure, then (main process) write the card and the plot and print the report.

    A scorer that raises is a `CourseError` naming the record, raised once the adapter, its card
    and its plot are saved: training is never lost to a bug in the scorer.
    """
    report = measure(result, prepared, scorer)
    if result.trainer.is_world_process_zero():
        write_outputs(result.output_dir, prepared, report, result, run, run.resolved_profile())
        print("\n".join(report.lines()))
        print(f"saved to {result.output_dir} (adapter, README.md, loss.png)")
    if report.score_error:
        raise CourseError(
            f"{report.score_error}, so no accuracy was measured. The adapter and its model card "
            f"are saved in {result.output_dir}; fix the scorer and run the same command again to "
            "score it."
        )
    return report


def _dataset(rows: list[dict]):
    """The rows' `messages` as a `datasets.Dataset` (trl would read a `prompt` field as a format)."""
    from datasets import Dataset

    return Dataset.from_list([{"messages": r["messages"]} for r in rows])
