"""Write notebook 06's knowledge task: documents about standard-library functions, and questions on them.

    python scripts/make_stdlib_docs.py          # rewrites data/stdlib_docs/

Each document is one function: its signature as `inspect.signature` writes it, then the first
paragraph of its docstring. Each question asks for a function's parameters, answered by the text
between the signature's parentheses. Which functions qualify, and their signatures, depend on the
Python that runs this script, so the output is committed and notebooks never regenerate it.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "data" / "stdlib_docs"
# Pure-Python modules whose public functions have readable signatures.
MODULES = (
    "ast base64 binascii bisect calendar codecs colorsys compileall contextlib copy csv "
    "dataclasses difflib dis doctest email.utils filecmp fileinput fnmatch fractions functools "
    "getopt gettext glob gzip hashlib heapq hmac html inspect ipaddress json keyword linecache "
    "locale logging mimetypes ntpath operator os os.path pathlib pickle pkgutil platform plistlib "
    "posixpath pprint py_compile quopri random re secrets shlex shutil socket statistics string "
    "subprocess sysconfig tarfile tempfile textwrap threading timeit tokenize traceback types "
    "typing urllib.parse urllib.request uuid warnings webbrowser zipfile"
).split()
MAX_SIGNATURE = 40  # characters between the parentheses: short enough for a small model to copy
MAX_TEXT = 220  # characters of docstring kept
TEST_SHARE = 0.2  # functions held out: their questions are never trained on
QUESTION = "What are the parameters of {name}?"


def functions() -> list[tuple[str, str, str]]:
    """(qualified name, parameters, first docstring paragraph) of each qualifying function."""
    seen, rows = set(), []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name, fn in sorted(vars(module).items()):
            if name.startswith("_") or not inspect.isfunction(fn) or name in seen:
                continue  # one function per name, so a question never has two right answers
            if fn.__module__ != module.__name__ or not fn.__doc__:
                continue
            params = str(inspect.signature(fn))[1:-1]
            if not params or len(params) > MAX_SIGNATURE or "<" in params or "->" in params:
                continue
            text = " ".join(inspect.cleandoc(fn.__doc__).split("\n\n")[0].split())
            if len(text) > MAX_TEXT:
                text = text[:MAX_TEXT].rsplit(" ", 1)[0] + " ..."
            seen.add(name)
            rows.append((f"{module_name}.{name}", params, text))
    return rows


def held_out(name: str) -> bool:
    """Whether a function's question goes to the test split (a stable hash of its name)."""
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % 1000 < 1000 * TEST_SHARE


def main() -> None:
    """Write docs.jsonl (every function), train.jsonl and test.jsonl (questions, split by function)."""
    OUT.mkdir(parents=True, exist_ok=True)
    docs, splits = [], {"train": [], "test": []}
    for i, (name, params, text) in enumerate(functions()):
        doc_id = f"doc{i:03d}"
        docs.append({"id": doc_id, "title": name, "text": f"{name}({params})\n{text}"})
        record = {"question": QUESTION.format(name=name), "answer": params, "doc": doc_id}
        splits["test" if held_out(name) else "train"].append(record)
    for file, rows in [("docs", docs), ("train", splits["train"]), ("test", splits["test"])]:
        with open(OUT / f"{file}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    py = ".".join(map(str, sys.version_info[:3]))
    print(
        f"{len(docs)} documents, {len(splits['train'])} train / {len(splits['test'])} test (Python {py})"
    )


if __name__ == "__main__":
    main()
