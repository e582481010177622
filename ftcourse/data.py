"""Dataset records: detect the format, validate, convert, split and save (files: ftcourse.datafiles).

Four record formats are understood:
  alpaca             {"instruction", "input", "output"}            single turn
  sharegpt           {"conversations": [{"from", "value"}, ...]}   roles human / gpt / system
  messages           {"messages": [{"role", "content"}, ...]}      TRL's conversational format
  prompt_completion  {"prompt": [...], "completion": [...]}        TRL's prompt-completion format

Files are parsed with the json module rather than `datasets.load_dataset("json")`: `datasets` fills a
missing field with None and merges differing record shapes without a word, so a broken file loads
"fine" and fails later, mid-training. Checking quality is `ftcourse.quality`'s job, and loading a
course task as a `datasets.Dataset` is `ftcourse.tasks.load_task`'s.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ftcourse.datafiles import FORMAT_KEYS, join_problems
from ftcourse.datafiles import load_records as load_records  # read there, checked here
from ftcourse.errors import CourseError

SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}
ROLES = ("system", "user", "assistant")
MAX_CHARS = 20_000  # per text field; ~5,000 tokens, beyond every profile's max_length (2,048)


def save_jsonl(records: list[dict], path: str | Path) -> Path:
    """Write records one per line (UTF-8, keys in the order given), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in records]
    path.write_bytes("".join(lines).encode("utf-8"))  # bytes: "\n" on every OS, for reproducibility
    return path


# ---------------------------------------------------------------- formats and validation


def record_format(record) -> str | None:
    """The format one record is in, judged by its keys; None when no format matches."""
    if not isinstance(record, dict):
        return None
    if "conversations" in record:
        return "sharegpt"
    if "messages" in record:
        return "messages"
    if "prompt" in record or "completion" in record:
        return "prompt_completion"
    if set(FORMAT_KEYS["alpaca"]) & record.keys():
        return "alpaca"
    return None


def detect_format(records: list) -> str:
    """The format most records are in (the records in other formats are validation problems)."""
    counts = Counter(f for f in map(record_format, records) if f)
    if not counts:
        raise CourseError(
            "No record is in a known format. Expected keys instruction/input/output (Alpaca), "
            "conversations (ShareGPT), messages, or prompt/completion."
        )
    return counts.most_common(1)[0][0]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one record."""

    index: int
    field: str
    message: str

    def text(self, source: str) -> str:
        """The problem as one line naming the file, record and field."""
        field = f", field {self.field!r}" if self.field else ""
        return f"{source}: record {self.index}{field}: {self.message}"


def find_problems(records: list, fmt: str | None = None) -> list[Problem]:
    """Every problem in every record, checked against `fmt` (default: the majority format)."""
    fmt = fmt or detect_format(records)
    share = sum(record_format(r) == fmt for r in records)
    problems = []
    for i, record in enumerate(records):
        own = record_format(record)
        if own is not None and own != fmt:
            key = next(k for k in (*FORMAT_KEYS[own], *record) if k in record)
            problems.append(
                Problem(
                    i,
                    key,
                    f"this record is {own}, but the file is {fmt} "
                    f"({share} of {len(records)} records). Convert it with "
                    "ftcourse.data.to_messages, or keep each format in its own file.",
                )
            )
        else:
            problems += [Problem(i, f, m) for f, m in _record_problems(record, fmt)]
    return problems


def validate(records: list, source: str = "records", fmt: str | None = None) -> str:
    """Check every record; raise one CourseError listing all problems, else return the format."""
    if not isinstance(records, list):
        raise CourseError(f"{source}: expected a list of records, got {type(records).__name__}.")
    if not records:
        raise CourseError(f"{source}: there are no records.")
    try:
        fmt = fmt or detect_format(records)
    except CourseError as exc:
        raise CourseError(f"{source}: {exc}") from None
    problems = find_problems(records, fmt)
    if problems:
        raise CourseError(join_problems([p.text(source) for p in problems]))
    return fmt


def _record_problems(record, fmt: str) -> list[tuple[str, str]]:
    """(field, message) pairs for one record in format `fmt`."""
    if not isinstance(record, dict):
        return [
            (
                "",
                f"is a {type(record).__name__}, not an object {{...}}. Each record must be a "
                "JSON object with named fields.",
            )
        ]
    if fmt == "alpaca":
        problems = _text_field(record, "instruction") + _text_field(record, "output")
        if "input" in record:  # optional, and may be empty
            problems += _text_field(record, "input", allow_empty=True)
        return problems
    if fmt == "prompt_completion":
        return _prompt_completion_problems(record)
    key, role_key, text_key = (
        ("conversations", "from", "value") if fmt == "sharegpt" else ("messages", "role", "content")
    )
    return _turn_problems(record.get(key), key, role_key, text_key)


def _text_field(record: dict, field: str, allow_empty: bool = False) -> list[tuple[str, str]]:
    if field not in record:
        return [
            (field, f"is missing (the record has {sorted(record)}). Add it, or drop the record.")
        ]
    return _text_problems(record[field], field, allow_empty)


def _text_problems(value, field: str, allow_empty: bool = False) -> list[tuple[str, str]]:
    if not isinstance(value, str):
        return [
            (
                field,
                f"is a {type(value).__name__} ({shorten(value)}), not a string. "
                "Make it text, or drop the record.",
            )
        ]
    if not allow_empty and not value.strip():
        return [(field, "is empty. Write the text, or drop the record.")]
    if len(value) > MAX_CHARS:
        return [
            (
                field,
                f"has {len(value):,} characters (limit {MAX_CHARS:,}); no profile's "
                "max_length holds it, so training would cut it off. Shorten it, or drop the record.",
            )
        ]
    return []


def shorten(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _turn_problems(turns, key: str, role_key: str, text_key: str) -> list[tuple[str, str]]:
    """A conversation: known roles, text in every turn, user and assistant alternating."""
    if not isinstance(turns, list) or not turns:
        return [(key, "must be a non-empty list of turns.")]
    names = SHAREGPT_ROLES if key == "conversations" else {r: r for r in ROLES}
    problems, roles = [], []
    for t, turn in enumerate(turns):
        field = f"{key}[{t}]"
        if not isinstance(turn, dict):
            problems.append((field, f"is a {type(turn).__name__}, not an object."))
            continue
        role = turn.get(role_key)
        if role not in names:
            problems.append((f"{field}.{role_key}", _role_hint(role, turn, key, sorted(names))))
        problems += _text_problems(turn.get(text_key), f"{field}.{text_key}")
        roles.append(names.get(role))
    return problems or _order_problems(roles, key, role_key, names)


def _role_hint(role, turn: dict, key: str, valid: list[str]) -> str:
    hint = f"role {role!r} is not one of {valid}."
    other = ("role", "content") if key == "conversations" else ("from", "value")
    if other[0] in turn:
        fmt = "messages (role/content)" if key == "conversations" else "ShareGPT (from/value)"
        hint += f" This turn uses {fmt} keys: don't mix the two formats; convert with to_messages."
    elif role in SHAREGPT_ROLES and key != "conversations":
        hint += (
            f" {role!r} is a ShareGPT role: map it with to_messages (human->user, gpt->assistant)."
        )
    return hint


def _order_problems(
    roles: list[str], key: str, role_key: str, names: dict
) -> list[tuple[str, str]]:
    """System first (optional), then user/assistant alternating, ending with the assistant."""
    label = {v: k for k, v in names.items()}  # show the file's own role names
    start = 1 if roles[0] == "system" else 0
    for t, role in enumerate(roles[start:], start):
        want = "user" if (t - start) % 2 == 0 else "assistant"
        if role != want:
            why = (
                f"two {label[role]!r} turns in a row"
                if roles[t - 1] == role
                else f"expected a {label[want]!r} turn here, got {label[role]!r}"
            )
            return [
                (
                    f"{key}[{t}].{role_key}",
                    f"{why}. Turns must alternate {label['user']!r}/{label['assistant']!r}, "
                    "starting with the user: merge or remove turns.",
                )
            ]
    if len(roles) == start:
        return [(key, "holds no user turn. Add a user turn and an assistant answer.")]
    if roles[-1] != "assistant":
        return [
            (
                f"{key}[{len(roles) - 1}].{role_key}",
                f"the conversation ends with a {label[roles[-1]]!r} turn; it must end with the "
                f"{label['assistant']!r} answer the model learns. Drop the last turn or answer it.",
            )
        ]
    return []


def _prompt_completion_problems(record: dict) -> list[tuple[str, str]]:
    """Both fields strings, or both lists of messages: the prompt ends with the user, then answers."""
    problems = []
    for field in ("prompt", "completion"):
        value = record.get(field)
        if field not in record:
            problems.append((field, "is missing. Prompt-completion records need both fields."))
        elif isinstance(value, list) and value:
            problems += _message_list_problems(value, field)
        else:
            problems += _text_problems(value, field)
    if problems or not isinstance(record["prompt"], list):
        return problems
    if record["prompt"][-1]["role"] != "user":
        problems.append(
            (
                f"prompt[{len(record['prompt']) - 1}].role",
                "the prompt must end with a user turn, so the completion answers it.",
            )
        )
    if isinstance(record["completion"], list):
        problems += [
            (f"completion[{t}].role", "completion turns must be 'assistant' turns.")
            for t, m in enumerate(record["completion"])
            if m["role"] != "assistant"
        ]
    return problems


def _message_list_problems(turns: list, key: str) -> list[tuple[str, str]]:
    """Each turn an object with a known role and some text (no ordering rules)."""
    problems = []
    for t, turn in enumerate(turns):
        if not isinstance(turn, dict):
            problems.append((f"{key}[{t}]", f"is a {type(turn).__name__}, not an object."))
            continue
        if turn.get("role") not in ROLES:
            problems.append(
                (f"{key}[{t}].role", _role_hint(turn.get("role"), turn, key, list(ROLES)))
            )
        problems += _text_problems(turn.get("content"), f"{key}[{t}].content")
    return problems


# ---------------------------------------------------------------- conversion


def to_messages(record: dict | list) -> list:
    """One record (or a list of them) as TRL's conversational messages: [{"role", "content"}]."""
    if isinstance(record, list):  # each record in its own format: this is how mixed files get fixed
        problems = [
            p.text("to_messages") for i, r in enumerate(record) for p in _own_problems(r, i)
        ]
        if problems:
            raise CourseError(join_problems(problems))
        return [to_messages(r) for r in record]
    problems = _own_problems(record, 0)
    if problems:
        raise CourseError(join_problems([p.text("to_messages") for p in problems]))
    fmt = record_format(record)
    if fmt == "alpaca":
        prompt = record["instruction"]
        if record.get("input", "").strip():
            prompt += "\n\n" + record["input"]
        return [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": record["output"]},
        ]
    if fmt == "sharegpt":
        return [
            {"role": SHAREGPT_ROLES[t["from"]], "content": t["value"]}
            for t in record["conversations"]
        ]
    if fmt == "messages":
        return [{"role": m["role"], "content": m["content"]} for m in record["messages"]]
    as_turns = [_as_turns(record["prompt"], "user"), _as_turns(record["completion"], "assistant")]
    return as_turns[0] + as_turns[1]


def with_messages(records: list[dict]) -> list[dict]:
    """Valid records with TRL's `messages` added, their other fields kept (ShareGPT's turns replaced).

    The converted turns replace `conversations`: TRL would rename that column to `messages` over
    ours, keeping the ShareGPT roles human/gpt, which no chat template trains on.
    """
    rows = [{**r, "messages": to_messages(r)} for r in records]
    return [{k: v for k, v in r.items() if k != "conversations"} for r in rows]


def _own_problems(record, index: int) -> list[Problem]:
    fmt = record_format(record)
    if fmt is None:
        what = (
            f"keys {sorted(record)}" if isinstance(record, dict) else f"a {type(record).__name__}"
        )
        return [Problem(index, "", f"is in no known format ({what}).")]
    return [Problem(index, f, m) for f, m in _record_problems(record, fmt)]


def _as_turns(value, role: str) -> list[dict]:
    return value if isinstance(value, list) else [{"role": role, "content": value}]


def to_prompt_completion(record: dict | list) -> dict | list:
    """TRL's conversational prompt-completion form: everything before the last answer, and the answer.

    With this form TRL computes the loss on the completion only; in a multi-turn conversation the
    earlier answers are then context, not training targets.
    """
    if _is_message_list(record):
        return {"prompt": record[:-1], "completion": record[-1:]}
    if isinstance(record, list):
        return [to_prompt_completion(m) for m in to_messages(record)]
    return to_prompt_completion(to_messages(record))


def _is_message_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value)


def words(text: str) -> list[str]:
    """Lower-case words (letters, digits, underscores): the unit of the near-duplicate check and the task rules."""
    return re.findall(r"\w+", text.lower())


# ---------------------------------------------------------------- splitting


def split_records(
    records: list, fraction: float = 0.1, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Indices of a seeded split: (the rest, `fraction` of the records), each in file order."""
    if not 0 < fraction < 1:
        raise CourseError(f"test_fraction must be between 0 and 1, got {fraction}.")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_split = max(1, round(len(records) * fraction))
    return sorted(order[n_split:]), sorted(order[:n_split])


def split_and_save(
    records: list[dict],
    folder: str | Path,
    test_fraction: float = 0.1,
    seed: int = 0,
    names: tuple[str, str] = ("train", "validation"),
) -> dict[str, Path]:
    """Shuffle with a seed, split off `test_fraction`, and write <folder>/<name>.jsonl for both."""
    parts = dict(zip(names, split_records(records, test_fraction, seed)))
    folder = Path(folder)
    return {
        name: save_jsonl([records[i] for i in idx], folder / f"{name}.jsonl")
        for name, idx in parts.items()
    }
