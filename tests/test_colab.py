"""The Colab path: one setup cell made from pyproject's URL, installing only what Colab lacks."""

import json
import tomllib

from packaging.requirements import Requirement
from repo_files import constraint_pins

from ftcourse import colab
from ftcourse.paths import NOTEBOOK_GLOB, REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob(NOTEBOOK_GLOB))
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_the_repository_url_is_written_once_in_pyproject():
    url = PYPROJECT["project"]["urls"]["Repository"]
    assert colab.repo_url() == url.rstrip("/") and url.startswith("https://github.com/")


def test_every_notebook_opens_with_the_generated_setup_cell_and_badge():
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        first_code = next(c for c in cells if c["cell_type"] == "code")
        assert "".join(first_code["source"]) == colab.setup_cell(), (
            f"{path.name}: run `python -m ftcourse.colab` to regenerate the setup cell"
        )
        assert colab.badge(path.name) in "".join(cells[0]["source"]), path.name
    assert colab.repo_url() in colab.setup_cell()


def test_a_fork_rewrites_cell_and_badge_from_its_own_url(tmp_path):
    copy = tmp_path / NOTEBOOKS[0].name
    copy.write_text(NOTEBOOKS[0].read_text())
    fork = "https://github.com/someone/my-fork"
    assert colab.rewrite_notebooks([copy], fork) == [copy]
    text = copy.read_text()
    assert "github.com/someone/my-fork /content/ftcourse" in text
    assert "colab.research.google.com/github/someone/my-fork/blob/main/notebooks/" in text
    assert colab.rewrite_notebooks([copy], fork) == [], "a second run changes nothing"


def test_colab_installs_the_tested_training_libraries_and_nothing_of_the_jupyter_stack():
    pins = constraint_pins(REPO_ROOT / "constraints.txt")
    extra = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["colab"]]
    names = {r.name.lower() for r in extra}
    assert {"transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate"} <= names
    for req in extra:
        assert str(req.specifier) == f"=={pins[req.name.lower()]}", req
    untouchable = {"ipykernel", "ipython", "tornado", "pyzmq", "numpy", "pandas", "jupyterlab"}
    assert not names & untouchable
    core = {Requirement(r).name.lower() for r in PYPROJECT["project"]["dependencies"]}
    assert not core & untouchable, "the core dependencies must leave Colab's Jupyter stack alone"


def test_install_names_imported_packages_that_changed(monkeypatch, capsys):
    import transformers  # noqa: F401  (what a Colab kernel may have imported before the cell)

    versions = iter(
        [{"transformers": "4.57.0", "numpy": "2.0.2"}, {"transformers": "5.24.0", "numpy": "2.0.2"}]
    )
    monkeypatch.setattr(colab, "_versions", lambda: next(versions))
    calls = []
    stale = colab.install("/content/ftcourse", run=lambda cmd: calls.append(cmd) or 0)
    assert calls and calls[0][-1] == "/content/ftcourse[colab]" and "--no-deps" not in calls[0]
    assert stale == ["transformers"] and "Restart the runtime" in capsys.readouterr().out


def test_install_says_when_no_restart_is_needed(monkeypatch, capsys):
    monkeypatch.setattr(colab, "_versions", lambda: {"trl": "1.16.0"})
    assert colab.install("/x", run=lambda cmd: 0) == []
    assert "No restart needed" in capsys.readouterr().out
