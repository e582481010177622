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


def markdown_table(
    header: list[str], rows: list[list[str]], right_from: int = 1, right_to: int | None = None
) -> str:
    """A Markdown table; columns `right_from` up to (not including) `right_to` are right-aligned."""
    right = range(right_from, len(header) if right_to is None else right_to)
    rule = "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"
    return "\n".join(
        ["| " + " | ".join(header) + " |", rule] + ["| " + " | ".join(r) + " |" for r in rows]
    )
