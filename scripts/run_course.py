"""Run every notebook in order, offline, and record each one's wall time and peak memory.

Usage: python scripts/run_course.py [--only 03 05] [--solutions] [--no-html] [--out DIR]

Executed copies go to build/notebooks/, HTML to build/html/, the figures to build/course-times.json
and, after a full run, the timing tables in README.md and docs/instructor-guide.md (between the
`times` markers). With --out DIR everything goes under DIR instead and no published table changes
(the GPU check runs the course once per dtype this way).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from datetime import date
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from ftcourse.docblocks import replace_block
from ftcourse.profiles import notebook_profile

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
MARK = "__FTCOURSE_PEAK_RSS__"
PEAK_CELL = f"import resource\nprint('{MARK}', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def notebooks(only: list[str], solutions: bool) -> list[Path]:
    """The course notebooks in order, optionally filtered by number prefix."""
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if solutions:
        paths += sorted((ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.ipynb"))
    return [p for p in paths if not only or p.name[:2] in only]


def run_one(path: Path, timeout: int) -> tuple[nbformat.NotebookNode, float, float]:
    """Execute one notebook in a fresh kernel; return it with wall seconds and peak RSS in MB."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    out = "".join(o.get("text", "") for o in nb.cells.pop().get("outputs", []))
    kib = int(re.search(rf"{MARK} (\d+)", out).group(1))
    return nb, seconds, kib / 1024


def write_html(nb: nbformat.NotebookNode, dest: Path) -> None:
    """Render an executed notebook to HTML."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    dest.write_text(body, encoding="utf-8")


def timings_markdown(rows: list[dict], profile: str) -> str:
    """The per-notebook table for the README and the instructor guide."""
    total = sum(r["seconds"] for r in rows)
    lines = ["| notebook | wall time | peak memory |", "|---|---:|---:|"]
    lines += [
        f"| {r['notebook']} | {r['seconds'] / 60:.1f} min | {r['peak_mb']:.0f} MB |" for r in rows
    ]
    lines.append(f"| **total** | **{total / 60:.1f} min** | |")
    cpu = f"{os.cpu_count()}-core {platform.machine()} CPU, profile {profile}"
    lines.append(f"\nMeasured by `make course` on {date.today()} ({cpu}).")
    return "\n".join(lines)


def main() -> int:
    """Run the course and report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="notebook numbers, e.g. 02 04")
    parser.add_argument("--solutions", action="store_true", help="also run notebooks/solutions")
    parser.add_argument("--no-html", action="store_true")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell")
    parser.add_argument("--out", type=Path, help="write under this folder; publish no table")
    args = parser.parse_args()
    build = args.out or BUILD
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # The Makefile exports MPLBACKEND=Agg for the tests; the executed copies are for reading, so
    # their kernels use Jupyter's inline backend and keep the figures.
    os.environ.pop("MPLBACKEND", None)
    (build / "notebooks").mkdir(parents=True, exist_ok=True)
    (build / "html").mkdir(parents=True, exist_ok=True)
    rows = []
    for path in notebooks(args.only, args.solutions):
        print(f"running {path.relative_to(ROOT)} ...", flush=True)
        nb, seconds, peak = run_one(path, args.timeout)
        name = path.name if path.parent.name == "notebooks" else f"solutions/{path.name}"
        (build / "notebooks" / name).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, build / "notebooks" / name)  # solutions in their own folder
        if not args.no_html:
            write_html(nb, build / "html" / path.with_suffix(".html").name)
        rows.append({"notebook": name, "seconds": round(seconds, 1), "peak_mb": round(peak)})
        print(f"  {name}: {seconds:6.1f} s, peak {peak:.0f} MB", flush=True)
    total = sum(r["seconds"] for r in rows)
    print(f"total: {total:.1f} s ({total / 60:.1f} min) for {len(rows)} notebooks")
    (build / "course-times.json").write_text(json.dumps(rows, indent=2))
    if not (args.only or args.solutions or args.out):  # only a full run rewrites the tables
        table = timings_markdown(rows, notebook_profile().name)
        replace_block(ROOT / "README.md", "times", table)
        replace_block(ROOT / "docs" / "instructor-guide.md", "times", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
