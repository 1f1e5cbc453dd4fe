"""Batch input records: JSONL lines, CSV records and the byte stream they come from."""

import io

import pytest

from maas.jobs.records import (
    MAX_LINE_CHARS,
    csv_bytes,
    iter_lines,
    parse_csv,
    parse_csv_header,
    parse_jsonl,
    strip_eol,
)


def test_a_jsonl_line_is_a_string_or_an_object_with_input_or_text():
    # GIVEN the three accepted line shapes
    # WHEN each is parsed
    plain = parse_jsonl(b'"hello"', 1)
    with_id = parse_jsonl(b'{"input": "hi", "custom_id": "a-1"}', 2)
    text = parse_jsonl(b'{"text": "hey"}', 3)

    # THEN each is a usable record, keeping its line number and custom id
    assert (plain.line, plain.text, plain.custom_id, plain.error) == (1, "hello", None, None)
    assert (with_id.line, with_id.text, with_id.custom_id, with_id.error) == (2, "hi", "a-1", None)
    assert (text.text, text.error) == ("hey", None)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", "empty line"),
        (b"   ", "empty line"),
        (b"\xff\xfe", "not valid UTF-8"),
        (b"{not json", "not valid JSON"),
        (b"42", "expected a JSON string"),
        (b'{"input": 42}', "expected a JSON string"),
        (b'{"input": "x", "custom_id": 7}', "'custom_id' must be a string"),
        (b'"   "', "empty or only whitespace"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b"7" * 5000, "not valid JSON"),
        (b'"\\ud800"', "unpaired UTF-16 surrogate"),
        (b'{"input": "x", "custom_id": "\\udfff"}', "unpaired UTF-16 surrogate"),
        (b'"' + b"x" * 800_000 + b'"', "longer than 800000 bytes"),
    ],
)
def test_an_unusable_jsonl_line_is_a_record_with_its_error(raw, error):
    # GIVEN a line the worker cannot embed
    # WHEN it is parsed
    record = parse_jsonl(raw, 9)

    # THEN it is not dropped: it is a record of that line, with no text and the reason
    assert record.line == 9 and record.text is None
    assert error in record.error


def test_an_over_long_input_is_refused_but_keeps_its_custom_id():
    # GIVEN an input one character over the limit
    raw = ('{"input": "' + "x" * (MAX_LINE_CHARS + 1) + '", "custom_id": "big"}').encode()

    # WHEN it is parsed
    record = parse_jsonl(raw, 1)

    # THEN it is an error that names the limit, and the result line can still be matched by its custom id
    assert record.text is None and str(MAX_LINE_CHARS) in record.error and record.custom_id == "big"


def test_a_csv_header_is_case_and_space_insensitive_and_needs_an_input_column():
    # GIVEN a header with a BOM, odd case and spaces, and a header without an input column
    # WHEN they are parsed
    columns = parse_csv_header("\ufeffCustom_ID , Input".encode())

    # THEN the columns are normalised, and a header without 'input' or 'text' is refused
    assert columns == ["custom_id", "input"]
    assert parse_csv_header(b"text") == ["text"]
    with pytest.raises(ValueError, match="no 'input'"):
        parse_csv_header(b"id,body")


def test_csv_records_follow_their_header():
    # GIVEN a header and records written by the csv module (quoting a comma)
    header = ["custom_id", "input"]
    first, second = csv_bytes([["a", "one, two"], ["b", ""]]).splitlines()

    # WHEN each record is parsed
    good, empty = parse_csv(first, 2, header), parse_csv(second, 3, header)

    # THEN the quoted comma stays in the text, and an empty input is an error of that line
    assert (good.line, good.custom_id, good.text, good.error) == (2, "a", "one, two", None)
    assert (empty.line, empty.custom_id, empty.text) == (3, "b", None) and "empty" in empty.error


def test_a_csv_record_with_the_wrong_number_of_fields_is_an_error():
    # GIVEN a two-column header and a one-field record
    # WHEN it is parsed
    record = parse_csv(b"only", 4, ["custom_id", "input"])

    # THEN the error counts the fields
    assert record.text is None and record.error == "the record has 1 fields; the header has 2"


def test_lines_keep_their_endings_so_their_lengths_are_byte_offsets():
    # GIVEN a stream with LF and CRLF endings and no final newline
    body = io.BytesIO(b'"a"\n"bb"\r\n"c"')

    # WHEN it is read as lines
    lines = list(iter_lines(body))

    # THEN every byte is in a line, and stripping the ending gives the record
    assert lines == [b'"a"\n', b'"bb"\r\n', b'"c"']
    assert sum(len(line) for line in lines) == len(body.getvalue())
    assert [strip_eol(line) for line in lines] == [b'"a"', b'"bb"', b'"c"']


def test_iter_lines_stops_at_its_limit():
    # GIVEN five lines
    body = io.BytesIO(b"1\n2\n3\n4\n5\n")

    # WHEN at most two are asked for
    lines = list(iter_lines(body, limit=2))

    # THEN exactly the first two come back
    assert lines == [b"1\n", b"2\n"]
