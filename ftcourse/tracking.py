"""Optional experiment tracking with trackio: metrics written to a local folder, read back offline.

transformers' Trainer logs to trackio when `TrainingArguments.report_to` is "trackio" (its
`TrackioCallback`): each logged step (loss, learning rate, gradient norm, validation loss) goes
to a SQLite file per project in trackio's folder, `$TRACKIO_DIR`. trackio reads that variable
once, when it is first imported, so `report_to` sets it first. With no Space id and no server
URL trackio writes only there: no account, no network. To look at the runs, with
`TRACKIO_DIR=outputs/trackio` set: `trackio show --project ftcourse` serves a dashboard on
127.0.0.1:7860; `trackio list runs --project ftcourse` names the runs, and `trackio get metric
--project ftcourse --run NAME --metric train/loss` prints one metric (its Step column is trackio's
own count from 0; `logged` gives the Trainer's step).

In a Jupyter kernel `trackio.init` also starts that dashboard and shows it in the cell; on Colab
it opens a public share link for it.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from ftcourse.errors import CourseError
from ftcourse.paths import output_dir

TRACKERS = ("none", "trackio")
PROJECT = "ftcourse"  # TrainingArguments.project: the name of trackio's file, <PROJECT>.db
INSTALL = 'pip install -e ".[track]"'
# trackio sends the metrics to a Hugging Face Space or a server of its own when one is set
REMOTE_SETTINGS = ("TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL")


def report_to(name: str | None, folder: str | Path | None = None) -> str:
    """The value for `TrainingArguments.report_to`: "none", or "trackio" writing only to `folder`.

    `folder` defaults to `outputs/trackio`. trackio keeps the folder it was first imported with, so
    a second folder in the same process is refused rather than silently ignored.
    """
    if name is None or name == "none":
        return "none"
    if name != "trackio":
        raise CourseError(f"unknown tracker {name!r}: choose one of {', '.join(TRACKERS)}")
    for variable in REMOTE_SETTINGS:
        if os.environ.get(variable):
            raise CourseError(
                f"{variable} is set, so trackio would send the metrics off this machine: the "
                f"course logs locally only; unset it (unset {variable})"
            )
    folder = Path(folder) if folder else output_dir("trackio")
    os.environ["TRACKIO_DIR"] = str(folder)
    try:
        utils = importlib.import_module("trackio.utils")
    except ImportError:
        raise CourseError(
            f"trackio is not installed: install the course's tracking extra ({INSTALL}), "
            "or report to none"
        ) from None
    if Path(utils.TRACKIO_DIR).resolve() != folder.resolve():
        raise CourseError(
            f"trackio already writes to {utils.TRACKIO_DIR} in this process (it reads TRACKIO_DIR "
            f"once): restart Python (the kernel) to log to {folder}"
        )
    return "trackio"


def where() -> Path:
    """The folder trackio writes to in this process: `$TRACKIO_DIR` once `report_to` has set it."""
    return Path(importlib.import_module("trackio.utils").TRACKIO_DIR)


def runs(project: str = PROJECT) -> list[str]:
    """The names of a project's runs in trackio's local folder, oldest first."""
    from trackio.sqlite_storage import SQLiteStorage

    return SQLiteStorage.get_runs(project)


def logged(project: str = PROJECT, run: str | None = None, metric: str = "train/loss") -> dict:
    """{Trainer step: value} of one metric of a run (the newest when `run` is None), read back."""
    from trackio.sqlite_storage import SQLiteStorage

    names = runs(project)
    if not names:
        raise CourseError(f"trackio has no run in project {project!r} under {where()}")
    entries = SQLiteStorage.get_logs(project, run or names[-1])
    # trackio numbers its own entries; the Trainer's step travels as train/global_step
    return {e["train/global_step"]: e[metric] for e in entries if metric in e}
