"""Fake provider servers on 127.0.0.1: small real HTTPS servers speaking each provider's wire format.

Payloads come from ``factories.py`` (the providers' documented shapes). A test steers one response
with request headers, which the meter forwards untouched:

* ``x-fake-scenario``: ``ok`` (default), ``truncate`` (the stream stops half-way and the connection
  drops), ``malformed`` (a broken SSE line before the usage), ``mid_stream_error`` (the stream sends
  half its events, then the provider's in-stream error and ends cleanly, without its closing event or
  usage: Anthropic ``event: error`` with an ``overloaded_error`` after ``message_start`` and some
  deltas; OpenAI Chat Completions and xAI a ``data: {"error": {...}}`` chunk; the Responses API an
  ``error`` event), ``429``, ``500``, ``529``, ``gzip`` (a gzip-encoded body when the client accepts
  it), ``slow`` (20 ms between stream events), ``garbage`` (200 with bytes that are neither JSON nor
  JSONL);
* ``x-fake-nonce``: written into the generated text and used as the key under which the server
  keeps the exact body bytes it sent (``FakeProvider.sent``), to compare with what the client got;
* ``x-fake-usage``: a JSON object of token counts that replace the default ones (``*_TOKENS`` below) in
  the reply's usage, streamed or not, named as the provider's wire names them (see ``USAGE_KNOBS``):
  Anthropic ``input_tokens`` (uncached), ``cache_read_input_tokens``, ``cache_creation``
  (``ephemeral_5m_input_tokens``, ``ephemeral_1h_input_tokens``), ``output_tokens`` and
  ``server_tool_use`` (``web_search_requests``); OpenAI ``prompt_tokens`` (cached included),
  ``cached_tokens``, ``completion_tokens`` (reasoning included), ``reasoning_tokens`` (the Responses
  API reports the first and third as ``input_tokens`` and ``output_tokens``); xAI the same plus
  ``cost_in_usd_ticks`` (``null``: the reply states no bill, so the meter prices it from the
  catalogue); Gemini ``promptTokenCount``, ``cachedContentTokenCount``, ``candidatesTokenCount``,
  ``thoughtsTokenCount``. An unknown key or a value that is not a whole number is answered 400,
  naming it.

OpenAI and xAI answers carry the ``service_tier`` the request asked for (``flex``, ``priority``;
``default`` otherwise), as the real APIs report the tier that served the call.

Batches, as the APIs run them (but at once): Anthropic Message Batches (create, retrieve with a
``results_url`` on the fake's own host, as the real API puts it on its own, and the results JSONL) and
OpenAI files and batches (upload, create, retrieve, and the output and error files' content). A batched
request's ``custom_id`` steers its outcome: ``errored-*``, ``canceled-*`` and ``expired-*`` (Anthropic),
``errored-*`` and ``expired-*`` (OpenAI); an Anthropic one ending in ``-us`` was served in the US
(``inference_geo``). A Messages call gets ``inference_geo`` from an ``x-fake-geo`` header.

Certificates: one throwaway CA signs a leaf for 127.0.0.1/localhost; the meter trusts that CA for
upstreams (``[proxy] upstream_ca_file``), so tests can also check that a tunnelled connection shows
the real server's certificate and not the meter's.
"""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import itertools
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from halton_meter.testing import factories

# Token counts every fake answers with unless ``x-fake-usage`` says otherwise (each provider's own wire
# convention; see factories.py).
ANTHROPIC_TOKENS = {"input_tokens": 120, "output_tokens": 45, "cache_read": 30, "cache_write_5m": 10}
OPENAI_TOKENS = {"prompt_tokens": 200, "completion_tokens": 50, "cached_tokens": 64}
RESPONSES_TOKENS = {"input_tokens": 36, "output_tokens": 87, "cached_tokens": 0, "reasoning_tokens": 20}
GEMINI_TOKENS = {"prompt": 11, "candidates": 20, "thoughts": 5}
XAI_TOKENS = {"prompt_tokens": 32, "completion_tokens": 9, "cost_in_usd_ticks": 37756000}

_OPENAI_KNOBS = {
    "prompt_tokens": "prompt_tokens",
    "cached_tokens": "cached_tokens",
    "completion_tokens": "completion_tokens",
    "reasoning_tokens": "reasoning_tokens",
}
# ``x-fake-usage`` keys (the provider's wire names, nested as on the wire) -> the factories' arguments.
USAGE_KNOBS: dict[str, dict[str, Any]] = {
    "anthropic": {
        "input_tokens": "input_tokens",
        "cache_read_input_tokens": "cache_read",
        "cache_creation": {
            "ephemeral_5m_input_tokens": "cache_write_5m",
            "ephemeral_1h_input_tokens": "cache_write_1h",
        },
        "output_tokens": "output_tokens",
        "server_tool_use": {"web_search_requests": "web_search_requests"},
    },
    "openai": _OPENAI_KNOBS,
    "xai": {**_OPENAI_KNOBS, "cost_in_usd_ticks": "cost_in_usd_ticks"},
    "gemini": {
        "promptTokenCount": "prompt",
        "cachedContentTokenCount": "cached",
        "candidatesTokenCount": "candidates",
        "thoughtsTokenCount": "thoughts",
    },
}
# Tiers the OpenAI dialect reports back as asked; any other request is served at ``default``.
_ECHOED_TIERS = ("flex", "priority", "default")


class FakeRequestError(ValueError):
    """A steering header the fake cannot follow: answered 400 with this message."""


def usage_override(provider: str, header: str | None) -> dict[str, int | None]:
    """The factory arguments an ``x-fake-usage`` header sets for ``provider`` (empty without one)."""
    if not header:
        return {}
    try:
        document = json.loads(header)
    except ValueError as exc:
        raise FakeRequestError(f"x-fake-usage is not JSON ({exc})") from exc
    knobs = USAGE_KNOBS.get(provider)
    if knobs is None:
        raise FakeRequestError(f"x-fake-usage is not supported by the {provider} fake")
    found: dict[str, int | None] = {}
    _read_knobs(document, knobs, "", found)
    return found


def _read_knobs(document: Any, knobs: dict[str, Any], path: str, found: dict[str, int | None]) -> None:
    if not isinstance(document, dict):
        raise FakeRequestError(f"x-fake-usage{path or ''}: expected a JSON object, got {document!r}")
    for key, value in document.items():
        where = f"{path}.{key}"
        knob = knobs.get(key)
        if knob is None:
            raise FakeRequestError(f"x-fake-usage: unknown key {where[1:]} (known: {', '.join(knobs)})")
        if isinstance(knob, dict):
            _read_knobs(value, knob, where, found)
        elif value is None and knob == "cost_in_usd_ticks":
            found[knob] = None
        elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FakeRequestError(f"x-fake-usage: {where[1:]} must be a whole number >= 0, got {value!r}")
        else:
            found[knob] = value


def _tier(body: dict[str, Any]) -> str:
    asked = body.get("service_tier")
    return asked if asked in _ECHOED_TIERS else "default"


# ---------------------------------------------------------------------------------------------------
# Certificates


@dataclass(frozen=True)
class TestPki:
    ca_path: Path
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))


def make_pki(folder: Path) -> TestPki:
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fake Providers Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = TestPki(folder / "fake-ca.pem", folder / "fake-leaf.pem", folder / "fake-leaf.key")
    pki.ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    pki.key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return pki


# ---------------------------------------------------------------------------------------------------
# Responses per provider


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    events: list[bytes] | None = None  # a stream: one chunk each
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # raw bytes instead of JSON (a file's content, JSONL results)
    stream_error: bytes | None = None  # the provider's in-stream error event (``mid_stream_error``)


# Bytes that are neither JSON nor JSONL (the ``garbage`` scenario).
GARBAGE = b'{"custom_id": "half a line\x00\xff\xfe not json at all\n]]]\n' + bytes(range(256))


def _nonce_text(nonce: str) -> tuple[str, ...]:
    return (f"nonce {nonce}", " says", " hello")


def anthropic_reply(
    method: str,
    path: str,
    body: dict[str, Any],
    nonce: str,
    geo: str | None = None,
    usage: dict[str, int | None] | None = None,
) -> Reply:
    if method == "POST" and path == "/v1/messages":
        model = body.get("model", "claude-sonnet-4-5")
        msg_id = f"msg_{nonce or 'fake'}"
        tokens: dict[str, Any] = {**ANTHROPIC_TOKENS, **(usage or {})}
        if geo:
            tokens["inference_geo"] = geo
        if body.get("stream"):
            return Reply(
                events=factories.anthropic_stream(
                    model=model, message_id=msg_id, text_parts=_nonce_text(nonce), **tokens
                ),
                headers={"request-id": f"req_{nonce}"},
                stream_error=factories.anthropic_stream_error(),
            )
        return Reply(
            json=factories.anthropic_message(
                model=model, message_id=msg_id, text=" ".join(_nonce_text(nonce)), **tokens
            ),
            headers={"request-id": f"req_{nonce}"},
        )
    if method == "GET" and path == "/v1/models":
        return Reply(json={"data": [{"type": "model", "id": "claude-sonnet-4-5"}], "has_more": False})
    return Reply(
        status=404, json={"type": "error", "error": {"type": "not_found_error", "message": "Not found"}}
    )


def openai_reply(
    method: str, path: str, body: dict[str, Any], nonce: str, usage: dict[str, int | None] | None = None
) -> Reply:
    model = body.get("model", "gpt-4o")
    usage = usage or {}
    tier = _tier(body)
    if method == "POST" and path == "/v1/chat/completions":
        tokens = {**OPENAI_TOKENS, **usage}
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            return Reply(
                events=factories.openai_chat_stream(
                    model=model,
                    include_usage=include,
                    completion_id=f"chatcmpl-{nonce}",
                    text_parts=_nonce_text(nonce),
                    service_tier=tier,
                    **tokens,
                ),
                stream_error=factories.openai_stream_error(),
            )
        return Reply(
            json=factories.openai_chat_completion(
                model=model,
                completion_id=f"chatcmpl-{nonce}",
                text=" ".join(_nonce_text(nonce)),
                service_tier=tier,
                **tokens,
            )
        )
    if method == "POST" and path == "/v1/responses":
        # The Responses API names the prompt and completion counts input_tokens and output_tokens.
        renamed = {"prompt_tokens": "input_tokens", "completion_tokens": "output_tokens"}
        tokens = {**RESPONSES_TOKENS, **{renamed.get(k, k): v for k, v in usage.items()}}
        if body.get("stream"):
            events = factories.openai_responses_stream(
                model=model, response_id=f"resp_{nonce}", service_tier=tier, **tokens
            )
            return Reply(events=events, stream_error=factories.openai_responses_stream_error(len(events)))
        return Reply(
            json=factories.openai_response(
                model=model, response_id=f"resp_{nonce}", service_tier=tier, **tokens
            )
        )
    if method == "POST" and path == "/v1/embeddings":
        return Reply(json=factories.openai_embedding(model=model))
    return Reply(
        status=404,
        json={"error": {"message": f"Invalid URL ({method} {path})", "type": "invalid_request_error"}},
    )


def gemini_reply(
    method: str,
    path: str,
    body: dict[str, Any],
    nonce: str,
    query: dict[str, list[str]],
    usage: dict[str, int | None] | None = None,
) -> Reply:
    head, _, action = path.rpartition(":")
    model = head.rsplit("/", 1)[-1]
    tokens = {**GEMINI_TOKENS, **(usage or {})}
    if method == "POST" and action == "generateContent":
        return Reply(
            json=factories.gemini_response(
                model_version=model,
                response_id=f"g-{nonce}",
                text=" ".join(_nonce_text(nonce)),
                **tokens,
            )
        )
    if method == "POST" and action == "streamGenerateContent":
        kw = {
            "model_version": model,
            "response_id": f"g-{nonce}",
            "parts": _nonce_text(nonce),
            **tokens,
        }
        if query.get("alt") == ["sse"]:
            return Reply(events=factories.gemini_sse_stream(**kw))
        return Reply(
            events=factories.gemini_json_array_stream(**kw), headers={"content-type": "application/json"}
        )
    return Reply(status=404, json=factories.gemini_error(404, "NOT_FOUND"))


def xai_reply(
    method: str, path: str, body: dict[str, Any], nonce: str, usage: dict[str, int | None] | None = None
) -> Reply:
    model = body.get("model", "grok-4-0709")
    if method == "POST" and path == "/v1/chat/completions":
        tokens: dict[str, Any] = {**XAI_TOKENS, **(usage or {})}
        tier = _tier(body) if body.get("service_tier") else None
        if body.get("stream"):
            return Reply(
                events=factories.xai_chat_stream(
                    model=model, completion_id=nonce or "x", service_tier=tier, **tokens
                ),
                stream_error=factories.openai_stream_error(),
            )
        return Reply(
            json=factories.xai_chat_completion(
                model=model, completion_id=nonce or "x", service_tier=tier, **tokens
            )
        )
    return Reply(status=404, json={"code": "Client specified an invalid argument", "error": "not found"})


_ANTHROPIC_ERRORS = {429: "rate_limit_error", 529: "overloaded_error"}


def error_reply(provider: str, status: int) -> Reply:
    if provider == "anthropic":
        document = factories.anthropic_error(_ANTHROPIC_ERRORS.get(status, "api_error"))
    elif provider == "gemini":
        document = factories.gemini_error(status, "RESOURCE_EXHAUSTED" if status == 429 else "INTERNAL")
    else:
        document = factories.openai_error("Rate limit reached" if status == 429 else "Server error")
    return Reply(status=status, json=document, headers={"retry-after": "1"} if status == 429 else {})


# ---------------------------------------------------------------------------------------------------
# Batches (kept per fake server)


class Batches:
    """The batches and files one fake server holds. Every batch has ended by the time it is retrieved."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.anthropic: dict[str, list[dict[str, Any]]] = {}  # batch id -> its requests
        self.files: dict[str, tuple[bytes, str]] = {}  # file id -> (content, purpose)
        self.openai: dict[str, dict[str, Any]] = {}  # batch id -> its Batch object once completed

    def _next(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids):06d}"

    # -- Anthropic Message Batches ---------------------------------------------------------------

    def anthropic_reply(self, method: str, path: str, body: dict[str, Any]) -> Reply | None:
        parts = path.removeprefix("/v1/messages/batches").strip("/").split("/")
        if method == "POST" and parts == [""]:
            requests = body.get("requests") or []
            batch_id = self._next("msgbatch_fake")
            self.anthropic[batch_id] = requests
            return Reply(json=factories.anthropic_batch(batch_id, len(requests), False, None))
        requests = self.anthropic.get(parts[0])
        if method != "GET" or requests is None:
            return None
        if len(parts) == 1:
            outcomes = [r.get("custom_id", "").split("-", 1)[0] for r in requests]
            return Reply(
                json=factories.anthropic_batch(
                    parts[0],
                    len(requests),
                    True,
                    f"{self.base_url}/v1/messages/batches/{parts[0]}/results",
                    errored=outcomes.count("errored"),
                    canceled=outcomes.count("canceled"),
                    expired=outcomes.count("expired"),
                )
            )
        if parts[1:] == ["results"]:
            lines = [self._anthropic_result(parts[0], i, r) for i, r in enumerate(requests)]
            return Reply(body=b"".join(lines), headers={"content-type": "application/binary"})
        return None

    @staticmethod
    def _anthropic_result(batch_id: str, index: int, request: dict[str, Any]) -> bytes:
        custom_id = str(request.get("custom_id", index))
        kind = custom_id.split("-", 1)[0]
        if kind == "errored":
            return factories.anthropic_batch_result(custom_id, factories.anthropic_batch_errored())
        if kind in ("canceled", "expired"):
            return factories.anthropic_batch_result(custom_id, {"type": kind})
        params = request.get("params") or {}
        tokens = {**ANTHROPIC_TOKENS, "inference_geo": "us" if custom_id.endswith("-us") else "global"}
        message = factories.anthropic_message(
            model=params.get("model", "claude-sonnet-4-5"),
            message_id=f"msg_{batch_id}_{index}",
            text=f"result {index}",
            **tokens,
        )
        return factories.anthropic_batch_result(custom_id, factories.anthropic_batch_succeeded(message))

    # -- OpenAI files and batches ----------------------------------------------------------------

    def openai_reply(
        self, method: str, path: str, body: dict[str, Any], raw: bytes, content_type: str
    ) -> Reply | None:
        if method == "POST" and path == "/v1/files":
            content, purpose, filename = _multipart_file(raw, content_type)
            file_id = self._next("file-fake")
            self.files[file_id] = (content, purpose)
            return Reply(json=factories.openai_file(file_id, len(content), purpose, filename))
        if method == "GET" and path.startswith("/v1/files/") and path.endswith("/content"):
            found = self.files.get(path.split("/")[3])
            return (
                Reply(body=found[0], headers={"content-type": "application/octet-stream"}) if found else None
            )
        if method == "POST" and path == "/v1/batches":
            return self._openai_create(body)
        if method == "GET" and path.startswith("/v1/batches/"):
            batch = self.openai.get(path.split("/")[3])
            return Reply(json=batch) if batch else None
        return None

    def _openai_create(self, body: dict[str, Any]) -> Reply | None:
        found = self.files.get(str(body.get("input_file_id")))
        if found is None:
            return None
        endpoint = str(body.get("endpoint", "/v1/chat/completions"))
        batch_id = self._next("batch_fake")
        output, errors = [], []
        lines = [json.loads(line) for line in found[0].splitlines() if line.strip()]
        for index, line in enumerate(lines):
            custom_id = str(line.get("custom_id", index))
            line_id = f"batch_req_{batch_id}_{index}"
            kind = custom_id.split("-", 1)[0]
            if kind == "errored":
                failure = factories.openai_error("Invalid model", "invalid_request_error")
                errors.append(factories.openai_batch_output(line_id, custom_id, 400, failure))
            elif kind == "expired":
                expired = {
                    "code": "batch_expired",
                    "message": "This request could not be executed before the completion window expired.",
                }
                errors.append(factories.openai_batch_output(line_id, custom_id, None, None, expired))
            else:
                output.append(
                    factories.openai_batch_output(
                        line_id, custom_id, 200, _openai_result(endpoint, line, line_id)
                    )
                )
        output_id = self._store(b"".join(output), "batch_output") if output else None
        error_id = self._store(b"".join(errors), "batch_output") if errors else None
        input_id = str(body["input_file_id"])
        self.openai[batch_id] = factories.openai_batch(
            batch_id, input_id, endpoint, True, output_id, error_id, len(lines), len(errors)
        )
        created = factories.openai_batch(batch_id, input_id, endpoint, False, None, None, len(lines), 0)
        return Reply(json=created)

    def _store(self, content: bytes, purpose: str) -> str:
        file_id = self._next("file-fake")
        self.files[file_id] = (content, purpose)
        return file_id


def _openai_result(endpoint: str, line: dict[str, Any], line_id: str) -> dict[str, Any]:
    model = (line.get("body") or {}).get("model", "gpt-4o")
    if endpoint == "/v1/responses":
        return factories.openai_response(model=model, response_id=f"resp_{line_id}", **RESPONSES_TOKENS)
    return factories.openai_chat_completion(model=model, completion_id=f"chatcmpl-{line_id}", **OPENAI_TOKENS)


def _multipart_file(raw: bytes, content_type: str) -> tuple[bytes, str, str]:
    """(file content, purpose, filename) of a multipart/form-data upload."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
    )
    content, purpose, filename = b"", "batch", "upload.jsonl"
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name == "file":
            content = part.get_payload(decode=True) or b""
            filename = part.get_filename() or filename
        elif name == "purpose":
            purpose = (part.get_payload(decode=True) or b"batch").decode()
    return content, purpose, filename


# ---------------------------------------------------------------------------------------------------
# The servers


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, fake: FakeProvider, tls: ssl.SSLContext | None) -> None:
        self.fake = fake
        self.tls = tls
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request, client_address) -> None:  # runs in the connection's thread
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stalls
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        fake.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": headers,
                "body_bytes": len(raw),
                "body_sha256": hashlib.sha256(raw).hexdigest(),
            }
        )
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        scenario = headers.get("x-fake-scenario", "ok")
        nonce = headers.get("x-fake-nonce", "")
        if scenario in ("429", "500", "529"):
            reply = error_reply(fake.name, int(scenario))
        elif scenario == "garbage":
            reply = Reply(body=GARBAGE, headers={"content-type": "application/octet-stream"})
        else:
            try:
                reply = fake.reply(
                    self.command,
                    parts.path,
                    body if isinstance(body, dict) else {},
                    nonce,
                    parse_qs(parts.query),
                    raw=raw,
                    headers=headers,
                )
            except FakeRequestError as exc:
                reply = Reply(status=400, json={"error": {"message": str(exc), "type": "fake_request_error"}})
        if reply.events is not None:
            self._stream(reply, scenario, nonce)
        else:
            self._json(reply, scenario, nonce, headers.get("accept-encoding", ""))

    def _json(self, reply: Reply, scenario: str, nonce: str, accept_encoding: str) -> None:
        payload = reply.body if reply.body is not None else json.dumps(reply.json).encode()
        self.send_response(reply.status)
        self.send_header("content-type", reply.headers.pop("content-type", "application/json"))
        for k, v in reply.headers.items():
            self.send_header(k, v)
        if scenario == "gzip" and "gzip" in accept_encoding:
            payload = gzip.compress(payload)
            self.send_header("content-encoding", "gzip")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        # Recorded before the last byte goes out: a client that has its answer must find it recorded.
        self.server.fake.sent[nonce] = payload
        self.wfile.write(payload)

    def _stream(self, reply: Reply, scenario: str, nonce: str) -> None:
        events = list(reply.events or [])
        if scenario == "malformed":
            events.insert(len(events) - 2, b"data: {this is not json\n\n")
        if scenario == "mid_stream_error" and reply.stream_error is not None:
            # What was generated so far, then the error; the server ends the body properly.
            events = [*events[: len(events) // 2 + 1], reply.stream_error]
        cut = len(events) // 2 if scenario == "truncate" else None
        self.send_response(reply.status)
        self.send_header(
            "content-type", reply.headers.pop("content-type", "text/event-stream; charset=utf-8")
        )
        self.send_header("cache-control", "no-cache")
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        sent = bytearray()
        delay = self.server.fake.event_delay + (0.02 if scenario == "slow" else 0.0)
        for i, event in enumerate(events):
            if cut is not None and i == cut:
                self.server.fake.sent[nonce] = bytes(sent)
                self.wfile.flush()
                # Drop the connection mid-body: no terminating chunk, as a dying server would.
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if delay:
                time.sleep(delay)
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()
            sent += event
        self.server.fake.sent[nonce] = bytes(sent)  # before the stream ends (see _json)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class FakeProvider:
    """One provider's fake API on ``https://127.0.0.1:<port>``."""

    def __init__(self, name: str, pki: TestPki | None) -> None:
        self.name = name
        self.requests: list[dict[str, Any]] = []
        self.sent: dict[str, bytes] = {}
        self.event_delay = 0.0
        self._server = _Server(self, pki.server_context() if pki else None)
        self.port = self._server.server_address[1]
        self.url = f"{'https' if pki else 'http'}://127.0.0.1:{self.port}"
        self.batches = Batches(self.url)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=f"fake-{name}", daemon=True
        )

    def reply(
        self,
        method: str,
        path: str,
        body: dict[str, Any],
        nonce: str,
        query: dict[str, list[str]],
        raw: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        headers = headers or {}
        usage = usage_override(self.name, headers.get("x-fake-usage")) if self.name in USAGE_KNOBS else {}
        if self.name == "anthropic":
            if path.startswith("/v1/messages/batches"):
                return self.batches.anthropic_reply(method, path, body) or anthropic_reply(
                    method, "", {}, nonce
                )
            return anthropic_reply(method, path, body, nonce, headers.get("x-fake-geo"), usage)
        if self.name == "openai":
            if path.startswith(("/v1/files", "/v1/batches")):
                found = self.batches.openai_reply(method, path, body, raw, headers.get("content-type", ""))
                return found or openai_reply(method, path, {}, nonce)
            return openai_reply(method, path, body, nonce, usage)
        if self.name == "gemini":
            return gemini_reply(method, path, body, nonce, query, usage)
        if self.name == "xai":
            return xai_reply(method, path, body, nonce, usage)
        return Reply(json={"hello": "from a host the meter does not meter"})

    def start(self) -> FakeProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class FakeProviders:
    pki: TestPki
    anthropic: FakeProvider
    openai: FakeProvider
    gemini: FakeProvider
    xai: FakeProvider
    other: FakeProvider  # a non-provider HTTPS site, for the tunnel test

    def by_name(self, name: str) -> FakeProvider:
        return getattr(self, name)

    @property
    def providers(self) -> dict[str, FakeProvider]:
        return {n: self.by_name(n) for n in ("anthropic", "openai", "gemini", "xai")}


@contextmanager
def fake_providers(folder: Path, *, tls: bool = True) -> Iterator[FakeProviders]:
    pki = make_pki(folder)
    servers = [
        FakeProvider(n, pki if tls else None).start() for n in ("anthropic", "openai", "gemini", "xai")
    ]
    other = FakeProvider("other", pki).start()
    try:
        yield FakeProviders(pki, *servers, other)
    finally:
        for server in (*servers, other):
            server.stop()
