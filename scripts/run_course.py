"""Run every notebook in order, offline, and record each one's wall time and peak memory.

Usage: python scripts/run_course.py [--only 03 05] [--solutions] [--no-html] [--out DIR]
       python scripts/run_course.py --publish

A run writes only under build/ (or --out DIR): executed copies to notebooks/, HTML to html/, and
the times and peaks to course-times.json and course-times.md; the checkout stays unmodified.
`--publish` (`make publish-times`) copies the last full run's table into README.md and
docs/instructor-guide.md, between their `times` markers: a separate, deliberate step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from ftcourse.docblocks import markdown_table, replace_block
from ftcourse.ownmodel import notebook_profile
from ftcourse.paths import BUILD_DIR, NOTEBOOK_GLOB

ROOT = Path(__file__).resolve().parents[1]
BUILD = BUILD_DIR
MARK = "__FTCOURSE_PEAK_RSS__"
PEAK_CELL = f"import resource\nprint('{MARK}', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def notebooks(only: list[str], solutions: bool) -> list[Path]:
    """The course notebooks in order, optionally filtered by number prefix."""
    paths = sorted((ROOT / "notebooks").glob(NOTEBOOK_GLOB))
    if solutions:
        paths += sorted((ROOT / "notebooks" / "solutions").glob(NOTEBOOK_GLOB))
    return [p for p in paths if not only or p.name.split("_")[0] in only]


def is_deep_dive(name: str) -> bool:
    """A deep-dive notebook is numbered with a letter (04b): optional, timed apart from the core."""
    return re.match(r"(solutions/)?\d\d[a-z]_", name) is not None


def run_one(path: Path, timeout: int) -> tuple[nbformat.NotebookNode, float, float]:
    """Execute one notebook in a fresh kernel; return it with wall seconds and peak RSS in MB."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
    # IPC transport: the kernel talks to this process over local Unix sockets (in a temporary
    # folder), not TCP ports, so ipykernel has no reason to warn that its traffic could be read.
    with tempfile.TemporaryDirectory() as sockets:
        kernel = KernelManager(kernel_name="python3", transport="ipc", ip=f"{sockets}/kernel")
        client = NotebookClient(
            nb, km=kernel, timeout=timeout, resources={"metadata": {"path": str(path.parent)}}
        )
        start = time.perf_counter()
        try:
            client.execute()
            seconds = time.perf_counter() - start
        finally:
            if kernel.has_kernel:
                kernel.shutdown_kernel(now=True)
    out = "".join(o.get("text", "") for o in nb.cells.pop().get("outputs", []))
    kib = int(re.search(rf"{MARK} (\d+)", out).group(1))
    return nb, seconds, kib / 1024


def write_html(nb: nbformat.NotebookNode, dest: Path) -> None:
    """Render an executed notebook to HTML."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    dest.write_text(body, encoding="utf-8")


def timings_markdown(times: dict) -> str:
    """The per-notebook table of a run (course-times.json), for the README and the instructor guide."""
    rows = times["notebooks"]
    cells = [
        [r["notebook"], f"{r['seconds'] / 60:.1f} min", f"{r['peak_mb']:.0f} MB"] for r in rows
    ]
    core = sum(r["seconds"] for r in rows if not is_deep_dive(r["notebook"]))
    deep = sum(r["seconds"] for r in rows if is_deep_dive(r["notebook"]))
    cells.append(["**core notebooks, total**", f"**{core / 60:.1f} min**", ""])
    if deep:
        cells.append(["**deep dives, total**", f"**{deep / 60:.1f} min**", ""])
        cells.append(["**whole course, total**", f"**{(core + deep) / 60:.1f} min**", ""])
    table = markdown_table(["notebook", "wall time", "peak memory"], cells)
    where = f"{times['machine']}, profile {times['profile']}"
    return f"{table}\n\nMeasured by `make course` on {times['date']} ({where})."


def publish(build: Path = BUILD) -> int:
    """Copy the last full run's table into README.md and the instructor guide."""
    times = json.loads((build / "course-times.json").read_text())
    if not times.get("full"):
        print("ERROR: the last run was not a full course run; run `make course` first.")
        return 1
    table = timings_markdown(times)
    for page in (ROOT / "README.md", ROOT / "docs" / "instructor-guide.md"):
        replace_block(page, "times", table)
        print(f"updated {page.relative_to(ROOT)}")
    return 0


def main() -> int:
    """Run the course and report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="notebook numbers, e.g. 02 04b")
    parser.add_argument("--solutions", action="store_true", help="also run notebooks/solutions")
    parser.add_argument("--no-html", action="store_true")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell")
    parser.add_argument("--out", type=Path, help="write under this folder instead of build/")
    parser.add_argument("--publish", action="store_true", help="copy the last full run's table")
    args = parser.parse_args()
    if args.publish:
        return publish()
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
    times = {
        "date": str(date.today()),
        "machine": f"{os.cpu_count()}-core {platform.machine()} CPU",
        "profile": notebook_profile().name,
        "full": not (args.only or args.solutions),
        "notebooks": rows,
    }
    (build / "course-times.json").write_text(json.dumps(times, indent=2) + "\n")
    (build / "course-times.md").write_text(timings_markdown(times) + "\n")
    print(f"times in {build / 'course-times.md'}; `make publish-times` puts them in the README")
    return 0


if __name__ == "__main__":
    sys.exit(main())
