"""One HTTP request of the ClickHouse interface: authenticate, read, run on chDB, answer like a server."""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from halton_warehouse.server.access import Role, authenticate, check_client, check_settings, check_statement
from halton_warehouse.server.content_codecs import choose_response_encoding, compress_response
from halton_warehouse.server.engine import EngineConnection, Session, parse_session_timeout
from halton_warehouse.server.formats import DEFAULT_FORMAT, PLAIN_TEXT, content_type, is_setting
from halton_warehouse.server.request_body import RequestBody, Statement, parse_form, read_statement
from halton_warehouse.server.sql_scan import one_line
from halton_warehouse.server.wire_errors import (
    NOT_IMPLEMENTED,
    REQUIRED_PASSWORD,
    STD_EXCEPTION,
    ClickHouseError,
    EngineError,
)

if TYPE_CHECKING:
    from halton_warehouse.server.listener import WarehouseHTTPServer

logger = logging.getLogger(__name__)

KEEP_ALIVE_TIMEOUT = 30  # seconds an idle keep-alive connection is kept, as ClickHouse's keep_alive_timeout
_SMALL_RESPONSE = 64 << 10  # below this, headers and body leave in one write
# Statements a GET may run: ClickHouse makes GET requests readonly.
_READONLY_KEYWORDS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "SET", "USE"}
)
_PING_PATHS = frozenset({"/ping", "/replicas_status"})


@dataclass
class Outcome:
    """What a statement produced, for the response headers and the log."""

    body: bytes | memoryview = b""
    output_format: str | None = None  # set only for statements that return rows
    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    elapsed: float = 0.0
    # The chDB result whose memory `body` may view: it must outlive the response write.
    owner: Any = None

    def summary(self) -> str:
        return json.dumps(
            {
                "read_rows": str(self.read_rows),
                "read_bytes": str(self.read_bytes),
                "written_rows": str(self.written_rows),
                "written_bytes": str(self.written_bytes),
                "total_rows_to_read": "0",
                "result_rows": str(self.written_rows),
                "result_bytes": str(self.written_bytes if self.output_format is None else len(self.body)),
                "elapsed_ns": str(int(self.elapsed * 1e9)),
            },
            separators=(",", ":"),
        )


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

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.client_address[0], *args)

    def handle_one_request(self) -> None:
        # The connection counts as busy from the first byte of a request, not from when its headers are
        # parsed: a server told to stop while a request is arriving must serve it, not cut it off.
        try:
            if not self.rfile.peek(1):  # waits (up to the keep-alive timeout) for the next request
                self.close_connection = True
                return
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        self.server.request_started(self)
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
            self._send_error(refused, {}, None, time.perf_counter(), None)
            return
        if path in _PING_PATHS or (path == "/" and method == "GET" and not query_string):
            self._send(200, b"Ok.\n", {"Content-Type": PLAIN_TEXT})
        elif path == "/":
            self._serve_query(method, query_string)
        else:
            self.close_connection = True
            self._send(
                404,
                f"There is no handle {path}\n\nUse / or /ping for health checks.\n".encode(),
                {"Content-Type": PLAIN_TEXT},
            )

    def _serve_query(self, method: str, query_string: str) -> None:
        started = time.perf_counter()
        params: dict[str, str] = {}
        for name, value in parse_qsl(query_string, keep_blank_values=True):
            params.setdefault(name, value)
        query_id = params.get("query_id") or str(uuid.uuid4())
        headers = {
            "X-ClickHouse-Server-Display-Name": self.server.display_name,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": params.get("session_timezone") or self.server.engine.timezone,
        }
        statement: Statement | None = None
        body: RequestBody | None = None
        try:
            role = authenticate(self.headers, params, self.server.logins)
            body = RequestBody(
                self.rfile,
                self.headers.get("Transfer-Encoding"),
                self.headers.get("Content-Length"),
                self.headers.get("Content-Encoding"),
            )
            pieces = body.chunks()
            content_kind = self.headers.get("Content-Type", "")
            if content_kind.startswith("multipart/form-data"):
                for name, value in parse_form(content_kind, body.read_raw()).items():
                    params.setdefault(name, value)
                pieces = iter(())
            if params.get("compress") == "1" or params.get("decompress") == "1":
                raise ClickHouseError(
                    NOT_IMPLEMENTED,
                    "ClickHouse's native HTTP compression (compress=1, decompress=1) is not supported: "
                    "use Content-Encoding and enable_http_compression=1",
                )
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
            if method == "GET" and statement.shape.keyword not in _READONLY_KEYWORDS:
                raise ClickHouseError(
                    164,
                    "Cannot execute query in readonly mode. For queries over HTTP, method GET implies readonly. "
                    "You should use method POST for modifying queries",
                    name="READONLY",
                )
            outcome = self._execute(statement, params, role)
        except ClickHouseError as error:
            self._send_error(error, headers, body, started, statement)
            return
        except Exception:
            logger.exception("query %s failed inside the server", query_id)
            error = ClickHouseError(STD_EXCEPTION, "Internal error of the warehouse server (see its log)")
            self._send_error(error, headers, body, started, statement)
            return
        response_body = outcome.body
        headers["X-ClickHouse-Summary"] = outcome.summary()
        if outcome.output_format:
            headers["X-ClickHouse-Format"] = outcome.output_format
            headers["Content-Type"] = content_type(outcome.output_format)
        else:
            headers["Content-Type"] = PLAIN_TEXT
        if params.get("enable_http_compression") in ("1", "true") and response_body:
            encoding = choose_response_encoding(self.headers.get("Accept-Encoding"))
            if encoding:
                level = params.get("http_zlib_compression_level", "")
                response_body = compress_response(
                    response_body, encoding, int(level) if level.isdigit() else None
                )
                headers["Content-Encoding"] = encoding
        self._send(200, response_body, headers)
        _log_success(
            statement, outcome, len(response_body), time.perf_counter() - started, params.get("session_id")
        )

    def _execute(self, statement: Statement, params: dict[str, str], role: Role) -> Outcome:
        settings = {name: value for name, value in params.items() if is_setting(name)}
        check_settings(list(settings))
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
        try:
            # A session keeps the database it was last told (by USE or this parameter); a request
            # without one starts from `default`, as on a server.
            database = params.get("database") or (None if session else "default")
            connection.prepare(database, settings)
            if statement.insert is not None:
                outcome = _stream_insert(connection, statement)
            else:
                output_format = (
                    statement.shape.output_format or params.get("default_format") or DEFAULT_FORMAT
                )
                outcome = _run(connection, statement, output_format, bind)
            reusable = not leaves_state
            return outcome
        except EngineError:
            reusable = statement.insert is None and not leaves_state
            raise
        finally:
            if statement.shape.keyword == "USE":
                connection.forget_database()
            if session is not None:
                self.server.sessions.checkin(session)
            else:
                self.server.pools[role].release(connection, reusable)

    def _send_error(
        self,
        error: ClickHouseError,
        headers: dict[str, str],
        body: RequestBody | None,
        started: float,
        statement: Statement | None,
    ) -> None:
        headers["X-ClickHouse-Exception-Code"] = str(error.code)
        headers["Content-Type"] = PLAIN_TEXT
        if error.code == REQUIRED_PASSWORD:
            headers["WWW-Authenticate"] = 'Basic realm="ClickHouse server HTTP API"'
        if body is None or not body.consumed:
            # The rest of the body is still on the socket: this connection cannot carry another request.
            self.close_connection = True
        self._send(error.http_status, error.body(self.server.engine.version), headers)
        logger.info(
            "query failed in %.2f ms: %s %s: %s",
            (time.perf_counter() - started) * 1000,
            error.code,
            error.name,
            one_line(statement.sql) if statement else "(statement not read)",
        )

    def _send(self, status: int, body: bytes | memoryview, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
        lines.append(f"Date: {self.date_time_string()}")
        if self.close_connection:
            lines.append("Connection: Close")
        else:
            lines.append("Connection: Keep-Alive")
            lines.append(f"Keep-Alive: timeout={KEEP_ALIVE_TIMEOUT}")
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")
        if len(body) < _SMALL_RESPONSE:
            self.wfile.write(head + bytes(body))
        else:
            self.wfile.write(head)
            self.wfile.write(body)


def _log_success(
    statement: Statement, outcome: Outcome, sent: int, seconds: float, session_id: str | None
) -> None:
    logger.info(
        "query %.2f ms read=%d written=%d sent=%dB%s: %s",
        seconds * 1000,
        outcome.read_rows,
        outcome.written_rows,
        sent,
        f" session={session_id}" if session_id else "",
        one_line(statement.sql),
    )


def _run(
    connection: EngineConnection, statement: Statement, output_format: str, bind: dict[str, str]
) -> Outcome:
    result = connection.run(statement.sql, output_format, bind)
    returns_rows = statement.shape.returns_rows
    body = result.bytes() if result.size() < _SMALL_RESPONSE else result.get_memview().view()
    return Outcome(
        body=body if returns_rows or body else b"",
        output_format=output_format if returns_rows else None,
        read_rows=result.rows_read(),
        read_bytes=result.bytes_read(),
        written_rows=result.rows_written(),
        written_bytes=result.bytes_written(),
        elapsed=result.elapsed(),
        owner=result,
    )


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


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    411: "Length Required",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}
