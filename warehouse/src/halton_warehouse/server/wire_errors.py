"""ClickHouse's error shape over HTTP: `Code: N. DB::Exception: ... (NAME) (version V)`, a status, a header.

Clients read the code from `X-ClickHouse-Exception-Code` and show the body; the status follows
ClickHouse's own `exceptionCodeToHTTPStatus` (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp, v26.9).
"""

from __future__ import annotations

import re

# Codes (src/Common/ErrorCodes.cpp) the server raises itself, by name.
BAD_ARGUMENTS = 36
NOT_IMPLEMENTED = 48
UNKNOWN_FORMAT = 73
CANNOT_READ_ALL_DATA = 33
REQUIRED_PASSWORD = 194
QUERY_IS_TOO_LARGE = 229
CANNOT_DECOMPRESS = 271
SESSION_NOT_FOUND = 372
SESSION_IS_LOCKED = 373
INVALID_SESSION_TIMEOUT = 374
HTTP_LENGTH_REQUIRED = 381
AUTHENTICATION_FAILED = 516
UNSUPPORTED_METHOD = 1
ACCESS_DENIED = 497
STD_EXCEPTION = 1001

_NAMES = {
    BAD_ARGUMENTS: "BAD_ARGUMENTS",
    NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    UNKNOWN_FORMAT: "UNKNOWN_FORMAT",
    CANNOT_READ_ALL_DATA: "CANNOT_READ_ALL_DATA",
    REQUIRED_PASSWORD: "REQUIRED_PASSWORD",
    QUERY_IS_TOO_LARGE: "QUERY_IS_TOO_LARGE",
    CANNOT_DECOMPRESS: "CANNOT_DECOMPRESS",
    SESSION_NOT_FOUND: "SESSION_NOT_FOUND",
    SESSION_IS_LOCKED: "SESSION_IS_LOCKED",
    INVALID_SESSION_TIMEOUT: "INVALID_SESSION_TIMEOUT",
    HTTP_LENGTH_REQUIRED: "HTTP_LENGTH_REQUIRED",
    AUTHENTICATION_FAILED: "AUTHENTICATION_FAILED",
    UNSUPPORTED_METHOD: "UNSUPPORTED_METHOD",
    ACCESS_DENIED: "ACCESS_DENIED",
    STD_EXCEPTION: "STD_EXCEPTION",
}

_STATUS_BY_CODE: dict[int, int] = {
    194: 401,  # REQUIRED_PASSWORD
    **dict.fromkeys((192, 193, 497, 512, 516), 403),  # UNKNOWN_USER, WRONG_PASSWORD, ACCESS_DENIED, ...
    **dict.fromkeys(
        # BAD_ARGUMENTS, CANNOT_PARSE_*, SYNTAX_ERROR, TYPE_MISMATCH, INCORRECT_DATA, ...
        (
            6,
            8,
            15,
            25,
            26,
            27,
            36,
            37,
            38,
            41,
            44,
            53,
            62,
            72,
            117,
            123,
            167,
            168,
            223,
            321,
            376,
            427,
            441,
            675,
            676,
        ),
        400,
    ),
    **dict.fromkeys(
        # UNKNOWN_TABLE, UNKNOWN_DATABASE, UNKNOWN_SETTING, UNKNOWN_FUNCTION, UNKNOWN_FORMAT, ...
        (46, 47, 50, 56, 60, 63, 73, 78, 81, 115, 152, 336, 511),
        404,
    ),
    229: 413,  # QUERY_IS_TOO_LARGE
    48: 501,  # NOT_IMPLEMENTED
    **dict.fromkeys((76, 209, 439), 503),  # CANNOT_OPEN_FILE, SOCKET_TIMEOUT, CANNOT_SCHEDULE_TASK
    381: 411,  # HTTP_LENGTH_REQUIRED
    159: 408,  # TIMEOUT_EXCEEDED
    779: 415,  # UNSUPPORTED_MEDIA_TYPE
}

_ENGINE_CODE = re.compile(r"Code: (\d++)\.")
_ENGINE_NAME = re.compile(r"\(([A-Z][A-Z0-9_]*+)\)(?: \(version [^)]*+\))?\s*+$")
_VERSION_SUFFIX = re.compile(r" \(version [^)]*+\)\s*+$")


class ClickHouseError(Exception):
    """An error to answer in ClickHouse's shape."""

    def __init__(self, code: int, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.name = name or _NAMES.get(code, "UNKNOWN_EXCEPTION")
        self.message = message

    @property
    def http_status(self) -> int:
        return _STATUS_BY_CODE.get(self.code, 500)

    def body(self, version: str) -> bytes:
        """`Code: N. DB::Exception: <message>. (NAME) (version V)` and a newline, as the server writes it."""
        return (
            f"Code: {self.code}. DB::Exception: {self.message}. ({self.name}) (version {version})\n".encode()
        )


class EngineError(ClickHouseError):
    """An error chDB raised: its text is already `Code: N. DB::Exception: ... (NAME)`."""

    def __init__(self, text: str) -> None:
        text = text.strip()
        code_match = _ENGINE_CODE.search(text[:64])
        name_match = _ENGINE_NAME.search(text[-200:])
        code = int(code_match.group(1)) if code_match else STD_EXCEPTION
        name = name_match.group(1) if name_match else None
        super().__init__(code, text, name=name)
        self.text = text if code_match else f"Code: {code}. DB::Exception: {text}. ({self.name})"

    def body(self, version: str) -> bytes:
        # chDB appends the version to some messages (streaming inserts) and not to others.
        bare = _VERSION_SUFFIX.sub("", self.text)
        return f"{bare} (version {version})\n".encode()
