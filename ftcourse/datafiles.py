"""Reading a data file: JSON, JSON lines or CSV; compressed or zipped; in UTF-8, -16 or -32.

What `ftcourse.data.load_records` reads, and the one-line refusals for what it does not: an 8-bit
encoding (with the `iconv` command that converts it), a stray byte, a broken CSV row, an archive
of several files or a kind of file the course does not open (with the command that converts it).
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import json
import lzma
import shlex
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ftcourse.errors import CourseError

MAX_PROBLEMS_SHOWN = 25
FORMAT_KEYS = {  # the keys that make a record of each format (ftcourse.data)
    "alpaca": ("instruction", "output", "input"),
    "sharegpt": ("conversations",),
    "messages": ("messages",),
    "prompt_completion": ("prompt", "completion"),
}

DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".tsv")
MAGIC = {  # a file's first bytes say what it is, whatever its name says
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"PK\x03\x04": "zip",
    b"(\xb5/\xfd": "zstd",
    b"7z\xbc\xaf'\x1c": "7z",
    b"Rar!\x1a\x07": "rar",
    b"PAR1": "parquet",
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": "xls",
}
DECOMPRESS = {  # read through: the kind, its function, the suffix its files end with
    "gzip": (gzip.decompress, ".gz"),
    "bzip2": (bz2.decompress, ".bz2"),
    "xz": (lzma.decompress, ".xz"),
}
REFUSED = {  # what to do with each kind of file the loader does not open
    "zstd": "a zstd-compressed file. Decompress it (`zstd -d {file}`) and pass the result.",
    "7z": "a 7-Zip archive. Extract it (`7z x {file}`) and pass the data file inside.",
    "rar": "a RAR archive. Extract it (`unrar x {file}`) and pass the data file inside.",
    "tar": "a tar archive. Extract it (`tar -xf {file}`) and pass the data file inside.",
    "parquet": 'a Parquet file. Convert it to JSON lines, e.g. `python -c "import pandas; '
    "pandas.read_parquet('{path}').to_json('{stem}.jsonl', orient='records', lines=True, "
    'force_ascii=False)"`, and pass {stem}.jsonl.',
    "xls": "an Excel workbook. Save it as CSV (in Excel: File > Save As > CSV UTF-8) and pass "
    "the .csv file.",
}


def load_records(path: str | Path) -> list:
    """Read a data file into a list of records, with clear errors.

    .json holds a list of records, .jsonl one record per line, .csv (or .tsv) a header row of
    column names and then one record per row. A file compressed with gzip, bzip2 or xz (.gz, .bz2,
    .xz) is read through, and so is a .zip holding one data file. Text is UTF-8; a byte-order mark
    is skipped, and UTF-16 or UTF-32 text (a byte-order mark, or the NUL bytes JSON's rule reads) is
    read too. A file in an 8-bit encoding such as Windows-1252 is refused with the `iconv` command
    that converts it: which 8-bit encoding it is cannot be known for sure.
    """
    path = Path(path)
    if not path.is_file():
        raise CourseError(f"{path}: no such file. Check the path (relative to {Path.cwd()}).")
    contents = _unpack(path)
    raw = _as_utf8(contents)
    if not raw.strip():
        raise CourseError(
            f"{contents.source}: the file is empty. Add records to it (one JSON object per line for "
            ".jsonl, a list [{...}, {...}] for .json, a header row and then rows for .csv), or "
            "check that the path names the file you meant."
        )
    suffix = Path(contents.name).suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _parse_csv(_decode(raw, contents.source), contents.source, suffix)
    if suffix == ".jsonl":
        return _parse_lines(raw, contents.source)
    return _parse_json(raw, contents.source)


@dataclass(frozen=True)
class _Contents:
    """A data file's bytes, unpacked from any compression or zip archive."""

    raw: bytes
    name: str  # the data file's own name: its suffix says the format
    path: Path  # the file given
    member: str | None = None  # the data file's path inside a zip archive
    reader: str | None = None  # a shell command printing `raw`, when the file is packed

    @property
    def source(self) -> str:
        """The file as messages name it: its path, and the data file's inside a zip archive."""
        return f"{self.path} ({self.member})" if self.member else str(self.path)


def _unpack(path: Path) -> _Contents:
    """The file's bytes, decompressed (gzip, bzip2, xz) or taken out of a zip archive."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CourseError(f"{path}: cannot read it ({exc.strerror or exc}).") from None
    kind, shown = _kind(raw), shlex.quote(str(path))
    if kind in DECOMPRESS:
        unpack, suffix = DECOMPRESS[kind]
        try:
            raw = unpack(raw)
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
            raise CourseError(
                f"{path}: a {kind} file that cannot be decompressed ({exc}): it is cut short or "
                "damaged. Download it or compress it again."
            ) from None
        name = path.stem if path.suffix.lower() == suffix else path.name
        contents = _Contents(raw, name, path, reader=f"{kind} -dc {shown}")
    elif kind == "zip":
        contents = _zip_member(path)
    else:
        contents = _Contents(raw, path.name, path)
    kind = "tar" if contents.raw[257:262] == b"ustar" else _kind(contents.raw)
    if kind in REFUSED:
        stem = Path(contents.name).name.split(".")[0]
        message = REFUSED[kind].format(file=shown, path=path, stem=stem)
        raise CourseError(f"{path}: {message}")
    return contents


def _kind(raw: bytes) -> str | None:
    """What a file's first bytes say it is (gzip, zip, parquet...); None for text."""
    return next((kind for magic, kind in MAGIC.items() if raw.startswith(magic)), None)


def _zip_member(path: Path) -> _Contents:
    """The one data file (.json, .jsonl, .csv, .tsv) a zip archive holds."""
    shown = shlex.quote(str(path))
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if _is_packed_file(n)]
            if any(n.startswith("xl/") for n in names):
                raise CourseError(f"{path}: {REFUSED['xls']}")
            data = [n for n in names if Path(n).suffix.lower() in DATA_SUFFIXES]
            if len(data) == 1:
                member = data[0]
                reader = f"unzip -p {shown} {shlex.quote(member)}"
                return _Contents(archive.read(member), Path(member).name, path, member, reader)
    except (zipfile.BadZipFile, OSError, NotImplementedError, zlib.error) as exc:
        raise CourseError(
            f"{path}: a zip archive that cannot be read ({exc}). Extract it with your archive tool "
            "and pass the data file itself."
        ) from None
    if not data:
        raise CourseError(
            f"{path}: the zip archive holds no .json, .jsonl or .csv file (it holds "
            f"{', '.join(names[:5]) or 'nothing'}). Pass a data file in one of these formats."
        )
    raise CourseError(
        f"{path}: the zip archive holds {len(data)} data files ({', '.join(data[:5])}), not one. "
        f"Extract the one you mean (e.g. `unzip {shown} {shlex.quote(data[0])}`) and pass it."
    )


def _is_packed_file(name: str) -> bool:
    """A file of a zip archive, not a folder or what macOS adds (__MACOSX/, hidden files)."""
    return not name.endswith("/") and not name.startswith("__MACOSX/") and "/." not in f"/{name}"


def _as_utf8(contents: _Contents) -> bytes:
    """The bytes as UTF-8: a byte-order mark skipped, UTF-16/32 converted, 8-bit text refused."""
    raw = contents.raw.removeprefix(codecs.BOM_UTF8)
    codec = json.detect_encoding(raw)  # byte-order marks, and NUL bytes among the first four
    if codec != "utf-8":
        try:
            return raw.decode(codec).encode("utf-8")
        except UnicodeDecodeError as err:
            raise CourseError(
                f"{contents.source}: read as {codec.upper()} (as its first bytes say), the file "
                f"breaks at byte offset {err.start} ({err.reason}): it is cut short or mixes "
                "encodings. Save it again as UTF-8."
            ) from None
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        if raw.decode("utf-8", errors="ignore").isascii():  # no UTF-8 text anywhere: 8-bit text
            skipped = len(contents.raw) - len(raw)
            raise CourseError(_not_utf8(contents, raw, err.start, skipped)) from None
    return raw  # UTF-8, or UTF-8 with a few bad bytes: the parsers name each place


def _not_utf8(contents: _Contents, raw: bytes, offset: int, skipped: int) -> str:
    """The message for a file in an 8-bit encoding: its first bad byte and the command to convert."""
    line = raw[:offset].count(b"\n") + 1
    where = f"{contents.source}, line {line}"
    if Path(contents.name).suffix.lower() == ".jsonl":
        lines = raw.split(b"\n")
        record = sum(1 for text in lines[: line - 1] if text.strip())
        where += f" (record {record}){_bad_utf8_field(lines[line - 1])}"
    try:
        raw.decode("cp1252")
        label, codec = "Windows-1252 (cp1252)", "cp1252"
    except UnicodeDecodeError:  # bytes Windows-1252 leaves undefined
        label, codec = "Latin-1 (ISO-8859-1)", "latin1"
    name = Path(contents.name)
    out = shlex.quote(str(contents.path.parent / f"{name.stem}-utf8{name.suffix}"))
    convert = f"iconv -f {codec} -t utf-8"
    command = (
        f"{contents.reader} | {convert} > {out}"
        if contents.reader
        else f"{convert} {shlex.quote(str(contents.path))} > {out}"
    )
    return (
        f"{where}: byte 0x{raw[offset]:02x} (offset {offset + skipped}) is not valid UTF-8: the "
        f"file seems to be in {label}, not UTF-8. Convert it with `{command}` and use {out}."
    )


def _decode(raw: bytes, source: str) -> str:
    """UTF-8 text; a stray bad byte in a file that is otherwise UTF-8 is named by line and offset."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise CourseError(
            f"{source}, line {line}: byte 0x{raw[err.start]:02x} (offset {err.start}) is not valid "
            "UTF-8, though the rest of the file is. Retype the text there, or save the file again "
            "as UTF-8."
        ) from None


def _parse_json(raw: bytes, source: str) -> list:
    """A .json file: one list of records (several JSON values in a row are read as JSONL)."""
    try:
        data = json.loads(_decode(raw, source))
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # several JSON values in a row: it is really JSONL
            return _parse_lines(raw, source)
        raise CourseError(
            f"{source}, line {err.lineno}, column {err.colno}: not valid JSON ({err.msg}). "
            "A .json file must hold one list of records: [{...}, {...}]."
        ) from None
    if not isinstance(data, list):
        what = (
            f"an object with keys {sorted(data)}" if isinstance(data, dict) else type(data).__name__
        )
        raise CourseError(
            f"{source}: the top level is {what}, not a list of records. Put the records in a list "
            "([{...}, {...}]), or save one record per line as .jsonl."
        )
    return data


def _parse_lines(raw: bytes, source: str) -> list:
    """JSONL: every line is parsed, and every bad line is reported, not only the first."""
    records, problems = [], []
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        where = f"{source}, line {lineno} (record {len(records)})"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            problems.append(
                f"{where}{_bad_utf8_field(line)}: byte 0x{line[err.start]:02x} is not valid "
                "UTF-8, though the rest of the file is. Retype the text there, or save the file "
                "again as UTF-8."
            )
            records.append(None)
            continue
        try:
            records.append(json.loads(text))
        except json.JSONDecodeError as err:
            problems.append(
                f"{where}: not valid JSON ({err.msg}, column {err.colno}). Each line "
                "of a .jsonl file must be one complete JSON object."
            )
            records.append(None)
    if problems:
        raise CourseError(join_problems(problems))
    return records


def _bad_utf8_field(line: bytes) -> str:
    """Name the field that holds the undecodable bytes, when the rest of the line is JSON."""
    try:
        record = json.loads(line.decode("utf-8", errors="replace"))
    except json.JSONDecodeError:
        return ""
    fields = [f for f, v in text_fields(record) if "\ufffd" in v]
    return f", field {fields[0]!r}" if fields else ""


def _parse_csv(text: str, source: str, suffix: str) -> list[dict]:
    """CSV (or TSV): a header row of column names, then one record per row (blank lines skipped)."""
    first = text.split("\n", 1)[0]
    delimiter = "\t" if suffix == ".tsv" else max(",;\t", key=first.count)
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records, problems = [], []
    try:
        header = [name.strip() for name in next(rows)]
        _check_header(header, source)
        start = rows.line_num + 1
        for row in rows:
            if row and len(row) != len(header):
                problems.append(_cells_problem(row, header, delimiter, source, start, len(records)))
            if row:
                records.append(dict(zip(header, row)))
            start = rows.line_num + 1
    except csv.Error as exc:
        raise CourseError(f"{source}, line {rows.line_num}: not valid CSV ({exc}).") from None
    if problems:
        raise CourseError(join_problems(problems))
    if not records:
        raise CourseError(f"{source}: the header is the only row. Add one row per record under it.")
    return records


def _check_header(header: list[str], source: str) -> None:
    """Named, distinct columns, of the flat formats (a cell holds text, not a list of turns)."""
    where = f"{source}, line 1 (the header)"
    if "" in header:
        raise CourseError(
            f"{where}: column {header.index('') + 1} has no name. Name it, or delete the column."
        )
    twice = [name for name, n in Counter(header).items() if n > 1]
    if twice:
        raise CourseError(f"{where}: column {twice[0]!r} appears twice. Give each its own name.")
    turns = [name for name in header if name in ("messages", "conversations")]
    if turns:
        raise CourseError(
            f"{where}: a {turns[0]!r} column would hold a list of turns, which a CSV cell cannot. "
            "Save conversations as .jsonl, one record per line."
        )
    if not set(header) & {*FORMAT_KEYS["alpaca"], *FORMAT_KEYS["prompt_completion"]}:
        raise CourseError(
            f"{where}: the columns {header} are not those of a known format. Name them "
            "instruction, input (optional), output (Alpaca) or prompt, completion."
        )


def _cells_problem(
    row: list[str], header: list[str], delimiter: str, source: str, line: int, record: int
) -> str:
    """A row with more or fewer cells than the header has columns."""
    name = {",": "a comma", ";": "a semicolon", "\t": "a tab"}[delimiter]
    return (
        f"{source}, line {line} (record {record}): {len(row)} cells, but the header has "
        f"{len(header)} columns. Put a cell that holds {name} or a line break in double quotes, "
        'and double each quote inside a cell ("").'
    )


def join_problems(lines: list[str]) -> str:
    """One problem as it is; several counted, one a line, the first MAX_PROBLEMS_SHOWN of them."""
    if len(lines) == 1:
        return lines[0]
    shown = lines[:MAX_PROBLEMS_SHOWN]
    more = len(lines) - len(shown)
    tail = [f"... and {more} more problems."] if more > 0 else []
    return f"{len(lines)} problem(s):\n" + "\n".join(["  " + s for s in shown] + tail)


def text_fields(value, prefix: str = "") -> Iterable[tuple[str, str]]:
    """Every string inside a record, with its field path (e.g. `conversations[1].value`)."""
    if isinstance(value, str):
        yield prefix, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from text_fields(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from text_fields(v, f"{prefix}[{i}]")
