"""Where the course keeps its data and writes its outputs."""

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ftcourse.errors import CourseError

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
BASE_MODEL_DIR = DATA_DIR / "base-model"
ARCHITECTURES_DIR = DATA_DIR / "architectures"
# Outputs (adapters, checkpoints, plots) go outside git; FTCOURSE_OUTPUT_DIR moves them.
OUTPUT_DIR = Path(os.environ.get("FTCOURSE_OUTPUT_DIR", REPO_ROOT / "outputs"))
BUILD_DIR = REPO_ROOT / "build"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
# The course's notebooks: a number, an optional letter for a deep dive (04b), a name
NOTEBOOK_GLOB = "[0-9][0-9]*_*.ipynb"


def output_dir(*parts: str) -> Path:
    """Return (and create) a folder under the course's output directory."""
    path = OUTPUT_DIR.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------- saving a folder in one go

# What a folder a save may replace holds: a saved model, adapter or tokenizer, or checkpoints of one
SAVED_FILES = (
    "config.json",
    "adapter_config.json",
    "tokenizer_config.json",
    "*.safetensors",
    "training_args.bin",
)
CHECKPOINTS = "checkpoint-*"
_PROBE = ".write-probe-"  # `prepare_output_dir`'s test file (each process of a run writes one)


def is_replaceable(folder: Path) -> bool:
    """Whether a save may replace `folder`: absent, empty, or a saved model, adapter or checkpoints."""
    if not folder.exists():  # checked first: another process of the run may create it meanwhile
        return True
    if not folder.is_dir():
        return False
    if all(p.name.startswith(_PROBE) for p in folder.iterdir()):
        return True
    saved = any(any(folder.glob(pattern)) for pattern in (*SAVED_FILES, CHECKPOINTS))
    return saved or _is_model_card(folder / "README.md")


def _is_model_card(path: Path) -> bool:
    """A README.md that transformers, trl or peft wrote: it opens with metadata naming the library."""
    try:
        head = path.read_text(errors="replace")[:300]
    except OSError:
        return False
    return head.startswith("---") and "library_name:" in head


def _refuse_unless_replaceable(folder: Path) -> None:
    if not is_replaceable(folder):
        found = ", ".join(sorted(p.name for p in folder.iterdir())[:5])
        raise CourseError(
            f"{folder} already holds other files ({found}), not a saved model: saving there "
            "would replace them. Choose a new or empty output folder (output_dir, --output-dir)."
        )


def prepare_output_dir(folder: str | Path) -> Path:
    """Create `folder` and check that it can be written and later replaced by a save; return it."""
    folder = Path(folder)
    _refuse_unless_replaceable(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=_PROBE):
            pass
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise  # the caller says "disk full" with what to do
        raise CourseError(
            f"cannot write to the output folder {folder} ({exc.strerror or exc}). Choose a folder "
            "you can write to (output_dir, --output-dir), or fix its permissions."
        ) from None
    return folder


def partial_dir(dest: str | Path) -> Path:
    """The hidden sibling a save of `dest` is written to before `replace_dir` moves it into place."""
    dest = Path(dest)
    return dest.parent / f".{dest.name}.partial"


def replace_dir(new: Path, dest: str | Path, keep: str = CHECKPOINTS) -> Path:
    """Move the finished folder `new` to `dest`: the old `dest` aside, `new` in, the old one deleted.

    Entries of the old folder matching the glob `keep` (training checkpoints) move into the new one.
    A crash at any point leaves the old folder or the new one at `dest`, never a mix or a part.
    """
    dest = Path(dest)
    _refuse_unless_replaceable(dest)
    old = None
    if dest.exists():
        for entry in dest.glob(keep):
            entry.rename(new / entry.name)
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        dest.rename(old / dest.name)
    new.rename(dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest


@contextmanager
def saving_dir(dest: str | Path) -> Iterator[Path]:
    """Write a folder in one go: the block writes into a fresh hidden sibling, which then replaces `dest`."""
    dest = Path(dest)
    _refuse_unless_replaceable(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        yield new
        replace_dir(new, dest)
    finally:
        shutil.rmtree(new, ignore_errors=True)  # gone already, unless the block or the move failed
