"""The Colab path: one setup cell made from pyproject's URL, installing only what Colab lacks."""

import json
import tomllib

from packaging.requirements import Requirement
from repo_files import constraint_pins

from ftcourse import colab
from ftcourse.paths import NOTEBOOK_GLOB, REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob(NOTEBOOK_GLOB))
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
# Not the tested pin: Colab's gradio, gradio-client and diffusers need huggingface-hub below 2
# (tests/test_colab_resolution.py checks that the cap resolves and that they accept the result).
CAPPED = {"huggingface-hub": "<2"}


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
        if req.name.lower() in CAPPED:
            assert str(req.specifier) == CAPPED[req.name.lower()], req
            continue
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


def test_the_torch_minimum_from_transformers_metadata_is_the_one_its_code_enforces():
    import inspect
    import re

    from packaging.version import Version
    from transformers.utils import import_utils

    minimum = colab.torch_minimum()
    assert minimum is not None
    gate = re.findall(
        r'version\.parse\("([\d.]+)"\)', inspect.getsource(import_utils.is_torch_available)
    )
    assert gate and {Version(v) for v in gate} == {Version(minimum)}, (gate, minimum)
    core = next(r for r in PYPROJECT["project"]["dependencies"] if Requirement(r).name == "torch")
    bounds = [Version(s.version) for s in Requirement(core).specifier if s.operator == ">="]
    assert bounds == [Version(minimum)], f"pyproject.toml's {core!r} should say torch>={minimum}"


def test_install_says_how_to_upgrade_a_torch_older_than_transformers_needs(monkeypatch, capsys):
    minimum = colab.torch_minimum()
    versions = iter([{"torch": "2.5.1+cu121"}, {"torch": "2.5.1+cu121"}])
    monkeypatch.setattr(colab, "_versions", lambda: next(versions))
    colab.install("/x", run=lambda cmd: 0)
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("torch 2.5.1+cu121")]
    assert len(lines) == 1 and f'pip install -q "torch>={minimum}"' in lines[0], lines
    assert "Restart session" in lines[0]


def test_install_is_silent_about_a_torch_transformers_accepts(monkeypatch, capsys):
    monkeypatch.setattr(colab, "_versions", lambda: {"torch": "2.11.0+cu128"})
    colab.install("/x", run=lambda cmd: 0)
    assert "older than" not in capsys.readouterr().out
    assert colab.torch_advice("2.6.0a0", "2.6") is not None, "a pre-release of 2.6 is below 2.6"
