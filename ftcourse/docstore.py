"""A document store and the knowledge task it serves: questions whose answers live in documents.

The store is the `stdlib_docs` data (`scripts/make_stdlib_docs.py`): one document per Python
standard-library function (its signature, then the first paragraph of its docstring), and questions
"What are the parameters of textwrap.shorten?" whose answer is the text between the signature's
parentheses. Held-out questions are about functions no training question asks about; their
documents are in the store all the same, as a product manual holds pages nobody asked about yet.

    store = DocStore(load_docs())            # BM25 over every document
    store.search("parameters of textwrap.shorten", k=3)
    open_book(record, store)                 # the question with the top document in front of it
    recall_at_k(store, records, k=1)         # how often the right document is found
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ftcourse.errors import CourseError
from ftcourse.paths import DATA_DIR
from ftcourse.prompting import Retriever
from ftcourse.tasks import Task

FOLDER = "stdlib_docs"


def normalized(params: str) -> str:
    """A parameter list without spaces, surrounding parentheses or a final full stop."""
    text = "".join(params.split()).rstrip(".")
    return text[1:-1] if text.startswith("(") and text.endswith(")") else text


def score_params(record: dict, answer: str) -> bool:
    """Right when the answer is the function's parameter list, as its signature writes it."""
    return normalized(answer) == normalized(record["answer"])


def params_form(answer: str) -> bool:
    """The answer looks like a parameter list: names, defaults, `*` and `/`, separated by commas."""
    parts = [p.strip() for p in answer.strip().strip("().").split(",")]
    return bool(answer.strip()) and all(re.fullmatch(r"\*{0,2}\w+(=.+)?|[*/]", p) for p in parts)


# Not in `ftcourse.tasks.TASKS`: it trains in notebook 06 only, from its own records.
STDLIB_PARAMS = Task(
    "stdlib_params", "name a standard-library function's parameters", score_params, params_form, 24
)


def _read(name: str, folder: str | Path | None) -> list[dict]:
    path = Path(folder or DATA_DIR) / FOLDER / f"{name}.jsonl"
    if not path.is_file():
        raise CourseError(f"{path} does not exist: run `python scripts/make_stdlib_docs.py`.")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def load_docs(folder: str | Path | None = None) -> list[dict]:
    """Every document: {"id", "title" (the function's qualified name), "text"}."""
    return _read("docs", folder)


def load_questions(split: str, folder: str | Path | None = None) -> list[dict]:
    """A split's questions ("train" or "test"), each with closed-book `messages` (question, answer)."""
    return [{**r, "messages": closed_book(r) + [answer_turn(r)]} for r in _read(split, folder)]


def closed_book(record: dict) -> list[dict]:
    """The question alone: what a model must answer from its weights."""
    return [{"role": "user", "content": record["question"]}]


def answer_turn(record: dict) -> dict:
    """The reference answer as the assistant's turn."""
    return {"role": "assistant", "content": record["answer"]}


class DocStore(Retriever):
    """BM25 search over documents by their title and text; the one-off cost is the index."""

    def __init__(self, docs: list[dict]):
        if not docs:
            raise CourseError("A document store needs at least one document.")
        super().__init__(docs, text=lambda d: f"{d['title']} {d['text']}")

    @property
    def docs(self) -> list[dict]:
        """The stored documents, in the store's order (`search` returns indexes into it)."""
        return self.examples

    def top(self, record: dict, k: int = 1) -> list[dict]:
        """The `k` documents that best match a record's question."""
        return [self.docs[i] for i, _ in self.search(record["question"], k)]


def open_book(record: dict, store: DocStore, k: int = 1) -> list[dict]:
    """The question after the `k` best documents the store finds for it, in one user turn."""
    docs = "\n\n".join(d["text"] for d in store.top(record, k))
    return [{"role": "user", "content": f"{docs}\n\n{record['question']}"}]


def recall_at_k(store: DocStore, records: list[dict], k: int) -> float:
    """Share of records whose own document (`record["doc"]`) is among the `k` found for its question."""
    if not records:
        raise CourseError("recall_at_k needs at least one record.")
    return sum(
        record["doc"] in {d["id"] for d in store.top(record, k)} for record in records
    ) / len(records)
