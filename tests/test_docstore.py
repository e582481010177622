"""ftcourse.docstore: the committed knowledge task, its exact scoring, BM25 search and recall@k."""

from __future__ import annotations

import pytest

from ftcourse import CourseError
from ftcourse.docstore import (
    STDLIB_PARAMS,
    DocStore,
    load_docs,
    load_questions,
    normalized,
    open_book,
    params_form,
    recall_at_k,
    score_params,
)

DOCS = [
    {
        "id": "a",
        "title": "textwrap.shorten",
        "text": "textwrap.shorten(text, width, **kwargs)\n"
        "Collapse and truncate the given text to fit in the given width.",
    },
    {
        "id": "b",
        "title": "shlex.split",
        "text": "shlex.split(s, comments=False, posix=True)\n"
        "Split the string s using shell-like syntax.",
    },
    {
        "id": "c",
        "title": "bisect.insort",
        "text": "bisect.insort(a, x, lo=0, hi=None, *, key=None)\n"
        "Insert item x in list a, and keep it sorted.",
    },
]


def question(name: str, answer: str, doc: str) -> dict:
    return {"question": f"What are the parameters of {name}?", "answer": answer, "doc": doc}


def test_committed_data_is_consistent():
    docs, train, test = load_docs(), load_questions("train"), load_questions("test")
    ids = {d["id"] for d in docs}
    assert len(ids) == len(docs) == len(train) + len(test)
    assert {r["doc"] for r in train} | {r["doc"] for r in test} == ids  # one question per document
    assert not {r["doc"] for r in train} & {r["doc"] for r in test}  # held-out functions are new
    by_id = {d["id"]: d for d in docs}
    for r in train + test:  # every answer can be copied from its own document's first line
        assert (
            by_id[r["doc"]]["text"].split("\n")[0] == f"{by_id[r['doc']]['title']}({r['answer']})"
        )
        assert r["messages"][-1] == {"role": "assistant", "content": r["answer"]}
        assert params_form(r["answer"]), r


def test_scoring_is_exact_up_to_spaces_and_parentheses():
    record = question("bisect.insort", "a, x, lo=0, hi=None, *, key=None", "c")
    assert score_params(record, "a, x, lo=0, hi=None, *, key=None")
    assert score_params(record, "(a,x, lo=0, hi=None, *, key=None).")
    assert not score_params(record, "a, x, lo=0, hi=None")
    assert not score_params(record, "a, x, lo=0, hi=None, key=None")
    assert normalized("( s )") == "s" and STDLIB_PARAMS.score is score_params


def test_form_rule_accepts_parameter_lists_only():
    assert params_form("s, comments=False, posix=True") and params_form("*args, **kwargs")
    assert params_form("a, /, b, *, c=1")
    assert (
        not params_form("def f(x):")
        and not params_form("What are the parameters of")
        and not params_form("")
    )


def test_search_ranks_the_matching_document_first():
    store = DocStore(DOCS)
    index, score = store.search("What are the parameters of shlex.split?", k=3)[0]
    best = store.docs[index]
    assert best["id"] == "b" and score > 0
    assert [d["id"] for d in store.top(question("textwrap.shorten", "", "a"), 2)][0] == "a"


def test_open_book_puts_the_found_document_before_the_question():
    store = DocStore(DOCS)
    record = question("bisect.insort", "a, x, lo=0, hi=None, *, key=None", "c")
    (turn,) = open_book(record, store)
    assert (
        turn["role"] == "user" and turn["content"] == f"{DOCS[2]['text']}\n\n{record['question']}"
    )
    assert open_book(record, store, k=2)[0]["content"].count("(") == 2


def test_recall_at_k_counts_the_right_document_among_k():
    store = DocStore(DOCS)
    records = [
        question("shlex.split", "", "b"),
        question("bisect.insort", "", "c"),
        {"question": "Collapse and truncate the given text", "answer": "", "doc": "c"},  # finds a
    ]
    assert recall_at_k(store, records, 1) == pytest.approx(2 / 3)
    assert recall_at_k(store, records, 3) == 1.0
    with pytest.raises(CourseError):
        recall_at_k(store, [], 1)
    with pytest.raises(CourseError):
        DocStore([])
