"""Output formats as the HTTP interface labels them (Content-Type), and the parameters that are not settings."""

from __future__ import annotations

DEFAULT_FORMAT = "TabSeparated"
PLAIN_TEXT = "text/plain; charset=UTF-8"

_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "TabSeparatedRaw": "text/tab-separated-values; charset=UTF-8",
    "TSVRaw": "text/tab-separated-values; charset=UTF-8",
    "TabSeparatedWithNames": "text/tab-separated-values; charset=UTF-8",
    "TSVWithNames": "text/tab-separated-values; charset=UTF-8",
    "TabSeparatedWithNamesAndTypes": "text/tab-separated-values; charset=UTF-8",
    "TSVWithNamesAndTypes": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "CSVWithNames": "text/csv; charset=UTF-8; header=present",
    "CSVWithNamesAndTypes": "text/csv; charset=UTF-8; header=present",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "JSONCompactEachRow": "application/x-ndjson; charset=UTF-8",
    "JSONStringsEachRow": "application/x-ndjson; charset=UTF-8",
    "XML": "application/xml; charset=UTF-8",
}
_BINARY = frozenset(
    {
        "Native",
        "RowBinary",
        "RowBinaryWithNames",
        "RowBinaryWithNamesAndTypes",
        "Arrow",
        "ArrowStream",
        "Parquet",
        "ORC",
        "Avro",
        "Protobuf",
        "MsgPack",
        "BSONEachRow",
        "Npy",
    }
)

# URL parameters the HTTP layer consumes itself. Every other parameter is a ClickHouse setting,
# except the progress/compression knobs of the HTTP interface, which this server handles (or has
# no use for) and chDB would reject or ignore.
TRANSPORT_PARAMETERS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
        "stacktrace",
        "enable_http_compression",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
    }
)


def content_type(fmt: str) -> str:
    if fmt in _CONTENT_TYPES:
        return _CONTENT_TYPES[fmt]
    if fmt in _BINARY:
        return "application/octet-stream"
    if fmt.startswith("JSON"):
        return "application/json; charset=UTF-8"
    return PLAIN_TEXT


def is_setting(name: str) -> bool:
    return name not in TRANSPORT_PARAMETERS and not name.startswith(("param_", "http_"))
