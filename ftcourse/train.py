"""Training: the article's QLoRA recipe on today's APIs, driven by a profile.

Notebook 04 spells these calls out one by one (`ftcourse.trainer`); this module is the same recipe
for the other notebooks, the tests and the script form, from a run file (`ftcourse.runfile`):

    python -m ftcourse.train runs/polite-qlora.yaml           # one process
    accelerate launch -m ftcourse.train runs/polite-qlora.yaml  # DDP / FSDP on several devices
    python -m ftcourse.train --data my_chats.jsonl            # your own file (ftcourse.yourdata)

The command line saves a checkpoint every quarter of the step budget (the notebooks save none). After
Ctrl-C, the same command resumes from the newest checkpoint in the output folder; `--fresh` starts
over (`ftcourse.checkpoints`). A finished run replaces the output folder with the adapter in one
move and drops its checkpoints. Exit status: 0 trained; 2 bad input or an unusable setup, one
`error: <message>` line on stderr (`ftcourse.errors`); 130 interrupted. Any other failure is a bug
and shows its traceback.
"""

from __future__ import annotations

import argparse
import errno
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from ftcourse.checkpoints import (
    checkpoint_step,
    checkpoint_to_resume,
    cli_checkpoints,
    is_main_process,
    last_checkpoint,
    remove_checkpoints,
    resume_point,
    save_trained,
)
from ftcourse.errors import CourseError, report_errors
from ftcourse.ownmodel import profile_for
from ftcourse.paths import prepare_output_dir
from ftcourse.profiles import Profile, ensure_fits
from ftcourse.runfile import RunConfig
from ftcourse.trainer import (
    check_lengths,
    load_model,
    lora_config,
    match_adapter_dtype,
    sft_config,
    sft_trainer_class,
    training_dataset,
)

EXIT_INTERRUPTED = 130  # the shell's status for a command stopped by Ctrl-C (128 + SIGINT)


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

    profile = run.resolved_profile()
    prepare_output_dir(run.output_dir)  # an unwritable folder fails now, not after training
    train_ds, validation_ds = splits or _splits(run)  # and so does a bad data file
    if run.train_samples:
        train_ds = train_ds.select(range(min(run.train_samples, len(train_ds))))
    if run.renamed_copies:
        train_ds = renamed_dataset(train_ds, run.renamed_copies)
    # and multi-turn data for a template that cannot mark answers
    train_ds = training_dataset(train_ds, profile, f"{run.task} training split")
    validation_ds = training_dataset(validation_ds, profile, f"{run.task} validation split")
    resume = checkpoint_to_resume(run, profile)  # and a checkpoint of another model
    model, tokenizer = load_model(profile, run.method)
    if run.method != "full":
        set_seed(run.sft.get("seed", 0))  # the adapter's random init: same config, same run
        model = get_peft_model(model, lora_config(profile, **run.lora))
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


def main(argv: list[str] | None = None) -> int:
    """Command line: train from a YAML run file or your own data file; the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m ftcourse.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument("config", nargs="?", help="YAML run file (see runs/); or use --data")
    parser.add_argument(
        "--data",
        help="your own .json, .jsonl or .csv file (or .gz, .bz2, .xz, .zip of one), in any of the "
        "four formats (ftcourse.yourdata)",
    )
    parser.add_argument("--name", help="with --data: the run's name (default: the file's name)")
    parser.add_argument("--max-steps", type=int, help="override the profile's step budget")
    parser.add_argument("--epochs", type=float, help="train this many epochs, not a step budget")
    parser.add_argument("--output-dir", help="override the output folder")
    parser.add_argument("--profile", help="a profile by name (default: chosen from the hardware)")
    parser.add_argument(
        "--model",
        help="any causal LM, a Hub id or a local folder: its profile is derived from its config "
        "and this machine (ftcourse.ownmodel)",
    )
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
        "--report-to",
        choices=("none", "trackio"),
        default="none",
        help="log the metrics to trackio, in outputs/trackio: no account, no network "
        '(pip install -e ".[track]"; see ftcourse.tracking)',
    )
    parser.add_argument(
        "--fresh", action="store_true", help="start over: ignore (and delete) earlier checkpoints"
    )
    args = parser.parse_args(argv)
    if (args.config is None) == (args.data is None):
        parser.error("give a YAML run file or --data FILE (one of the two)")
    if args.profile and args.model:
        parser.error("--profile and --model are two ways to choose the model: give one")
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
    if args.model:
        run.model = args.model
    if args.max_steps:
        run.profile_overrides = {**run.profile_overrides, "max_steps": args.max_steps}
    if args.epochs:
        budget = {"max_steps": -1, "num_train_epochs": args.epochs}
        run.profile_overrides = {**run.profile_overrides, **budget}
    if args.output_dir:
        run.output_dir = args.output_dir
    if args.report_to != "none":
        from ftcourse.tracking import PROJECT, report_to

        run.sft = {**run.sft, "report_to": report_to(args.report_to), "project": PROJECT}
    return run


def default_name(data: str | Path) -> str:
    """A run's name from its data file: the file's name, or its folder's for train/data files."""
    path = Path(data)
    if path.suffix.lower() in (".gz", ".bz2", ".xz", ".zip"):  # train.jsonl.gz: as train.jsonl
        path = path.with_suffix("")
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
    if run.model:
        print(f"{profile.name}: {profile.summary}", flush=True)
        if args.data:  # the derived plan decides; a run file's method is its own
            run.method = "qlora" if profile.load_in_4bit else "lora"
    if not args.data:
        run.sft = {**cli_checkpoints(profile), **run.sft}
    run.resume_from_checkpoint = resume_point(run, args.fresh)
    try:
        if args.data:
            train_on_file(run, args.data, args.score, args.test)
            if is_main_process():
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
        profile = profile_for(run.profile, model=run.model)
    return ensure_fits(profile).with_overrides(**run.profile_overrides)


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
    if is_main_process():
        print(said, file=sys.stderr)
    return EXIT_INTERRUPTED


def _report_eval(run: RunConfig, result: TrainResult) -> None:
    from ftcourse.evaluate import evaluate
    from ftcourse.tasks import SCORED, load_task

    profile = profile_for(run.profile, model=run.model)
    n = profile.eval_samples if run.eval_samples is None else run.eval_samples
    if n and run.task in SCORED:
        test = load_task(run.task, "test").select(range(n))
        res = evaluate(result.model, result.tokenizer, run.task, list(test), label=run.method)
        print(f"held-out {run.task} accuracy: {res.accuracy:.1%} (n={res.n})")


if __name__ == "__main__":
    sys.exit(main())
