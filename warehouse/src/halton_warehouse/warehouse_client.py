"""`connect(url)`: one way to reach the warehouse, whether a server or the in-process engine."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

# Settings every connection gets, so a chDB engine and a server behave the same for our queries.
COMMON_SETTINGS: dict[str, Any] = {"date_time_input_format": "best_effort"}


class WarehouseURLError(ValueError):
    """The warehouse URL cannot be understood."""


def connect(url: str, **settings: Any) -> Client:
    """A clickhouse-connect client for `url`.

    `http(s)://user:pass@host:port/database?setting=value` reaches a ClickHouse server (or the embedded
    warehouse server); `chdb:///absolute/path` opens the chDB engine in this process.
    """
    parts = urlsplit(url)
    merged = {**COMMON_SETTINGS, **dict(parse_qsl(parts.query)), **settings}
    if parts.scheme == "chdb":
        if not parts.path:
            raise WarehouseURLError(f"chdb URL needs a data path, e.g. chdb:///var/lib/halton: {url!r}")
        return clickhouse_connect.get_client(dsn=f"chdb://{parts.path}", settings=merged)
    if parts.scheme not in ("http", "https"):
        raise WarehouseURLError(
            f"unsupported warehouse URL scheme {parts.scheme!r} in {_redact(url)!r}: use http, https or chdb"
        )
    if not parts.hostname:
        raise WarehouseURLError(f"warehouse URL has no host: {_redact(url)!r}")
    database = parts.path.strip("/") or None
    return clickhouse_connect.get_client(
        host=parts.hostname,
        port=parts.port or (8443 if parts.scheme == "https" else 8123),
        username=unquote(parts.username) if parts.username else "default",
        password=unquote(parts.password) if parts.password else "",
        database=database,
        secure=parts.scheme == "https",
        settings=merged,
    )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
