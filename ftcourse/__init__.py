"""ftcourse: helpers for a hands-on course on fine-tuning LLMs with LoRA and QLoRA."""

from ftcourse.errors import CourseError
from ftcourse.paths import DATA_DIR, OUTPUT_DIR, REPO_ROOT

__all__ = ["CourseError", "DATA_DIR", "OUTPUT_DIR", "REPO_ROOT", "setup_notebook"]
__version__ = "0.1.0"


def setup_notebook(seed: int = 0, verbose: bool = True):
    """Seed everything, print the environment report and return the chosen profile."""
    from ftcourse.doctor import setup_notebook as _setup

    return _setup(seed=seed, verbose=verbose)
