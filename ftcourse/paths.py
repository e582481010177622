"""Where the course keeps its data and writes its outputs."""

import os
from pathlib import Path

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
