"""Data augmentation for code tasks: the same function under made-up names.

A small model fine-tuned on `bugfix` learns its fixes partly by the names in the training split
("count_even", "weights"); held-out functions use names training never saw, and a model that tied
a fix to a name copies the bug unchanged. Renamed copies of each training record (the function,
its arguments and its variables, consistently, with made-up syllable names) take that shortcut
away: only the code's shape tells the fix. Notebook 04b and docs/benchmarks.md measure the effect.
"""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import random
import tokenize

from ftcourse.data import to_messages
from ftcourse.errors import CourseError

SYLLABLES = "ka lu mi ren tu sa vo ri den ba zu fel mar ti no qua shi gor el an pe dro".split()
RESERVED = frozenset(keyword.kwlist) | frozenset(dir(builtins))


def bound_names(code: str) -> list[str]:
    """The names a function defines: its own, its arguments' and its variables', in order."""
    names: list[str] = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = node.name
        elif isinstance(node, ast.arg):
            name = node.arg
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            name = node.id
        else:
            continue
        if name not in names and name not in RESERVED:
            names.append(name)
    return names


def rename(code: str, mapping: dict[str, str]) -> str:
    """`code` with names replaced as Python reads them: not in strings, attributes or `key=` args."""
    tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    out, depth, in_def = [], 0, False
    for i, tok in enumerate(tokens):
        if tok.type == tokenize.NAME and tok.string == "def":
            in_def = True
        elif tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        elif tok.type == tokenize.OP and tok.string == ":" and depth == 0:
            in_def = False
        after = tokens[i + 1].string if i + 1 < len(tokens) else ""
        before = tokens[i - 1].string if i else ""
        keyword_arg = depth > 0 and after == "=" and not in_def
        if (
            tok.type == tokenize.NAME
            and tok.string in mapping
            and before != "."
            and not keyword_arg
        ):
            tok = tok._replace(string=mapping[tok.string])
        out.append(tok)
    return tokenize.untokenize(out)


def made_up_name(name: str, rng: random.Random) -> str:
    """A made-up name with the same number of `_`-separated parts (e.g. "max_value" -> "kalo_ri")."""
    parts = name.split("_")
    return "_".join(
        "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((1, 2, 2, 3)))) for _ in parts
    )


def rename_record(record: dict, rng: random.Random) -> dict:
    """A bugfix-style record (input, output, entry_point, tests) with every bound name made up.

    A `messages` column (as `ftcourse.tasks.load_task` adds) is rebuilt from the renamed fields.
    """
    names = bound_names(record["output"])
    mapping: dict[str, str] = {}
    for name in names:
        new = made_up_name(name, rng)
        while new in mapping.values() or new in RESERVED or new in names:
            new = made_up_name(name, rng)
        mapping[name] = new
    entry = record["entry_point"]
    if entry not in mapping:
        raise CourseError(f"entry_point {entry!r} is not a function defined in the record's output")
    renamed = {
        **record,
        "input": rename(record["input"], mapping),
        "output": rename(record["output"], mapping),
        "entry_point": mapping[entry],
        "tests": [rename(test, {entry: mapping[entry]}) for test in record["tests"]],
    }
    if "messages" in record:  # a record from load_task: its chat turns are made again
        renamed["messages"] = to_messages({k: v for k, v in renamed.items() if k != "messages"})
    return renamed


def with_renamed_copies(records: list[dict], copies: int, seed: int = 0) -> list[dict]:
    """The records plus `copies` renamed versions of each, shuffled with `seed`."""
    rng = random.Random(seed)
    out = list(records)
    for index, record in enumerate(records * copies):
        try:
            out.append(rename_record(record, rng))
        except (KeyError, SyntaxError, tokenize.TokenError, CourseError) as exc:
            reason = f"it has no {exc} field" if isinstance(exc, KeyError) else str(exc)
            raise CourseError(
                f"record {index % len(records)}: cannot rename its names ({reason}). Renamed copies "
                "need bugfix-style records: a Python function in `input` and `output`, its name "
                "in `entry_point`, and `tests` that call it."
            ) from exc
    rng.shuffle(out)
    return out
