"""One HTTP request of the ClickHouse interface: authenticate, read, run on chDB, answer like a server."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from halton_warehouse.server.access import Role, authenticate, check_client, check_settings, check_statement
from halton_warehouse.server.compressed_blocks import BlockEncoder
from halton_warehouse.server.content_codecs import ResponseEncoder, choose_response_encoding
from halton_warehouse.server.engine import (
    ConnectionPool,
    EngineConnection,
    Session,
    parse_session_timeout,
    quote_identifier,
)
from halton_warehouse.server.formats import DEFAULT_FORMAT, PLAIN_TEXT, content_type, is_setting
from halton_warehouse.server.native_revision import WITH_TIME_ZONES, NativeForRevision, parse_revision
from halton_warehouse.server.request_body import RequestBody, Statement, parse_form, read_statement
from halton_warehouse.server.response_writer import KEEP_ALIVE_TIMEOUT, SMALL_RESPONSE, ResponseWriter
from halton_warehouse.server.sql_scan import one_line, with_client_query_ids, with_login_name
from halton_warehouse.server.wire_errors import (
    BAD_ARGUMENTS,
    REQUIRED_PASSWORD,
    STD_EXCEPTION,
    ClickHouseError,
    EngineError,
)

if TYPE_CHECKING:
    from halton_warehouse.server.listener import WarehouseHTTPServer

logger = logging.getLogger(__name__)

_PROGRESS_INTERVAL_MS = 100  # ClickHouse's default http_headers_progress_interval_ms
_SPOOL_IN_MEMORY = 8 << 20  # wait_end_of_query=1 holds this much of a result in memory, the rest on disk
_SPOOL_READ = 1 << 20
# Statements chDB can stream (it refuses the rest: those are answered whole).
_STREAMABLE = frozenset({"SELECT", "WITH"})
# Statements a GET may run: ClickHouse makes GET requests readonly.
_READONLY_KEYWORDS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "SET", "USE"}
)
_PING_PATHS = frozenset({"/ping", "/replicas_status"})
# Request headers ClickHouse reads as these URL parameters (the JDBC driver sends the format this way).
_PARAMETER_HEADERS = {
    "X-ClickHouse-Format": "default_format",
    "X-ClickHouse-Database": "database",
    "X-ClickHouse-Query-Id": "query_id",
}


@dataclass
class Outcome:
    """What a statement produced, for the response headers and the log."""

    output_format: str | None = None  # set only for statements that return rows
    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    result_rows: int = 0
    result_bytes: int = 0
    elapsed: float = 0.0
    failed_in_stream: bool = False

    def headers(self) -> dict[str, str]:
        summary = json.dumps(
            {
                "read_rows": str(self.read_rows),
                "read_bytes": str(self.read_bytes),
                "written_rows": str(self.written_rows),
                "written_bytes": str(self.written_bytes),
                "total_rows_to_read": "0",
                "result_rows": str(self.result_rows if self.output_format else self.written_rows),
                "result_bytes": str(self.result_bytes if self.output_format else self.written_bytes),
                "elapsed_ns": str(int(self.elapsed * 1e9)),
            },
            separators=(",", ":"),
        )
        headers = {"X-ClickHouse-Summary": summary}
        if self.output_format:
            headers["X-ClickHouse-Format"] = self.output_format
            headers["Content-Type"] = content_type(self.output_format)
        else:
            headers["Content-Type"] = PLAIN_TEXT
        return headers


class _Progress:
    """The engine's progress reports for one request: kept for the summary, passed on as headers."""

    def __init__(self, writer: ResponseWriter) -> None:
        self.latest: dict[str, int] = {}
        self._writer = writer

    def __call__(self, payload: dict[str, int]) -> None:
        self.latest = payload
        self._writer.progress(payload)


class ClickHouseRequestHandler(BaseHTTPRequestHandler):
    """Serves `/`, `/ping` and `/replicas_status` on one keep-alive connection."""

    server: WarehouseHTTPServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = KEEP_ALIVE_TIMEOUT

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_HEAD(self) -> None:
        # As ClickHouse: the health check's head (Content-Length of "Ok.\n"), without a body.
        self._send_plain(200, "Ok.\n", head_only=True)

    def do_OPTIONS(self) -> None:
        # ClickHouse answers a CORS preflight with 204; no web page may query this server, so no
        # Access-Control-Allow-Origin follows.
        self.close_connection = self.close_connection or bool(self.headers.get("Content-Length"))
        self._send_plain(204, "", allow="GET, POST, HEAD, OPTIONS")

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.client_address[0], *args)

    def handle_one_request(self) -> None:
        # The connection counts as busy from the first byte of a request, not from when its headers are
        # parsed: a server told to stop while a request is arriving must serve it, not cut it off.
        if not self.server.wait_for_request(self.connection, KEEP_ALIVE_TIMEOUT):
            self.close_connection = True
            return
        try:
            super().handle_one_request()
        finally:
            if self.server.request_finished(self):
                self.close_connection = True

    def _serve(self, method: str) -> None:
        path, _, query_string = self.path.partition("?")
        try:
            check_client(self.headers, self.server.allowed_hosts)
        except ClickHouseError as refused:
            self.close_connection = True
            writer = ResponseWriter(self.wfile, self.date_time_string(), {})
            self._send_error(refused, writer, None, time.perf_counter(), None)
            return
        if path in _PING_PATHS or (path == "/" and method == "GET" and not query_string):
            self._send_plain(200, "Ok.\n")
        elif path == "/":
            self._serve_query(method, query_string)
        else:
            self.close_connection = True
            self._send_plain(404, f"There is no handle {path}\n\nUse / or /ping for health checks.\n")

    def _serve_query(self, method: str, query_string: str) -> None:
        started = time.perf_counter()
        params: dict[str, str] = {}
        for name, value in parse_qsl(query_string, keep_blank_values=True):
            params.setdefault(name, value)
        for header, name in _PARAMETER_HEADERS.items():
            if self.headers.get(header):
                params.setdefault(name, self.headers[header])
        query_id = params.get("query_id") or str(uuid.uuid4())
        writer = ResponseWriter(
            self.wfile,
            self.date_time_string(),
            {
                "X-ClickHouse-Server-Display-Name": self.server.display_name,
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Timezone": params.get("session_timezone") or self.server.engine.timezone,
            },
        )
        statement: Statement | None = None
        body: RequestBody | None = None
        try:
            role = authenticate(self.headers, params, self.server.logins)
            self._configure(writer, params)
            body = RequestBody(
                self.rfile,
                self.headers.get("Transfer-Encoding"),
                self.headers.get("Content-Length"),
                self.headers.get("Content-Encoding"),
                compressed_blocks=params.get("decompress") in ("1", "true"),
            )
            pieces = body.chunks()
            content_kind = self.headers.get("Content-Type", "")
            external: dict[str, bytes] = {}
            if content_kind.startswith("multipart/form-data"):
                fields, external = parse_form(content_kind, body.read_raw())
                for name, value in fields.items():
                    params.setdefault(name, value)
                pieces = iter(())
            statement = read_statement(params.get("query", ""), pieces)
            if not statement.shape.keyword and not statement.sql.strip():
                raise ClickHouseError(62, "Empty query", name="SYNTAX_ERROR")
            if statement.shape.second_statement_at is not None:
                at = statement.shape.second_statement_at
                raise ClickHouseError(
                    62,
                    f"Syntax error (Multi-statements are not allowed): failed at position {at + 1} (end of query): "
                    f"{one_line(statement.sql[at:], 40)}",
                    name="SYNTAX_ERROR",
                )
            check_statement(statement.sql, statement.shape, role)
            if statement.insert is None and statement.raw is None:
                login = self.server.logins.admin if role is Role.ADMIN else self.server.logins.reader
                statement = dataclasses.replace(statement, sql=with_login_name(statement.sql, login.user))
            if method == "GET" and statement.shape.keyword not in _READONLY_KEYWORDS:
                raise ClickHouseError(
                    164,
                    "Cannot execute query in readonly mode. For queries over HTTP, method GET implies readonly. "
                    "You should use method POST for modifying queries",
                    name="READONLY",
                )
            with self.server.running.register(query_id):
                outcome = self._execute(statement, params, role, query_id, writer, external)
        except ClickHouseError as error:
            self._send_error(error, writer, body, started, statement)
            return
        except OSError:
            raise  # the client went away; the server logs it quietly
        except Exception:
            logger.exception("query %s failed inside the server", query_id)
            error = ClickHouseError(STD_EXCEPTION, "Internal error of the warehouse server (see its log)")
            self._send_error(error, writer, body, started, statement)
            return
        finally:
            if writer.close_connection:
                self.close_connection = True
        _log_success(statement, outcome, time.perf_counter() - started, params.get("session_id"))

    def _configure(self, writer: ResponseWriter, params: dict[str, str]) -> None:
        """The transport settings of the request: progress headers and response compression."""
        if params.get("send_progress_in_http_headers") in ("1", "true"):
            interval = params.get("http_headers_progress_interval_ms", "")
            writer.send_progress(int(interval) if interval.isdigit() else _PROGRESS_INTERVAL_MS)
        if params.get("compress") in ("1", "true"):
            writer.compress_with(BlockEncoder())
        elif params.get("enable_http_compression") in ("1", "true"):
            encoding = choose_response_encoding(self.headers.get("Accept-Encoding"))
            if encoding:
                level = params.get("http_zlib_compression_level", "")
                writer.compress_with(ResponseEncoder(encoding, int(level) if level.isdigit() else None))

    def _execute(
        self,
        statement: Statement,
        params: dict[str, str],
        role: Role,
        query_id: str,
        writer: ResponseWriter,
        external: dict[str, bytes],
    ) -> Outcome:
        described = {f"{table}_{part}" for table in external for part in ("structure", "types", "format")}
        settings = {
            name: value for name, value in params.items() if is_setting(name) and name not in described
        }
        check_settings(list(settings))
        # The client's query id, where KILL QUERY WHERE query_id = … finds it (sql_scan.with_client_query_ids).
        settings.setdefault("log_comment", query_id)
        readonly = role is Role.READER
        bind = {name[6:]: value for name, value in params.items() if name.startswith("param_")}
        session_id = params.get("session_id")
        session: Session | None = None
        if session_id:
            session = self.server.sessions.checkout(
                session_id,
                parse_session_timeout(params.get("session_timeout")),
                params.get("session_check") == "1",
                readonly=readonly,
            )
            connection = session.connection
        else:
            connection = self.server.pools[role].acquire()
        # State that would outlive this request on a pooled connection: session statements, and
        # `readonly`, which a later SET cannot undo.
        leaves_state = statement.shape.changes_session or settings.get("readonly", "0") not in ("0", "")
        reusable = False
        restore_database: str | None = None
        progress = _Progress(writer)
        writer.on_client_gone = lambda: self.server.running.kill_soon(query_id)
        try:
            # A session keeps the database it was last told (by USE or this parameter); a request
            # without one starts from `default`, as on a server.
            database = params.get("database") or (None if session else "default")
            if session is not None and params.get("database"):
                # The parameter is this request's: the session keeps its own current database.
                restore_database = connection.current_database()
            connection.prepare(database, settings)
            if external:
                leaves_state = True  # the temporary tables stay on the connection
                _load_external_tables(connection, external, params)
            connection.on_progress(progress)
            if statement.insert is not None:
                outcome = _stream_insert(connection, statement)
                writer.send_whole(200, outcome.headers(), b"")
            else:
                output_format = (
                    statement.shape.output_format or params.get("default_format") or DEFAULT_FORMAT
                )
                # A DESCRIBE while this connection streams goes to another one, in the same database
                # (asked now: a streaming connection cannot answer); external data lives only here.
                describe_elsewhere = None
                if not external:
                    where = database
                    if where is None and params.get("client_protocol_version"):
                        where = connection.current_database()
                    describe_elsewhere = functools.partial(
                        _run_on_another, self.server.pools[role], where or "default", settings
                    )
                outcome = _run(
                    connection,
                    statement,
                    output_format,
                    bind,
                    writer,
                    progress,
                    params,
                    self.server.engine.version,
                    describe_elsewhere,
                )
            reusable = not leaves_state and not writer.client_gone
            return outcome
        except EngineError:
            reusable = statement.insert is None and not leaves_state
            raise
        finally:
            connection.on_progress(None)
            if statement.shape.keyword == "USE":
                connection.forget_database()
            elif restore_database is not None:
                try:
                    connection.prepare(restore_database, connection.url_settings or {})
                except (
                    EngineError
                ):  # the statement dropped it: the session is left where ClickHouse leaves it
                    connection.forget_database()
            if session is not None:
                for name in external:  # a server drops external tables after their query
                    with contextlib.suppress(EngineError):
                        connection.run(f"DROP TEMPORARY TABLE IF EXISTS {quote_identifier(name)}")
                self.server.sessions.checkin(session)
            else:
                self.server.pools[role].release(connection, reusable)

    def _send_error(
        self,
        error: ClickHouseError,
        writer: ResponseWriter,
        body: RequestBody | None,
        started: float,
        statement: Statement | None,
    ) -> None:
        headers = {"X-ClickHouse-Exception-Code": str(error.code), "Content-Type": PLAIN_TEXT}
        if error.code == REQUIRED_PASSWORD:
            headers["WWW-Authenticate"] = 'Basic realm="ClickHouse server HTTP API"'
        if body is None or not body.consumed or self.close_connection:
            # The rest of the body is still on the socket: this connection cannot carry another request.
            writer.close_connection = True
        if error.http_status in (401, 403) or not writer.compresses_errors:
            # As ClickHouse: a refused login is answered plain, compress=1 or not.
            writer.compress_with(None)
        writer.send_whole(error.http_status, headers, error.body(self.server.engine.version))
        if writer.close_connection:
            self.close_connection = True
        logger.info(
            "query failed in %.2f ms: %s %s: %s",
            (time.perf_counter() - started) * 1000,
            error.code,
            error.name,
            one_line(statement.sql) if statement else "(statement not read)",
        )

    def _send_plain(
        self, status: int, text: str, *, head_only: bool = False, allow: str | None = None
    ) -> None:
        writer = ResponseWriter(self.wfile, self.date_time_string(), {})
        writer.close_connection = self.close_connection
        headers = {"Content-Type": PLAIN_TEXT, **({"Allow": allow} if allow else {})}
        writer.send_whole(status, headers, text.encode(), head_only=head_only)


def _log_success(statement: Statement, outcome: Outcome, seconds: float, session_id: str | None) -> None:
    logger.info(
        "query %.2f ms read=%d written=%d result=%d rows/%dB%s%s: %s",
        seconds * 1000,
        outcome.read_rows,
        outcome.written_rows,
        outcome.result_rows,
        outcome.result_bytes,
        " (failed in the stream)" if outcome.failed_in_stream else "",
        f" session={session_id}" if session_id else "",
        one_line(statement.sql),
    )


def _load_external_tables(
    connection: EngineConnection, tables: dict[str, bytes], params: dict[str, str]
) -> None:
    """External data: each file becomes a temporary table of its name for this query, as on a server.

    Its columns come from `<name>_structure` ("a UInt32, b String") or `<name>_types` ("UInt32,String",
    columns then named _1, _2, …), its format from `<name>_format` (TabSeparated by default).
    """
    for name, data in tables.items():
        structure = params.get(f"{name}_structure")
        if not structure and params.get(f"{name}_types"):
            types = [kind.strip() for kind in params[f"{name}_types"].split(",")]
            structure = ", ".join(f"_{index} {kind}" for index, kind in enumerate(types, start=1))
        if not structure:
            raise ClickHouseError(
                BAD_ARGUMENTS,
                f"External data {name!r} has no structure: send {name}_structure or {name}_types with it",
            )
        table = quote_identifier(name)
        connection.run(f"CREATE TEMPORARY TABLE {table} ({structure}) ENGINE = Memory")
        raw = connection.raw
        try:
            inserter = raw.send_insert(f"INSERT INTO {table}", params.get(f"{name}_format") or DEFAULT_FORMAT)
            raw.insert_append(inserter, data)
            raw.insert_done(inserter)
        except RuntimeError as exc:
            raise EngineError(str(exc)) from None


def _run(
    connection: EngineConnection,
    statement: Statement,
    output_format: str,
    bind: dict[str, str],
    writer: ResponseWriter,
    progress: _Progress,
    params: dict[str, str],
    version: str,
    describe_elsewhere: Callable[[str | bytes, str, dict[str, str]], Any] | None,
) -> Outcome:
    """Run a statement that is not a streaming INSERT and answer it: rows stream as chDB makes them."""
    started = time.perf_counter()
    native = _native_for_client(output_format, params)
    if (
        native is not None
        and describe_elsewhere is None
        and native.revision >= WITH_TIME_ZONES
        and statement.shape.keyword in _STREAMABLE
    ):
        native.learn_types(_result_types(connection.run, statement, bind))
    pieces = None
    if statement.shape.keyword in _STREAMABLE:
        pieces = connection.stream(statement.for_engine, output_format, bind)
    if pieces is None:
        sql = statement.for_engine
        if statement.shape.keyword == "KILL" and statement.shape.second_keyword == "QUERY":
            rewritten = with_client_query_ids(statement.sql)
            sql = rewritten.encode("latin-1") if statement.raw is not None else rewritten
        result = connection.run(sql, output_format, bind)
        returns_rows = statement.shape.returns_rows
        body = result.bytes() if result.size() < SMALL_RESPONSE else result.get_memview().view()
        if native is not None and returns_rows:
            if native.needs_types(body) and describe_elsewhere and statement.shape.keyword in _STREAMABLE:
                native.learn_types(_result_types(connection.run, statement, bind))
            body = native.rewrite(body)
        outcome = Outcome(
            output_format=output_format if returns_rows else None,
            read_rows=result.rows_read(),
            read_bytes=result.bytes_read(),
            written_rows=result.rows_written(),
            written_bytes=result.bytes_written(),
            result_rows=result.rows_read() if returns_rows else 0,
            result_bytes=len(body),
            elapsed=result.elapsed(),
        )
        writer.send_whole(200, outcome.headers(), body if returns_rows or body else b"")
        return outcome
    outcome = Outcome(output_format=output_format)
    try:
        produced = pieces
        if native is not None and describe_elsewhere is not None:
            produced = _types_learnt(pieces, native, connection, statement, bind, describe_elsewhere)
        bodies = _bodies(produced, native)
        if params.get("wait_end_of_query") in ("1", "true"):
            _send_when_complete(bodies, writer, outcome, progress, started)
        else:
            _send_as_produced(bodies, writer, outcome, progress, started, version)
    finally:
        pieces.close()  # before its end: cancels the query (the client went away)
    return outcome


def _native_for_client(output_format: str, params: dict[str, str]) -> NativeForRevision | None:
    """The rewriter of chDB's Native into what a client of its client_protocol_version reads, if needed."""
    if output_format != "Native":
        return None
    revision = parse_revision(params.get("client_protocol_version"))
    return NativeForRevision(revision) if revision else None


def _types_learnt(
    pieces: Iterator[Any],
    native: NativeForRevision,
    connection: EngineConnection,
    statement: Statement,
    bind: dict[str, str],
    describe_elsewhere: Callable[[str | bytes, str, dict[str, str]], Any],
) -> Iterator[Any]:
    """The pieces, once `native` knows the result's types if it needs them (chDB's Native names a zoned
    top-level DateTime plain `DateTime`; only a DESCRIBE of the query tells its zone).

    Only a result with such a column pays for the DESCRIBE: on this connection when the result ended
    within its first piece, else (the stream still holds this connection) on another one of the pool.
    """
    first = next(pieces, None)
    if first is None:
        return iter(())
    head = [first]
    if native.needs_types(first.get_memview().view()):
        second = next(pieces, None)
        if second is not None:
            head.append(second)
        run = connection.run if second is None else describe_elsewhere
        native.learn_types(_result_types(run, statement, bind))
    return itertools.chain(head, pieces)


def _run_on_another(
    pool: ConnectionPool,
    database: str,
    settings: dict[str, str],
    sql: str | bytes,
    fmt: str,
    bind: dict[str, str],
) -> Any:
    """`sql` on a pooled connection told the same database and URL settings (this one is streaming)."""
    other = pool.acquire()
    done = False
    try:
        other.prepare(database, settings)
        result = other.run(sql, fmt, bind)
        done = True
        return result
    finally:
        pool.release(other, done)


def _result_types(
    run: Callable[[str | bytes, str, dict[str, str]], Any], statement: Statement, bind: dict[str, str]
) -> list[str] | None:
    query = statement.shape.without_format(statement.sql).rstrip().rstrip(";")
    # New lines around the query: a trailing comment in it must not swallow the closing parenthesis.
    describe = f"DESCRIBE (\n{query}\n) SETTINGS describe_compact_output = 1"
    try:
        result = run(
            describe.encode("latin-1") if statement.raw is not None else describe, "JSONCompactEachRow", bind
        )
    except EngineError as error:
        # The query itself reports what is wrong with it; without its types, zones stay as chDB writes them.
        logger.info("DESCRIBE of a Native result failed, zones not restored: %s", one_line(error.message))
        return None
    return [json.loads(line)[1] for line in result.bytes().decode().splitlines() if line]


def _bodies(
    pieces: Iterator[Any], native: NativeForRevision | None
) -> Iterator[tuple[bytes | memoryview, int]]:
    """Each piece chDB produced as the bytes the client gets (Native rewritten for its revision), with its rows."""
    for piece in pieces:
        data, rows = piece.get_memview().view(), piece.rows_read()
        yield (native.rewrite(data, rows) if native is not None else data), rows


def _count(
    outcome: Outcome, body: tuple[bytes | memoryview, int], progress: _Progress, started: float
) -> None:
    outcome.result_rows += body[1]
    outcome.result_bytes += len(body[0])
    outcome.read_rows = max(outcome.result_rows, progress.latest.get("read_rows", 0))
    outcome.read_bytes = progress.latest.get("read_bytes", 0)
    outcome.elapsed = time.perf_counter() - started


def _send_as_produced(
    bodies: Iterator[tuple[bytes | memoryview, int]],
    writer: ResponseWriter,
    outcome: Outcome,
    progress: _Progress,
    started: float,
    version: str,
) -> None:
    """Stream the pieces; a result that ends within its first piece goes out whole, with its length.

    Holding one piece back means the summary of a small result is exact and an error in the second
    piece still gets a proper error response; past that, rows leave as the engine produces them.
    """
    first = next(bodies, None)
    if first is not None:
        _count(outcome, first, progress, started)
    second = next(bodies, None) if first is not None else None
    if second is None:
        writer.send_whole(200, outcome.headers(), first[0] if first is not None else b"")
        return
    _count(outcome, second, progress, started)
    writer.start_stream(outcome.headers())
    try:
        writer.write(first[0])
        del first
        writer.write(second[0])
        del second
        for body in bodies:
            _count(outcome, body, progress, started)
            writer.write(body[0])
    except ClickHouseError as error:  # the engine's, or a block this server cannot rewrite
        outcome.failed_in_stream = True
        writer.fail_stream(error.body(version))
        logger.info("query failed after %d rows were sent: %s", outcome.result_rows, one_line(error.message))
        return
    writer.end_stream()


def _send_when_complete(
    bodies: Iterator[tuple[bytes | memoryview, int]],
    writer: ResponseWriter,
    outcome: Outcome,
    progress: _Progress,
    started: float,
) -> None:
    """wait_end_of_query=1: the whole result first (spilled to disk past a few MB), then the response."""
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
        for body in bodies:
            spool.write(body[0])
            _count(outcome, body, progress, started)
        spool.seek(0)
        if outcome.result_bytes < _SPOOL_IN_MEMORY:
            writer.send_whole(200, outcome.headers(), spool.read())
            return
        writer.start_stream(outcome.headers())
        while data := spool.read(_SPOOL_READ):
            writer.write(data)
        writer.end_stream()


def _stream_insert(connection: EngineConnection, statement: Statement) -> Outcome:
    assert statement.insert is not None and statement.data is not None
    raw = connection.raw
    try:
        inserter = raw.send_insert(statement.sql, statement.insert.input_format)
    except RuntimeError as exc:
        raise EngineError(str(exc)) from None
    try:
        for piece in statement.data:
            raw.insert_append(inserter, piece)
        result = raw.insert_done(inserter)
    except BaseException as exc:
        try:
            raw.insert_cancel(inserter)
        except RuntimeError:
            logger.debug("cancelling a failed insert also failed", exc_info=True)
        if isinstance(exc, RuntimeError):
            raise EngineError(str(exc)) from None
        raise
    return Outcome(
        read_rows=result.rows_written(),
        read_bytes=result.bytes_written(),
        written_rows=result.rows_written(),
        written_bytes=result.bytes_written(),
        elapsed=result.elapsed(),
    )
