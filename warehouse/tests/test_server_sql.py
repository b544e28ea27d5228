"""Reading statements without parsing them: keywords, INSERT data offsets, FORMAT clauses, in linear time."""

from __future__ import annotations

import contextlib

import pytest

from halton_warehouse.server.request_body import read_statement
from halton_warehouse.server.sql_scan import (
    InsertSplit,
    NeedMoreText,
    UnsupportedInsert,
    inspect_statement,
    split_insert,
)

DBT_COMMENT = '/* {"app": "dbt", "dbt_version": "1.10.23", "node_id": "model.halton.daily_spend"} */\n'


@pytest.mark.parametrize(
    "sql, keyword, returns_rows, output_format",
    [
        ("SELECT 1", "SELECT", True, None),
        ("SELECT 1\n FORMAT Native", "SELECT", True, "Native"),
        ("select 1 format JSON settings max_threads = 1", "SELECT", True, "JSON"),
        (DBT_COMMENT + "select * from (select 1 format JSON)", "SELECT", True, None),
        ("SELECT 1 AS format FROM system.one", "SELECT", True, None),
        ("SELECT format('{}', 'x') FORMAT CSV;", "SELECT", True, "CSV"),
        ("SELECT 'FORMAT JSON' -- FORMAT XML", "SELECT", True, None),
        ("(SELECT 1) UNION ALL (SELECT 2) FORMAT TSV", "SELECT", True, "TSV"),
        ("-- comment\nWITH 1 AS x SELECT x", "WITH", True, None),
        ("SHOW TABLES", "SHOW", True, None),
        ("CREATE TABLE t (format String) ENGINE = Memory", "CREATE", False, None),
        ("SET max_threads = 1", "SET", False, None),
        ("", "", False, None),
    ],
)
def test_statement_shape(sql: str, keyword: str, returns_rows: bool, output_format: str | None) -> None:
    shape = inspect_statement(sql)
    assert (shape.keyword, shape.returns_rows, shape.output_format) == (keyword, returns_rows, output_format)


@pytest.mark.parametrize(
    "sql, changes_session",
    [
        ("SET a = 1", True),
        ("use db", True),
        ("CREATE TEMPORARY TABLE t (x UInt8)", True),
        ("CREATE TABLE t (x UInt8) ENGINE = Memory", False),
        ("SELECT 1", False),
    ],
)
def test_statements_that_outlive_their_request(sql: str, changes_session: bool) -> None:
    assert inspect_statement(sql).changes_session is changes_session


@pytest.mark.parametrize(
    "sql, second_at",
    [
        ("SELECT 1;", None),
        ("SELECT 1; -- done", None),
        ("SELECT ';'; ", None),
        ("SELECT 1; SELECT 2", 10),
        ("CREATE TABLE a (x UInt8) ENGINE = Memory;\nDROP TABLE a", 42),
    ],
)
def test_a_second_statement_is_found(sql: str, second_at: int | None) -> None:
    assert inspect_statement(sql).second_statement_at == second_at


def test_insert_split_where_clickhouse_starts_the_data() -> None:
    text = DBT_COMMENT + "INSERT INTO db.t (a, `format`) SETTINGS async_insert = 0 FORMAT Native \r\n\x00\x01"
    split = split_insert(text, complete=True)
    assert split == InsertSplit(
        statement=text[: text.index("FORMAT Native")], input_format="Native", data_start=len(text) - 2
    )
    same_line = split_insert('INSERT INTO t FORMAT JSONEachRow {"a": 1}', complete=True)
    assert same_line is not None and same_line.input_format == "JSONEachRow"
    assert 'INSERT INTO t FORMAT JSONEachRow {"a": 1}'[same_line.data_start :] == '{"a": 1}'


@pytest.mark.parametrize(
    "sql", ["INSERT INTO t VALUES (1)", "INSERT INTO t SELECT 1", "INSERT INTO t FROM INFILE 'f'"]
)
def test_inserts_without_a_data_stream(sql: str) -> None:
    assert split_insert(sql, complete=True) is None


def test_insert_from_input_is_refused() -> None:
    with pytest.raises(UnsupportedInsert):
        split_insert("INSERT INTO t SELECT a FROM INPUT ('a UInt8') FORMAT CSV\n1\n", complete=True)


@pytest.mark.parametrize(
    "partial",
    [
        "INSERT INTO t FORM",
        "INSERT INTO t FORMAT",
        "INSERT INTO t FORMAT Nat",
        "INSERT INTO t FORMAT CSV ",
        "INSERT INTO t /* open comment",
    ],
)
def test_incomplete_insert_header_asks_for_more(partial: str) -> None:
    with pytest.raises(NeedMoreText):
        split_insert(partial, complete=False)


def test_statement_read_across_body_pieces() -> None:
    pieces = [b"INS", b"ERT INTO t FOR", b"MAT RowBinary\n\x01\x02", b"\x03"]
    statement = read_statement("", iter(pieces))
    assert statement.insert is not None and statement.insert.input_format == "RowBinary"
    assert statement.sql == "INSERT INTO t "
    assert b"".join(statement.data or ()) == b"\x01\x02\x03"

    from_url = read_statement("INSERT INTO t FORMAT CSV", iter([b"1\n", b"2\n"]))
    assert b"".join(from_url.data or ()) == b"1\n2\n"

    whole = read_statement("SELECT", iter([b" 1", b" + 1"]))
    assert (whole.insert, whole.sql) == (None, "SELECT\n 1 + 1")


@pytest.mark.parametrize(
    "text",
    [
        "/*" + "*" * 300_000,  # an unterminated comment: the input that froze a backtracking prototype
        DBT_COMMENT * 5_000 + "SELECT 1",
        "'" + "''" * 150_000,
        "SELECT " + "(" * 200_000,
        "SELECT " + "a, " * 100_000 + "b FORMAT Native",
    ],
    ids=["open-comment", "many-comments", "quotes", "parens", "long-select"],
)
def test_inspection_is_linear_on_hostile_input(text: str) -> None:
    # A backtracking scan would take hours on these: the suite's own timeout stops it. How long the linear
    # one takes is bench/statement_scan.py's figure, not an assert a busy machine could fail.
    inspect_statement(text)
    with contextlib.suppress(NeedMoreText):
        split_insert("INSERT " + text, complete=False)
