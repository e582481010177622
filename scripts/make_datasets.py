"""Write the course's datasets into data/ (see data/README.md). Seeded: same script, same bytes.

    python scripts/make_datasets.py             # rewrites data/polite, bugfix, python_qa and dirty
    python scripts/make_datasets.py --out DIR   # writes them under DIR instead

The generators live in scripts/datagen/, one module per dataset, with their words and templates
in a .json file beside each. Held-out splits of `polite` and `bugfix` use their own words and
names (verbs, nouns, people, function and variable names) that never occur in the training split,
so a model only passes them if it learned the skill, not the training sentences. Every record is
checked as it is made: polite answers pass `polite_score`, bug fixes pass their tests while the
buggy input fails them, and no record is a near duplicate of an earlier one (in either split).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # ftcourse, and datagen (also when imported by path)

from datagen import bugfix, dirty, polite, python_qa  # noqa: E402
from datagen.bugfix import passes  # noqa: E402

from ftcourse.data import save_jsonl, validate  # noqa: E402

__all__ = ["main", "passes", "write_all"]  # tests/test_datasets.py checks bug fixes with `passes`
DATASETS = {"polite": polite.make, "bugfix": bugfix.make, "python_qa": python_qa.make}


def write_all(out: Path) -> dict[str, int]:
    """Generate every dataset and write it under `out`; return the record counts."""
    counts, made = {}, {}
    for name, make in DATASETS.items():
        made[name] = make()
        for split, records in made[name].items():
            validate(records, source=f"{name}/{split}")
            save_jsonl(records, out / name / f"{split}.jsonl")
            counts[f"{name}/{split}"] = len(records)
    records, manifest = dirty.make(made["polite"]["train"])
    save_jsonl(records, out / "dirty" / "polite_dirty.jsonl")
    (out / "dirty" / "manifest.json").write_bytes(dirty.manifest_json(manifest).encode())
    counts["dirty/polite_dirty"] = len(records)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "data")
    args = parser.parse_args(argv)
    for key, n in write_all(args.out).items():
        print(f"{key:<22} {n:>5} records")


if __name__ == "__main__":
    main()
