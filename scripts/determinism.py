"""Run the core notebooks twice, each in a fresh kernel and output folder, and compare their metrics.

The metrics are what the notebooks print about results: every line with a percentage, a loss,
an accuracy or a perplexity, with times and rates masked (they are meant to vary). Any other
difference between the two runs is printed and makes the exit code 1.

    python scripts/determinism.py              # the core notebooks, about 11 minutes on 2 cores
    python scripts/determinism.py --only 04    # one notebook
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from run_course import is_deep_dive, notebooks, run_one  # noqa: E402

from ftcourse.paths import BUILD_DIR  # noqa: E402

METRIC = re.compile(r"%|loss|accura|perplex|score", re.IGNORECASE)
# times, rates and sizes of this run: masked, since they vary from run to run by design
VARYING = re.compile(
    r"\d[\d,]*(\.\d+)?\s*(s|sec|seconds|min|ms|steps/s|it/s|tokens/s|MB|GB|MiB|GiB)\b"
    r"|\d+(\.\d+)?x (faster|slower)"
)
TIME_COLUMN = re.compile(r"^(seconds|time|wall( time| s)?|s|min|steps/s|tokens/s)$", re.IGNORECASE)


def metric_lines(nb) -> list[str]:
    """The printed lines of a run's code cells that state a result, times masked."""
    lines = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") != "stream" or output.get("name") != "stdout":
                continue
            timed: set[int] = set()  # the columns of the last Markdown table headed as times
            for line in output["text"].splitlines():
                line = line.strip()
                if line.startswith("|"):
                    cells = [c.strip() for c in line.strip("|").split("|")]
                    if any(TIME_COLUMN.search(c) for c in cells):
                        timed = {i for i, c in enumerate(cells) if TIME_COLUMN.search(c)}
                    line = (
                        "| "
                        + " | ".join(
                            "<varies>" if i in timed and not set(c) <= set("-:") else c
                            for i, c in enumerate(cells)
                        )
                        + " |"
                    )
                if METRIC.search(line):
                    lines.append(f"[cell {index}] {VARYING.sub('<varies>', line)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run twice, compare, report; 0 when every metric line agrees."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="notebook numbers, e.g. 02 04")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    paths = [p for p in notebooks(args.only, solutions=False) if not is_deep_dive(p.name)]
    runs: list[dict[str, list[str]]] = []
    for attempt in (1, 2):
        os.environ["FTCOURSE_OUTPUT_DIR"] = str(BUILD_DIR / "determinism" / f"run{attempt}")
        runs.append({})
        for path in paths:
            print(f"run {attempt}: {path.name} ...", flush=True)
            nb, seconds, _ = run_one(path, args.timeout)
            runs[-1][path.name] = metric_lines(nb)
            print(f"  {len(runs[-1][path.name])} metric lines, {seconds:.0f} s", flush=True)
    differences = {}
    for name in runs[0]:
        diff = list(
            difflib.unified_diff(runs[0][name], runs[1][name], "run 1", "run 2", lineterm="")
        )
        if diff:
            differences[name] = diff
            print(f"\n{name}: the two runs differ\n" + "\n".join(diff))
    compared = sum(len(lines) for lines in runs[0].values())
    report = {"notebooks": list(runs[0]), "metric_lines": compared, "differences": differences}
    out = BUILD_DIR / "determinism.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    verdict = "differ" if differences else "agree"
    print(f"\n{compared} metric lines in {len(runs[0])} notebooks: the two runs {verdict} ({out})")
    return 1 if differences else 0


if __name__ == "__main__":
    raise SystemExit(main())
