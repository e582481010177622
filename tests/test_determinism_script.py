"""scripts/determinism.py: what it compares between two runs, and what it masks as varying."""

import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from determinism import metric_lines  # noqa: E402


def printed(text: str):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    nb.cells.append(cell)
    return nb


def test_results_are_compared_and_times_are_masked():
    first = printed(
        "| task | held-out accuracy | n | seconds |\n|---|---:|---:|---:|\n"
        "| polite | 83% | 100 | 26 |\npolite: 83% in 12.5 s, loss 0.216\nloaded the model\n"
    )
    second = printed(first.cells[0].outputs[0]["text"].replace("26", "7").replace("12.5", "9.1"))
    assert metric_lines(first) == metric_lines(second)
    lines = metric_lines(first)
    assert "[cell 0] | polite | 83% | 100 | <varies> |" in lines
    assert "[cell 0] polite: 83% in <varies>, loss 0.216" in lines
    assert not any("loaded the model" in line for line in lines)  # not a result
    changed = printed(first.cells[0].outputs[0]["text"].replace("| 83%", "| 80%"))
    assert metric_lines(changed) != lines  # a different score is a difference
