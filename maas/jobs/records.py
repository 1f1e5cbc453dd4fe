"""Input records of a batch job: one text per JSONL line or CSV record, each with its error when it is unusable."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

MAX_LINE_CHARS = 100_000
# A line longer than this cannot hold an acceptable input (JSON may spell a character as a 6-byte \uXXXX
# escape, plus a custom_id): it is refused before it is decoded, so one huge line costs no parse.
MAX_LINE_BYTES = 8 * MAX_LINE_CHARS
READ_CHUNK_BYTES = 1 << 20


@dataclass
class Record:
    line: int  # 1-based physical line of the file
    text: str | None
    custom_id: str | None = None
    error: str | None = None


def record_of(value, line: int) -> Record:
    """One input as a Record: a string, or an object with "input" (or "text") and an optional "custom_id";
    an empty, whitespace-only or over-long input is a Record with its error."""
    custom_id = None
    if isinstance(value, dict):
        custom_id = value.get("custom_id")
        if custom_id is not None and not isinstance(custom_id, str):
            return Record(line, None, None, "'custom_id' must be a string")
        value = value.get("input", value.get("text"))
    if not isinstance(value, str):
        return Record(line, None, custom_id, "expected a JSON string or an object with an 'input' string")
    if not is_unicode(value) or (custom_id is not None and not is_unicode(custom_id)):
        # JSON may escape half of a UTF-16 surrogate pair ("\ud800"): no text, and no tokenizer takes it.
        return Record(line, None, None, "the line holds an unpaired UTF-16 surrogate escape (not valid Unicode)")
    if not value.strip():
        return Record(line, None, custom_id, "the input is empty or only whitespace")
    if len(value) > MAX_LINE_CHARS:
        return Record(line, None, custom_id, f"the input is longer than {MAX_LINE_CHARS} characters")
    return Record(line, value, custom_id)


def is_unicode(text: str) -> bool:
    """Whether ``text`` is valid Unicode (no unpaired surrogate, which JSON's \\u escapes can make)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def line_text(raw: bytes, line: int) -> str | Record:
    """A line's text, or the Record of its error when it is too long or not UTF-8."""
    if len(raw) > MAX_LINE_BYTES:
        return Record(line, None, None, f"the line is longer than {MAX_LINE_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return Record(line, None, None, "the line is not valid UTF-8")


def parse_jsonl(raw: bytes, line: int) -> Record:
    """One JSONL line: a JSON string, or an object with "input" (or "text") and an optional "custom_id".
    Never raises: whatever the bytes, the line is a Record, with its error when it is unusable."""
    text = line_text(raw, line)
    if isinstance(text, Record):
        return text
    if not text.strip():
        return Record(line, None, None, "empty line")
    try:
        value = json.loads(text)
    except ValueError as exc:  # also integers beyond Python's digit limit
        return Record(line, None, None, f"not valid JSON: {exc}")
    except RecursionError:
        return Record(line, None, None, "not valid JSON here: nested too deeply")
    return record_of(value, line)


def parse_csv_header(raw: bytes) -> list[str]:
    """The lower-cased column names of a CSV header line; ValueError if it has no 'input' (or 'text') column."""
    header = next(csv.reader([raw.decode("utf-8-sig")]), [])
    columns = [h.strip().lower() for h in header]
    if "input" not in columns and "text" not in columns:
        raise ValueError("the CSV header has no 'input' (or 'text') column")
    return columns


def parse_csv(raw: bytes, line: int, header: list[str]) -> Record:
    """One CSV record per physical line (quoted newlines are not supported: such a line is reported bad).
    Never raises: an unusable line is a Record with its error."""
    text = line_text(raw, line)
    if isinstance(text, Record):
        return text
    try:
        row = next(csv.reader([text], strict=True), [])
    except csv.Error as exc:
        return Record(line, None, None, f"not a valid CSV record: {exc}")
    if len(row) != len(header):
        return Record(line, None, None, f"the record has {len(row)} fields; the header has {len(header)}")
    values = dict(zip(header, row, strict=True))
    return record_of({"input": values.get("input", values.get("text")), "custom_id": values.get("custom_id")}, line)


def iter_lines(body, limit: int | None = None) -> Iterator[bytes]:
    """Lines of a byte stream with their line endings kept (so their lengths are byte offsets)."""
    buffer = b""
    count = 0
    for block in iter(lambda: body.read(READ_CHUNK_BYTES), b""):
        buffer += block
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end == -1:
                break
            yield buffer[start : end + 1]
            count += 1
            start = end + 1
            if limit is not None and count >= limit:
                return
        buffer = buffer[start:]
    if buffer:
        yield buffer


def strip_eol(raw: bytes) -> bytes:
    """A line without its line ending (LF or CRLF)."""
    return raw.rstrip(b"\r\n")


def csv_bytes(rows: list[list[str]]) -> bytes:
    """CSV text for tests and samples."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()
