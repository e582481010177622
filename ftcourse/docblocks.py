"""Generated blocks in Markdown pages: the text between `<!-- NAME:start -->` and `<!-- NAME:end -->`."""

from __future__ import annotations

from pathlib import Path

from ftcourse.errors import CourseError


def replace_block(path: Path, name: str, text: str) -> None:
    """Replace what stands between the `name` markers in a Markdown file with `text`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    old = Path(path).read_text(encoding="utf-8")
    if start not in old or end not in old:
        raise CourseError(f"{path} has no {start} ... {end} block to fill.")
    before, rest = old.split(start, 1)
    after = rest.split(end, 1)[1]
    Path(path).write_text(f"{before}{start}\n{text.strip()}\n{end}{after}", encoding="utf-8")
