"""Author a notebook as a percent-format script, then convert it: python scripts/py2nb.py SRC.py DEST.ipynb

Cells start with `# %%` (code) or `# %% [markdown]` (markdown, each line prefixed with `# `).
The notebook is written without outputs, as the repository stores it.
"""

import sys
from pathlib import Path

import nbformat


def convert(src: str) -> nbformat.NotebookNode:
    """Turn percent-format text into a notebook."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for chunk in src.split("# %%")[1:]:
        header, _, body = chunk.partition("\n")
        body = body.strip("\n")
        if header.strip() == "[markdown]":
            text = "\n".join(
                line[2:] if line.startswith("# ") else line.lstrip("#")
                for line in body.splitlines()
            )
            nb.cells.append(nbformat.v4.new_markdown_cell(text))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(body))
    for i, cell in enumerate(nb.cells):  # stable ids keep diffs small
        cell.id = f"c{i:03d}"
    return nb


if __name__ == "__main__":
    src, dest = sys.argv[1:3]
    nbformat.write(convert(Path(src).read_text()), dest)
