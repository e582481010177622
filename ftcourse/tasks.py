"""The course's tasks: one registry entry each, with its data, its scoring rule and its answer budget.

A task is what a fine-tune is trained and judged on:

    polite      rewrite a curt request politely: Alpaca records, scored by `polite_score`
    bugfix      return a small function with its bug fixed: Alpaca records, scored by running the
                record's unit tests on the answer in the sandbox
    python_qa   answer questions about Python in a multi-turn chat: ShareGPT records, not scored

Each scored task also has a *form* rule (the style half of its score: polite in tone; a Python
function) and a budget of new tokens an answer may take. A new task is one `Task` entry here and
one folder `data/<name>/` with train.jsonl and test.jsonl.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ftcourse.data import load_records, split_records, validate, with_messages, words
from ftcourse.errors import CourseError
from ftcourse.paths import DATA_DIR

# ---------------------------------------------------------------- polite: the rule

POLITE_MARKERS = (
    "please",
    "kindly",
    "could you",
    "would you",
    "would you mind",
    "i would appreciate",
    "i'd appreciate",
    "if you could",
)
CURT_WORDS = ("now", "asap", "hurry", "immediately", "whatever")
# Words a polite rewrite may drop: function words, curt fillers and the one frame word ("team")
# both splits of the polite data share.
STOPWORDS = frozenset(
    "the and you your our this that these those for from with about before after into onto "
    "just now asap right away immediately quickly hurry need want must please can could would "
    "will then also all any some not don team next".split()
)


def has_polite_marker(text: str) -> bool:
    """True when the text contains a politeness marker (please, could you, kindly...)."""
    low = text.lower()
    return any(re.search(rf"\b{re.escape(m)}\b", low) for m in POLITE_MARKERS)


def curt_words(text: str) -> list[str]:
    """The curt words (now, asap, hurry...) in a text."""
    return [w for w in words(text) if w in CURT_WORDS] + (["!!"] if "!!" in text else [])


def content_words(text: str) -> set[str]:
    """Words of three letters or more that carry the request's meaning (not in STOPWORDS)."""
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 3 and w not in STOPWORDS}


def polite_score(request: str, response: str) -> bool:
    """The polite task's rule: a politeness marker, no curt word, and every content word kept."""
    kept = content_words(request) <= set(re.findall(r"[a-z]+", response.lower()))
    return has_polite_marker(response) and not curt_words(response) and kept


def polite_form(answer: str) -> bool:
    """The tone half of the polite rule: a politeness marker and no curt word (content not checked)."""
    return has_polite_marker(answer) and not curt_words(answer)


def score_polite(record: dict, answer: str) -> bool:
    """A rewrite counts when it is polite and keeps the request's content words (see data/README.md)."""
    return polite_score(record["input"], answer)


# ---------------------------------------------------------------- bugfix: the rule


def extract_code(answer: str) -> str:
    """The Python code in an answer: the first fenced block if there is one, else the whole text."""
    fenced = re.search(r"```(?:python)?\n(.*?)(?:```|$)", answer, re.S)
    return fenced.group(1) if fenced else answer


def bugfix_form(answer: str) -> bool:
    """The form half of the bugfix rule: the answer is a Python function (tests not run)."""
    return extract_code(answer).lstrip().startswith("def ")


def score_bugfix(record: dict, answer: str) -> bool:
    """A fix counts when the answered function passes all of the record's unit tests (sandboxed)."""
    from ftcourse.sandbox import run_tests

    return run_tests(extract_code(answer), list(record["tests"]), timeout=5.0).passed


# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Task:
    """One course task: its data folder's name, its rules, and how long an answer may be."""

    name: str
    summary: str
    score: Callable[[dict, str], bool] | None = None  # (held-out record, answer) -> right?
    in_form: Callable[[str], bool] | None = None  # answer -> in the task's form?
    max_new_tokens: int = 128  # generation budget: a margin over the longest reference answer

    @property
    def scored(self) -> bool:
        """Whether held-out answers can be scored by a rule (else: loss and perplexity only)."""
        return self.score is not None


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        # answers are short (polite <= 40 tokens, a fixed function <= 60): a margin, not a novel
        Task("polite", "rewrite a curt request politely", score_polite, polite_form, 64),
        Task("bugfix", "return the function with its bug fixed", score_bugfix, bugfix_form, 96),
        Task("python_qa", "answer questions about Python, over several turns"),
    ]
}
SCORED = tuple(name for name, t in TASKS.items() if t.scored)


def get_task(name: str) -> Task:
    """A task by name, with an error that lists the tasks."""
    if name not in TASKS:
        raise CourseError(f"Unknown task {name!r}. Tasks: {', '.join(TASKS)}.")
    return TASKS[name]


def scored_task(name: str) -> Task:
    """A task that has a scoring rule, with an error that names the ones that do."""
    task = get_task(name)
    if not task.scored:
        raise CourseError(
            f"Task {name!r} has no scoring rule; scored tasks: {', '.join(SCORED)}. "
            "Compare its models by validation loss instead."
        )
    return task


def load_task(name: str, split: str, folder: str | Path | None = None):
    """A course task as a `datasets.Dataset` with a `messages` column (plus the original fields).

    `folder` defaults to the committed `data/`; pass `ftcourse.paths.output_dir("data")` to read the
    files notebook 02 saves.
    """
    from datasets import Dataset

    get_task(name)  # an unknown name fails here, with the list of tasks
    path = Path(folder or DATA_DIR) / name / f"{split}.jsonl"
    if not path.is_file():
        have = sorted(p.stem for p in path.parent.glob("*.jsonl"))
        raise CourseError(
            f"{path} does not exist. Splits there: {have or 'none'}. "
            "(Files under outputs/ are written by notebook 02.)"
        )
    records = load_records(path)
    validate(records, source=str(path))
    return Dataset.from_list(with_messages(records))


def training_splits(name: str, folder: str | Path | None = None):
    """A task's (train, validation) Datasets: notebook 02's saved files in `folder` when they exist,
    else the committed training split cut the same way (90/10, seed 0). The test split stays apart.
    """
    if folder and (Path(folder) / name / "validation.jsonl").is_file():
        return load_task(name, "train", folder), load_task(name, "validation", folder)
    full = load_task(name, "train")
    train_idx, validation_idx = split_records(list(range(len(full))), 0.1, seed=0)
    return full.select(train_idx), full.select(validation_idx)
