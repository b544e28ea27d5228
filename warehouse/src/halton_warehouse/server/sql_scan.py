"""What the HTTP layer needs to know about a statement, read without parsing it.

chDB parses and runs the SQL; the server only has to know a few things ClickHouse's HTTP handler
learns from its parser: the leading keyword (does the statement return rows? does it change session
state?), where an INSERT's data starts and in which format, and whether a FORMAT clause overrides
`default_format`. Every pattern here uses possessive quantifiers, so each scan is linear in the text:
a prototype froze on a backtracking regex over dbt's leading `/* ... */` comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Whitespace, comments and opening parentheses that may precede the first keyword.
_LEADING = re.compile(r"(?:\s++|--[^\n]*+|\#[ !][^\n]*+|/\*(?:[^*]++|\*(?!/))*+\*/|\()*+", re.ASCII)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*+")
_FORMAT_NAME = re.compile(r"\s++([A-Za-z_][A-Za-z0-9_]*+)", re.ASCII)
# Tokens that matter for the structure; anything else (numbers, operators, commas) is skipped by the
# scanner in C. Comments, strings (heredocs too) and quoted identifiers are matched whole so that words inside
# them are never mistaken for keywords; an unterminated one runs to the end of the text. The access checks
# (access) read quoted identifiers as names, so they have a group of their own.
TOKENS = re.compile(
    r"""
    (?P<skip>
        --[^\n]*+
      | \#[ !][^\n]*+
      | /\*(?:[^*]++|\*(?!/))*+(?:\*/|\Z)
      | '(?:[^'\\]++|\\.|'')*+(?:'|\Z)
      | \$(?P<tag>[A-Za-z0-9_]*+)\$.*?(?:\$(?P=tag)\$|\Z)
    )
  | (?P<quoted>
        `(?:[^`\\]++|\\.|``)*+(?:`|\Z)
      | "(?:[^"\\]++|\\.|"")*+(?:"|\Z)
    )
  | (?P<open>\()
  | (?P<close>\))
  | (?P<semi>;)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*+)
    """,
    re.VERBOSE | re.DOTALL | re.ASCII,
)
_OPAQUE = frozenset({"skip", "quoted"})

# Statements whose result is a table of rows (ClickHouse sends X-ClickHouse-Format for these only).
_ROW_RETURNING = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK", "KILL"}
)


@dataclass(frozen=True)
class StatementShape:
    """The leading keywords of a statement and the output format its FORMAT clause names, if any."""

    keyword: str  # upper-cased first keyword, "" when there is none (empty or unreadable text)
    second_keyword: str
    output_format: str | None
    # Offset of a second statement after a top-level `;`: a server refuses multi-statements, chDB does not.
    second_statement_at: int | None = None
    # Where the FORMAT clause stands (from `FORMAT` to the end of the name), so the query can be run without it.
    format_span: tuple[int, int] | None = None

    def without_format(self, text: str) -> str:
        """The statement without its FORMAT clause (a SETTINGS tail after it stays)."""
        if self.format_span is None:
            return text
        start, end = self.format_span
        return text[:start] + " " + text[end:]

    @property
    def returns_rows(self) -> bool:
        return self.keyword in _ROW_RETURNING

    @property
    def changes_session(self) -> bool:
        """SET, USE and temporary tables outlive the statement on the chDB connection that ran it."""
        return self.keyword in ("SET", "USE") or (
            self.keyword == "CREATE" and self.second_keyword == "TEMPORARY"
        )


@dataclass(frozen=True)
class InsertSplit:
    """An `INSERT ... FORMAT <fmt>` statement cut where its data begins."""

    statement: str  # the INSERT up to (not including) FORMAT, for chDB's streaming insert
    input_format: str
    data_start: int  # offset in the scanned text where the data starts


def first_keyword(text: str) -> tuple[int, str]:
    """The first keyword of `text`, upper-cased ("" when absent), and the offset where it ends."""
    return _keyword_at(text, 0)


def leading_keywords(text: str) -> tuple[str, str]:
    """The first two keywords of `text`, upper-cased ("" when absent)."""
    first_end, first = _keyword_at(text, 0)
    if not first:
        return "", ""
    _, second = _keyword_at(text, first_end)
    return first, second


def inspect_statement(text: str) -> StatementShape:
    """Leading keywords and the trailing FORMAT clause of a complete non-INSERT statement."""
    keyword, second = leading_keywords(text)
    if keyword == "INSERT":
        return StatementShape(keyword=keyword, second_keyword=second, output_format=None)
    output_format, format_span, second_statement_at = _scan_statement(text)
    return StatementShape(keyword, second, output_format, second_statement_at, format_span)


_INPUT_FUNCTION = re.compile(r"\binput\s*\(", re.IGNORECASE)


class UnsupportedInsert(Exception):
    """An INSERT form the embedded engine would silently mishandle."""


class NeedMoreText(Exception):
    """The INSERT's header is not complete in the text read so far."""


def split_insert(text: str, complete: bool) -> InsertSplit | None:
    """Where the data of an INSERT starts, or None if the INSERT carries no data stream.

    `text` is the start of an INSERT statement; `complete` says whether more may follow. Returns None
    for `INSERT ... SELECT`, `INSERT ... VALUES` (run as one statement) and `FROM INFILE`; raises
    NeedMoreText when the header could still continue past the end of `text`.
    """
    depth = 0
    for match in TOKENS.finditer(text):
        kind = match.lastgroup
        if kind in _OPAQUE:
            if match.end() == len(text) and not complete:
                raise NeedMoreText
            continue
        if kind == "open":
            depth += 1
            continue
        if kind == "close":
            depth = max(0, depth - 1)
            continue
        if kind == "semi" or depth:
            continue
        word = match.group().upper()
        if word in ("SELECT", "WITH") and _INPUT_FUNCTION.search(text, match.end()):
            # chDB runs `INSERT ... SELECT ... FROM input(...)` as a plain statement whose input() reads
            # nothing: it would answer 200 with no rows written. Refuse it instead of losing the data.
            raise UnsupportedInsert(
                "INSERT ... SELECT ... FROM input() is not supported by the embedded warehouse: send the "
                "rows as INSERT INTO table (columns) FORMAT <format> instead"
            )
        if word in ("SELECT", "WITH", "VALUES", "INFILE"):
            return None
        if word != "FORMAT":
            continue
        name = _FORMAT_NAME.match(text, match.end())
        if name is None or (name.end() == len(text) and not complete):
            if complete:
                return None
            raise NeedMoreText
        if name.group(1).lower() == "values":
            # Values data may hold expressions the engine evaluates: read it whole, as SQL the access
            # checks see, never streamed past them.
            return None
        data_start = _data_start(text, name.end())
        if data_start == len(text) and not complete:
            # A line break that belongs to the header may still be on its way.
            raise NeedMoreText
        return InsertSplit(statement=text[: match.start()], input_format=name.group(1), data_start=data_start)
    if complete:
        return None
    raise NeedMoreText


def one_line(text: str, limit: int = 160) -> str:
    """The statement on one line, shortened, for logs."""
    head = " ".join(text[: limit * 2].split())
    return head if len(head) <= limit else head[: limit - 1] + "…"


def _keyword_at(text: str, pos: int) -> tuple[int, str]:
    lead = _LEADING.match(text, pos)
    word = _WORD.match(text, lead.end())
    if word is None:
        return lead.end(), ""
    return word.end(), word.group().upper()


def _scan_statement(text: str) -> tuple[str | None, tuple[int, int] | None, int | None]:
    """The name in a top-level `FORMAT <name>` that only SETTINGS or `;` may follow, where that clause
    stands, and where a second statement starts, if one follows a top-level `;`."""
    depth = 0
    candidate: str | None = None
    span: tuple[int, int] | None = None
    in_settings_tail = False
    ended = False  # a top-level `;` was seen
    skip_until = 0
    for match in TOKENS.finditer(text):
        if match.start() < skip_until:
            continue
        kind = match.lastgroup
        if kind in _OPAQUE:
            continue
        if ended and kind != "semi":
            return candidate, span if candidate else None, match.start()
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth = max(0, depth - 1)
        elif kind == "semi" and not depth:
            ended = True
            continue
        if depth or kind != "word":
            if candidate is not None and not in_settings_tail:
                candidate = None
            continue
        word = match.group().upper()
        if candidate is not None and not in_settings_tail:
            if word == "SETTINGS":
                in_settings_tail = True
                continue
            candidate = None
        if word == "FORMAT" and not in_settings_tail:
            name = _FORMAT_NAME.match(text, match.end())
            if name is not None:
                candidate = name.group(1)
                span = (match.start(), name.end())
                skip_until = name.end()
    return candidate, span if candidate else None, None


def _data_start(text: str, pos: int) -> int:
    # ClickHouse's rule: skip spaces and tabs after the format name, then one line break if present.
    end = len(text)
    while pos < end and text[pos] in " \t\f":
        pos += 1
    if pos < end and text[pos] == "\r":
        pos += 1
    if pos < end and text[pos] == "\n":
        pos += 1
    return pos


def with_client_query_ids(kill_statement: str) -> str:
    """A `KILL QUERY WHERE …` statement that reads `query_id` as the id the client gave its query.

    chDB names each query itself; the server tags every query with the client's id in `log_comment`
    (the engine's own id stays in system.processes), so `query_id = 'x'` becomes a match on that tag.
    """
    pieces, last = [], 0
    for match in TOKENS.finditer(kill_statement):
        if match.lastgroup == "word" and match.group().lower() == "query_id":
            pieces.append(kill_statement[last : match.start()])
            pieces.append("Settings['log_comment']")
            last = match.end()
    pieces.append(kill_statement[last:])
    return "".join(pieces)


_USER_FUNCTIONS = frozenset({"currentuser", "user", "current_user"})
_EMPTY_CALL = re.compile(r"\s*+\(\s*+\)")


def with_login_name(sql: str, user: str) -> str:
    """`sql` with `currentUser()` (and its aliases `user()`, `current_user()`) as the login's name.

    chDB has one user, `default`; the server has two logins, and a client asking who it is must learn
    which one it used.
    """
    if "user" not in sql.lower():
        return sql
    literal = "'" + user.replace("\\", "\\\\").replace("'", "\\'") + "'"
    pieces, last = [], 0
    for match in TOKENS.finditer(sql):
        if match.lastgroup == "word" and match.group().lower() in _USER_FUNCTIONS:
            call = _EMPTY_CALL.match(sql, match.end())
            if call:
                pieces.append(sql[last : match.start()])
                pieces.append(literal)
                last = call.end()
    pieces.append(sql[last:])
    return "".join(pieces)
