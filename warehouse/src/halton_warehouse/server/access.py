"""Who may ask the embedded warehouse what: the checks ClickHouse's access control would make.

chDB has no users, grants or settings profiles, and its table functions read files, run programs and reach
the network with this process's rights. So the server enforces, before chDB sees a statement:

- requests come from a client, not a web page: no `Origin` header (browsers send one on every cross-site
  POST, `no-cors` included), and a `Host` that names this server (DNS rebinding);
- every request carries one of the two logins of `credentials.json`;
- nothing, for any login, reaches outside the data directory: table functions, table and database engines,
  dictionary sources and disks that read files, run programs or open connections; `INTO OUTFILE` and
  `FROM INFILE`; BACKUP and RESTORE; settings that name files; SYSTEM statements that stop the engine;
- the reader login runs queries only (and its chDB connections are `readonly = 2` besides).

The statement is scanned as ClickHouse's lexer would cut it (comments, strings, heredocs, quoted
identifiers with their escapes), so hiding a name in a comment or spelling it `` `fi\\x6ce` `` does not
pass. Where the scan and the engine could disagree, the scan sees more code, never less: it refuses a
name the engine might have read as text, not the other way round.
"""

from __future__ import annotations

import hmac
import re
from base64 import b64decode
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum

from halton_warehouse.logins import Login, WarehouseLogins
from halton_warehouse.server.sql_scan import TOKENS, StatementShape
from halton_warehouse.server.wire_errors import (
    ACCESS_DENIED,
    AUTHENTICATION_FAILED,
    REQUIRED_PASSWORD,
    ClickHouseError,
)

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


class Role(Enum):
    ADMIN = "admin"
    READER = "reader"


# Names that, called like a function (table function, engine, dictionary source, disk), reach files,
# programs or the network. Compared lower-cased: ClickHouse matches some of them case-insensitively.
_REACHING_OUT_PREFIXES = (
    "file",  # file, fileCluster, filesystem (table function and database engine), FileLog
    "s3",  # s3, s3Cluster, S3Queue
    "azure",  # azureBlobStorage(Cluster), AzureQueue
    "hdfs",
    "remote",  # remote, remoteSecure
    "cluster",  # cluster, clusterAllReplicas
    "executable",  # executable, ExecutablePool, EXECUTABLE / EXECUTABLE_POOL dictionary sources
    "mysql",
    "materializedmysql",
    "postgres",
    "materializedpostgres",
    "sqlite",
    "odbc",
    "jdbc",
    "mongo",
    "redis",
    "cassandra",
    "kafka",
    "rabbitmq",
    "nats",
    "hive",
    "iceberg",
    "deltalake",
    "hudi",
    "paimon",
    "datalake",
    "arrowflight",
    "ytsaurus",
    "prometheus",
    "catboost",  # catboostEvaluate loads a model file
    "python",  # chDB's Python() reads objects of the calling Python frame: ours
    "embeddedrocksdb",  # takes a directory of its choosing
    "keepermap",
)
_REACHING_OUT_NAMES = frozenset(
    {
        "url",
        "urlcluster",
        "input",
        "disk",
        "http",
        "clickhouse",
        "gcs",
        "oss",
        "cosn",
        "distributed",
        "backup",
    }
)
# Settings whose value is a path the engine opens.
_FILE_SETTINGS = frozenset(
    {"format_template_row", "format_template_resultset", "format_schema", "output_format_schema"}
)
# Statements that copy data to or from places outside the engine.
_OUTSIDE_KEYWORDS = frozenset({"BACKUP", "RESTORE"})
_OUTSIDE_WORDS = frozenset({"outfile", "infile"})
# SYSTEM statements that maintain the engine; the rest (SHUTDOWN, KILL, RESTART, failpoints…) may stop it.
_SYSTEM_ALLOWED = frozenset({"FLUSH", "SYNC", "STOP", "START", "DROP", "WAIT", "RELOAD", "REFRESH"})
# What the reader login may run.
_READER_KEYWORDS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "SET", "USE"}
)

_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "0": "\0", "a": "\a", "v": "\v"}


@dataclass(frozen=True)
class _Token:
    kind: str  # "word" (bare or quoted identifier) or "open"
    text: str  # the identifier as the engine reads it, lower-cased
    quoted: bool = False


def check_client(headers: Mapping[str, str], allowed_hosts: frozenset[str]) -> None:
    """Refuse requests a web page made, and requests sent to this server under another name."""
    if headers.get("Origin") is not None:
        raise ClickHouseError(
            ACCESS_DENIED,
            "Requests from web pages are refused (the request has an Origin header): connect with a "
            "ClickHouse client, not a browser",
        )
    host = _host_name(headers.get("Host", ""))
    if host not in allowed_hosts:
        raise ClickHouseError(
            ACCESS_DENIED,
            f"This server does not answer to the host name {host or '(none)'!r}: connect to "
            f"{' or '.join(sorted(allowed_hosts))}",
        )


def authenticate(headers: Mapping[str, str], params: Mapping[str, str], logins: WarehouseLogins) -> Role:
    """The role of the login the request carries, in any way ClickHouse clients send one."""
    user = headers.get("X-ClickHouse-User")
    password = headers.get("X-ClickHouse-Key")
    authorization = headers.get("Authorization", "")
    if user is None and authorization[:6].lower() == "basic ":
        try:
            user, _, password = b64decode(authorization[6:].strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            raise ClickHouseError(
                AUTHENTICATION_FAILED, "Invalid authentication: malformed Basic credentials"
            ) from None
    if user is None and ("user" in params or "password" in params):
        user, password = params.get("user", "default"), params.get("password", "")
    if user is None:
        raise ClickHouseError(
            REQUIRED_PASSWORD,
            f"Password required: log in as {logins.admin.user} or {logins.reader.user} "
            "(see credentials.json in the warehouse's data directory, or `halton-warehouse credentials`)",
        )
    for role, login in ((Role.ADMIN, logins.admin), (Role.READER, logins.reader)):
        if _same(user, password or "", login):
            return role
    raise ClickHouseError(
        AUTHENTICATION_FAILED,
        f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
    )


def check_settings(names: Iterator[str] | list[str]) -> None:
    """Refuse URL settings that name files."""
    for name in names:
        if name.lower() in _FILE_SETTINGS:
            raise _refused(f"the setting {name} names a file on the server")


def check_statement(sql: str, shape: StatementShape, role: Role) -> None:
    """Refuse what reaches outside the engine (for every login) and what writes (for the reader)."""
    if role is Role.READER and shape.keyword not in _READER_KEYWORDS:
        raise ClickHouseError(
            ACCESS_DENIED,
            f"{shape.keyword or 'This statement'} is not allowed for the read-only login: it may run "
            f"{', '.join(sorted(_READER_KEYWORDS))} only",
        )
    if shape.keyword in _OUTSIDE_KEYWORDS:
        raise _refused(f"{shape.keyword} reads or writes outside the warehouse")
    if shape.keyword == "SYSTEM" and shape.second_keyword not in _SYSTEM_ALLOWED:
        raise _refused(
            f"SYSTEM {shape.second_keyword} is not allowed here: SYSTEM "
            f"{', '.join(sorted(_SYSTEM_ALLOWED))} are"
        )
    previous: _Token | None = None
    saw_from = False
    for token in _tokens(sql):
        if token.kind == "open":
            if previous is not None and previous.kind == "word" and _reaches_out(previous.text):
                raise _refused(f"{previous.text}(…) reaches files, programs or the network")
        elif not token.quoted:
            if token.text in _OUTSIDE_WORDS:
                raise _refused(f"{token.text.upper()} reads or writes files on the server")
            if token.text in _FILE_SETTINGS:
                raise _refused(f"the setting {token.text} names a file on the server")
            if (
                previous is not None
                and previous.text == "engine"
                and not previous.quoted
                and _reaches_out(token.text)
            ):
                raise _refused(f"the {token.text} engine reaches files, programs or the network")
            saw_from = saw_from or token.text == "from"
        previous = token
    if shape.keyword == "ATTACH" and saw_from:
        raise _refused("ATTACH … FROM a path reads files outside the warehouse")


def allowed_host_names(bind_host: str, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """The names a client may use for this server: loopback ones, the bound address, and `extra`."""
    return frozenset({*LOOPBACK_NAMES, bind_host.strip("[]").lower(), *(name.lower() for name in extra)})


def _tokens(sql: str) -> Iterator[_Token]:
    for match in TOKENS.finditer(sql):
        kind = match.lastgroup
        if kind == "open":
            yield _Token("open", "(")
        elif kind == "word":
            yield _Token("word", match.group().lower())
        elif kind == "quoted":
            yield _Token("word", _unquote(match.group()).lower(), quoted=True)
        # "skip" (and the heredoc tag group inside it), "close" and "semi" name nothing.


def _unquote(quoted: str) -> str:
    quote, body = quoted[0], quoted[1:]
    if body.endswith(quote):
        body = body[:-1]
    body = body.replace(quote * 2, quote)

    def unescape(match: re.Match[str]) -> str:
        escaped = match.group(1)
        if escaped[0] == "x" and len(escaped) == 3:
            return chr(int(escaped[1:], 16))
        return _SIMPLE_ESCAPES.get(escaped, escaped)

    return _ESCAPE.sub(unescape, body)


def _reaches_out(name: str) -> bool:
    return name in _REACHING_OUT_NAMES or name.startswith(_REACHING_OUT_PREFIXES)


def _refused(reason: str) -> ClickHouseError:
    return ClickHouseError(
        ACCESS_DENIED,
        f"Not allowed on the embedded warehouse: {reason}. It serves the data in its own tables only",
    )


def _same(user: str, password: str, login: Login) -> bool:
    # Both compared in full, so timing tells nothing about which of the two was wrong.
    user_ok = hmac.compare_digest(user.encode(), login.user.encode())
    password_ok = hmac.compare_digest(password.encode(), login.password.encode())
    return user_ok and password_ok


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
