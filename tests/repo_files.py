"""Notebook code cells as plain Python, for tests that read the notebooks' source."""

import json


def code_cell_sources(path) -> list[str]:
    """Each code cell's source, its shell (`!`) and magic (`%`) lines turned into `pass`."""
    out = []
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "code":
            lines = "".join(cell["source"]).splitlines()
            out.append(
                "\n".join(
                    ln[: len(ln) - len(ln.lstrip())] + "pass"
                    if ln.lstrip()[:1] in "!%" and ln.strip()
                    else ln
                    for ln in lines
                )
            )
    return out


def constraint_pins(path) -> dict[str, str]:
    """constraints.txt as {normalised package name: version}."""
    pins = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    return pins
