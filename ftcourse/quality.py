"""The data quality checklist: checks that each remove records with a reason, run in order.

Every check takes a list of records and returns (kept records, list of `Removed`): nothing leaves a
dataset without a reason. `checklist` orders the article's checklist (size, empty fields, structure,
exact and near duplicates, token-length outliers, tone); `run_checklist` applies it and reports
every removal against the original positions.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace

from ftcourse.data import find_problems, record_format, shorten, to_messages, words
from ftcourse.datafiles import text_fields
from ftcourse.tasks import curt_words, has_polite_marker


@dataclass(frozen=True)
class Removed:
    """A record a checklist function took out (or, with index None, a note about the whole set)."""

    index: int | None
    check: str
    reason: str
    duplicate_of: int | None = None

    def __str__(self) -> str:
        where = "dataset" if self.index is None else f"record {self.index}"
        return f"{where} [{self.check}] {self.reason}"


def _keep(records: list, report: list[Removed]) -> tuple[list, list[Removed]]:
    gone = {r.index for r in report}
    return [r for i, r in enumerate(records) if i not in gone], report


def check_size(records: list, minimum: int = 500) -> tuple[list, list[Removed]]:
    """Removes nothing; notes when there are fewer records than the usual 500-1,000 minimum."""
    if len(records) >= minimum:
        return records, []
    note = (
        f"only {len(records)} records; fine-tuning usually needs at least {minimum} "
        "consistent examples to change behaviour reliably"
    )
    return records, [Removed(None, "check_size", note)]


def drop_empty(records: list) -> tuple[list, list[Removed]]:
    """Records with a blank required text (Alpaca's `input` may be empty)."""
    report = []
    for i, record in enumerate(records):
        if record_format(record) is None:
            continue  # not a record in any format: drop_invalid reports it
        blank = [f for f, v in text_fields(record) if not v.strip() and f != "input"]
        if blank:
            report.append(Removed(i, "drop_empty", f"empty {', '.join(blank)}"))
    return _keep(records, report)


def drop_invalid(records: list) -> tuple[list, list[Removed]]:
    """Records that fail validation, including records in a different format from the rest."""
    by_record: dict[int, list[str]] = {}
    for p in find_problems(records):
        by_record.setdefault(p.index, []).append(f"{p.field or 'record'}: {p.message}")
    report = [Removed(i, "drop_invalid", " | ".join(m)) for i, m in sorted(by_record.items())]
    return _keep(records, report)


def drop_exact_duplicates(records: list) -> tuple[list, list[Removed]]:
    """Records identical to an earlier one (the first copy is kept)."""
    first: dict[str, int] = {}
    report = []
    for i, record in enumerate(records):
        key = json.dumps(record, sort_keys=True, ensure_ascii=False)
        if key in first:
            report.append(
                Removed(i, "drop_exact_duplicates", f"same as record {first[key]}", first[key])
            )
        else:
            first[key] = i
    return _keep(records, report)


def word_set(record: dict) -> frozenset[str]:
    """The set of words in all of a record's texts."""
    return frozenset(words(" ".join(m["content"] for m in to_messages(record))))


def jaccard(a: frozenset, b: frozenset) -> float:
    """Shared words over all words: 1.0 for the same word set, 0.0 for nothing in common."""
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared) if a or b else 1.0


def near_duplicate_pairs(
    records: list, others: list | None = None, threshold: float = 0.8
) -> list[tuple[int, int, float]]:
    """(i, j, similarity) for pairs at or above `threshold`: within `records`, or records x others."""
    sets_a = [word_set(r) for r in records]
    sets_b = sets_a if others is None else [word_set(r) for r in others]
    pairs = []
    for i, a in enumerate(sets_a):
        for j in range(i + 1 if others is None else 0, len(sets_b)):
            b = sets_b[j]
            if min(len(a), len(b)) >= threshold * max(len(a), len(b)):  # else Jaccard < threshold
                if (s := jaccard(a, b)) >= threshold:
                    pairs.append((i, j, s))
    return pairs


def drop_near_duplicates(records: list, threshold: float = 0.8) -> tuple[list, list[Removed]]:
    """Records sharing at least `threshold` of their words with an earlier kept record."""
    kept: list[tuple[int, frozenset]] = []
    report = []
    for i, record in enumerate(records):
        ws = word_set(record)
        match = next(((j, s) for j, other in kept if (s := jaccard(ws, other)) >= threshold), None)
        if match:
            reason = f"shares {match[1]:.0%} of its words with record {match[0]}"
            report.append(Removed(i, "drop_near_duplicates", reason, match[0]))
        else:
            kept.append((i, ws))
    return _keep(records, report)


def output_tokens(records: list, tokenizer) -> list[int]:
    """Tokens in each record's assistant answers (the text the model learns to write)."""
    answers = [
        "".join(m["content"] for m in to_messages(r) if m["role"] == "assistant") for r in records
    ]
    return [len(ids) for ids in tokenizer(answers, add_special_tokens=False)["input_ids"]]


def length_bounds(lengths: list[int], factor: float = 4.0) -> tuple[float, float]:
    """Lengths outside [median / factor, median * factor] count as outliers."""
    median = statistics.median(lengths)
    return median / factor, median * factor


def drop_length_outliers(
    records: list, tokenizer, factor: float = 4.0, max_tokens: int | None = None
) -> tuple[list, list[Removed]]:
    """Answers far shorter or longer than the median, and conversations over `max_tokens`.

    A conversation longer than the training max_length is cut off, and with it the EOS token.
    """
    lengths = output_tokens(records, tokenizer)
    low, high = length_bounds(lengths, factor)
    report = []
    for i, n in enumerate(lengths):
        if not low <= n <= high:
            side = (
                f"below median/{factor:g} = {low:.1f}"
                if n < low
                else f"above median*{factor:g} = {high:.0f}"
            )
            report.append(Removed(i, "drop_length_outliers", f"answer has {n} tokens, {side}"))
        elif max_tokens and (total := _conversation_tokens(records[i], tokenizer)) > max_tokens:
            report.append(
                Removed(
                    i,
                    "drop_length_outliers",
                    f"conversation has {total} tokens, over max_length {max_tokens}",
                )
            )
    return _keep(records, report)


def _conversation_tokens(record: dict, tokenizer) -> int:
    return len(
        tokenizer.apply_chat_template(to_messages(record), tokenize=True, return_dict=True)[
            "input_ids"
        ]
    )


# ---------------------------------------------------------------- tone


def drop_inconsistent_tone(records: list) -> tuple[list, list[Removed]]:
    """Answers that break the polite tone: no politeness marker, or a curt word."""
    report = []
    for i, record in enumerate(records):
        answer = to_messages(record)[-1]["content"]
        curt = curt_words(answer)
        if curt or not has_polite_marker(answer):
            why = f"curt words {curt}" if curt else "no politeness marker (please, could you...)"
            report.append(Removed(i, "drop_inconsistent_tone", f"{why}: {shorten(answer)}"))
    return _keep(records, report)


# ---------------------------------------------------------------- running the checklist, splitting


def run_checklist(records: list, checks: list[Callable]) -> tuple[list, list[Removed]]:
    """Apply checks in order; report indices refer to the ORIGINAL list, whatever ran before."""
    positions = list(range(len(records)))
    report: list[Removed] = []
    for check in checks:
        kept, removed = check(records)
        for r in removed:
            idx = None if r.index is None else positions[r.index]
            dup = None if r.duplicate_of is None else positions[r.duplicate_of]
            report.append(replace(r, index=idx, duplicate_of=dup))
        gone = {r.index for r in removed}
        positions = [p for i, p in enumerate(positions) if i not in gone]
        records = kept
    return records, report


def checklist(tokenizer, max_tokens: int | None = None, tone: bool = True) -> list[Callable]:
    """The article's checklist as an ordered list of checks: cheap exact checks first, fuzzy last.

    Tone comes before near duplicates, so a curt answer to a request that is also answered
    politely is reported as a tone problem rather than as a near copy of the polite one.
    """

    def length(records):
        return drop_length_outliers(records, tokenizer, max_tokens=max_tokens)

    length.__name__ = "drop_length_outliers"
    checks = [check_size, drop_empty, drop_invalid, drop_exact_duplicates, length]
    return checks + ([drop_inconsistent_tone] if tone else []) + [drop_near_duplicates]
