"""`make course`'s runner: a notebook in a fresh kernel over local sockets, timed and measured."""

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from run_course import is_deep_dive, run_one  # noqa: E402


def test_a_notebook_runs_in_a_kernel_on_ipc_sockets_that_are_cleaned_up(
    tmp_path, monkeypatch, capfd
):
    monkeypatch.chdir(tmp_path)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os\nprint(6 * 7, os.getcwd())")]
    path = tmp_path / "nb" / "01_probe.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    done, seconds, peak_mb = run_one(path, timeout=120)
    assert done.cells[0].outputs[0]["text"] == f"42 {path.parent}\n"  # run where the notebook is
    assert len(done.cells) == 1  # the memory probe cell is removed again
    assert 0 < seconds < 120 and peak_mb > 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb"]  # no socket files left behind
    assert sorted(p.name for p in path.parent.iterdir()) == ["01_probe.ipynb"]
    assert "without encryption" not in capfd.readouterr().err  # ipykernel's warning for TCP


def test_deep_dives_are_timed_apart_from_the_core():
    assert is_deep_dive("04b_debugging_a_fine_tune.ipynb")
    assert is_deep_dive("solutions/04b_debugging_a_fine_tune_solutions.ipynb")
    assert not is_deep_dive("04_qlora_training.ipynb")


def test_the_times_table_lists_every_notebook_and_totals_the_core_and_the_whole_course():
    from run_course import timings_markdown

    rows = [("00_setup.ipynb", 12), ("04_qlora_training.ipynb", 240), ("04b_x.ipynb", 420)]
    rows += [("07_your_own_data.ipynb", 180)]
    times = {
        "notebooks": [{"notebook": n, "seconds": s, "peak_mb": 500.0} for n, s in rows],
        "machine": "2-core x86_64 CPU",
        "profile": "cpu-tiny",
        "date": "2026-12-07",
    }
    table = timings_markdown(times)
    assert "| 07_your_own_data.ipynb | 3.0 min | 500 MB |" in table
    assert "| **core notebooks, total** | **7.2 min** |" in table  # 12 + 240 + 180 s
    assert "| **deep dives, total** | **7.0 min** |" in table
    assert "| **whole course, total** | **14.2 min** |" in table
    assert table.endswith("(2-core x86_64 CPU, profile cpu-tiny).")
