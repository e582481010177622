"""Colab: the notebooks' setup cell and badge, made from the one repository address in pyproject.toml.

Every notebook opens with the same cell. On Colab it clones the course and calls `install`, which
installs only what Colab lacks (the `colab` extra: the training libraries at the tested versions),
keeps Colab's own torch, numpy, pandas and Jupyter stack, and says when the runtime must restart.
Elsewhere the cell does nothing. `python -m ftcourse.colab` rewrites the cell and the "Open in Colab"
badge in every notebook from `[project.urls] Repository`: a fork changes that line and reruns it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

from ftcourse.paths import NOTEBOOK_GLOB, REPO_ROOT

CLONE_DIR = "/content/ftcourse"
BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")


def repo_url(pyproject: Path = REPO_ROOT / "pyproject.toml") -> str:
    """The repository's address, from pyproject.toml's `[project.urls] Repository`."""
    return tomllib.loads(pyproject.read_text())["project"]["urls"]["Repository"].rstrip("/")


def setup_cell(url: str | None = None) -> str:
    """The source of the first code cell of every notebook."""
    url = url or repo_url()
    return f"""# Colab only: fetch the course and install what Colab lacks. Elsewhere this does nothing.
import sys

if "google.colab" in sys.modules:
    import os

    if not os.path.isdir("{CLONE_DIR}"):  # the address is pyproject.toml's [project.urls]
        !git clone -q --depth 1 {url} {CLONE_DIR}
    sys.path.insert(0, "{CLONE_DIR}")
    from ftcourse.colab import install

    install("{CLONE_DIR}")  # the tested training libraries; says if a restart is needed"""


def badge(notebook: str, url: str | None = None) -> str:
    """The "Open in Colab" badge of a notebook (a path under notebooks/, e.g. "00_setup.ipynb")."""
    github = (url or repo_url()).removeprefix("https://github.com/")
    link = f"https://colab.research.google.com/github/{github}/blob/main/notebooks/{notebook}"
    icon = "https://colab.research.google.com/assets/colab-badge.svg"
    return f"[![Open In Colab]({icon})]({link})"


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    return {d.metadata["Name"].lower(): d.version for d in md.distributions()}


def changed_imports(before: dict[str, str], after: dict[str, str], modules) -> list[str]:
    """Distributions whose version changed and that a module already imported comes from."""
    import importlib.metadata as md

    owners = md.packages_distributions()
    dists = {d.lower() for m in modules for d in owners.get(m.split(".")[0], [])}
    return sorted(d for d in dists if before.get(d) and before.get(d) != after.get(d))


def torch_minimum() -> str | None:
    """The lowest torch the installed transformers runs with: its `torch` extra's `>=` bound."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    for line in md.requires("transformers") or []:
        req = Requirement(line)
        if req.name == "torch" and req.marker and req.marker.evaluate({"extra": "torch"}):
            bounds = [s.version for s in req.specifier if s.operator == ">="]
            if bounds:
                return bounds[0]
    return None


def torch_advice(installed: str | None, minimum: str | None) -> str | None:
    """One line saying what to do when the installed torch is below `minimum`; None when it is not."""
    from packaging.version import Version

    if not installed or not minimum or Version(installed) >= Version(minimum):
        return None
    return (
        f"torch {installed} is older than {minimum}, the lowest the installed transformers runs "
        f'with (below it, transformers turns torch off): run `!pip install -q "torch>={minimum}"`, '
        "then restart the runtime (Runtime > Restart session)."
    )


def install(path: str = CLONE_DIR, run: Callable[[list[str]], int] | None = None) -> list[str]:
    """pip-install the course with its `colab` extra; return (and name) what needs a restart.

    A package the running kernel has already imported keeps its old version in memory until the
    runtime restarts; anything else is usable at once. A torch older than transformers needs is
    named with the command that upgrades it.
    """
    run = run or (lambda cmd: subprocess.run(cmd, check=False).returncode)
    before = _versions()
    code = run([sys.executable, "-m", "pip", "install", "-q", "-e", f"{path}[colab]"])
    if code != 0:
        raise RuntimeError(f"pip could not install the course (exit code {code}); see above.")
    after = _versions()
    stale = changed_imports(before, after, list(sys.modules))
    advice = torch_advice(after.get("torch"), torch_minimum())
    if advice:
        print(advice)
    if stale:
        print(
            "Restart the runtime now (Runtime > Restart session), then run this notebook again "
            f"from the top: this session had already imported {', '.join(stale)}, which pip "
            "just replaced."
        )
    else:
        print("Installed. No restart needed.")
    return stale


def rewrite_notebooks(paths: list[Path], url: str | None = None) -> list[Path]:
    """Put the current setup cell and badge into each notebook; return those that changed."""
    url = url or repo_url()
    changed = []
    for path in paths:
        nb = json.loads(path.read_text(encoding="utf-8"))
        title = "".join(nb["cells"][0]["source"])
        first_code = next(c for c in nb["cells"] if c["cell_type"] == "code")
        new_title = BADGE.sub(badge(path.name, url).replace("\\", "\\\\"), title)
        new_cell = setup_cell(url)
        if (new_title, new_cell) != (title, "".join(first_code["source"])):
            nb["cells"][0]["source"] = new_title.splitlines(keepends=True)
            first_code["source"] = new_cell.splitlines(keepends=True)
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            changed.append(path)
    return changed


def main() -> int:
    """Rewrite every course notebook's Colab cell and badge from pyproject.toml."""
    paths = sorted((REPO_ROOT / "notebooks").glob(NOTEBOOK_GLOB))
    for path in rewrite_notebooks(paths):
        print(f"rewrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
