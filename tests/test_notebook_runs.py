"""What `make test` runs: the notebooks in its lanes, and on the stand-ins those that read the profile."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from profile_notebooks import (  # noqa: E402
    all_notebooks,
    package_readers,
    profile_notebooks,
    why_it_reads,
)

SETUP = "import ftcourse\n\nprofile = ftcourse.setup_notebook()"


@pytest.fixture(scope="module")
def readers():
    return package_readers()


def reasons(tmp_path, readers, *cells: str) -> list[str]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# a notebook")]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    path = tmp_path / "99_probe.ipynb"
    nbformat.write(nb, path)
    return why_it_reads(path, *readers)


def test_a_notebook_that_only_sets_up_reads_no_profile(tmp_path, readers):
    assert reasons(tmp_path, readers, SETUP, "!pip list\nx = [1, 2]\nprint(x)") == []


def test_reading_the_profile_it_was_given_counts(tmp_path, readers):
    found = reasons(tmp_path, readers, SETUP, "print(profile.model_path)")
    assert found == ["reads `profile`, the profile setup_notebook() returned"]


def test_calling_a_package_function_that_chooses_the_profile_counts(tmp_path, readers):
    cell = "from ftcourse.adapters import ensure_adapters\n\nensure_adapters(['polite'])"
    assert "calls adapters.ensure_adapters, which reads the profile" in reasons(
        tmp_path, readers, SETUP, cell
    )
    cell = "from ftcourse.ownmodel import notebook_profile as p\n\np()"
    assert reasons(tmp_path, readers, cell) == [
        "calls ownmodel.notebook_profile, which reads the profile"
    ]


def test_a_method_of_the_same_name_does_not_count(tmp_path, readers):
    # `model.train()` is torch's, not the package's training function
    assert reasons(tmp_path, readers, SETUP, "model = object()\nmodel.train()\nx.report()") == []


def test_an_exercise_checker_that_reads_the_profile_counts(tmp_path, readers):
    cell = "from ftcourse.exercises import check\n\ncheck({id!r}, 1)"
    assert reasons(tmp_path, readers, cell.format(id="00.2")) == [
        "calls exercises.nb00._00_2, which reads the profile"
    ]
    assert reasons(tmp_path, readers, cell.format(id="00.1")) == []


def test_the_package_functions_that_read_it_are_found(readers):
    found, checkers = readers
    assert {"profiles.choose_profile", "adapters.ensure_adapters", "export.base_profile"} <= found
    assert "profiles.auto_profile" not in found  # it is given the hardware, not the profile
    assert checkers["00.2"] == "exercises.nb00._00_2"


def test_the_course_notebooks_are_split_as_their_code_reads():
    chosen = profile_notebooks()
    names = {path.name for path in chosen}
    # the training notebooks read it; 01 and 03 compute on cpu-tiny and the hardware they are given
    assert {"04_qlora_training.ipynb", "05_inference_and_adapters.ipynb"} <= names
    assert "03_lora_maths.ipynb" not in names
    assert set(chosen) < set(all_notebooks())


def test_make_runs_the_stand_ins_on_that_list():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nstandin-test:")[1].split("\n\n")[0]
    assert "scripts/profile_notebooks.py" in recipe


def make_variable(name: str) -> list[str]:
    """A variable of the Makefile as make expands it."""
    out = subprocess.run(
        ["make", "-pn", "-f", "Makefile", "--no-print-directory", "clean"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [line for line in out.splitlines() if line.startswith(f"{name} := ")]
    assert lines, f"the Makefile defines no {name}"
    return lines[-1].split(" := ", 1)[1].split()


def test_the_lanes_of_make_test_run_every_notebook_once():
    lanes = [make_variable(n) for n in ("NB_TRAINING", "NB_DEEP_DIVE", "NB_AFTER_04", "NB_OTHERS")]
    run = [path for lane in lanes for path in lane]
    assert sorted(run) == sorted(str(p.relative_to(ROOT)) for p in all_notebooks())
    assert len(run) == len(set(run))
    # notebook 04 trains on the splits notebook 02 writes: the same lane, 02 first
    assert lanes[0] == ["notebooks/02_data.ipynb", "notebooks/04_qlora_training.ipynb"]


def test_a_message_that_names_the_variable_is_not_a_read(tmp_path):
    (tmp_path / "probe.py").write_text(
        "import os\n\n"
        "def reads():\n    return os.environ.get('FTCOURSE_PROFILE')\n\n"
        "def tells(name):\n    raise ValueError(f'unknown {name}: set FTCOURSE_PROFILE to one')\n"
    )
    found, _ = package_readers(tmp_path)
    assert "probe.reads" in found and "probe.tells" not in found
