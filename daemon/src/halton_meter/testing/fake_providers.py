"""Fake provider servers on 127.0.0.1: small real HTTPS servers speaking each provider's wire format.

Payloads come from ``factories.py`` (the providers' documented shapes). A test steers one response
with request headers, which the meter forwards untouched:

* ``x-fake-scenario``: ``ok`` (default), ``truncate`` (the stream stops half-way and the connection
  drops), ``malformed`` (a broken SSE line before the usage), ``429``, ``500``, ``gzip`` (a
  gzip-encoded body when the client accepts it), ``slow`` (20 ms between stream events);
* ``x-fake-nonce``: written into the generated text and used as the key under which the server
  keeps the exact body bytes it sent (``FakeProvider.sent``), to compare with what the client got.

Certificates: one throwaway CA signs a leaf for 127.0.0.1/localhost; the meter trusts that CA for
upstreams (``[proxy] upstream_ca_file``), so tests can also check that a tunnelled connection shows
the real server's certificate and not the meter's.
"""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from halton_meter.testing import factories

# Token counts every fake answers with (each provider's own wire convention; see factories.py).
ANTHROPIC_TOKENS = {"input_tokens": 120, "output_tokens": 45, "cache_read": 30, "cache_write_5m": 10}
OPENAI_TOKENS = {"prompt_tokens": 200, "completion_tokens": 50, "cached_tokens": 64}
RESPONSES_TOKENS = {"input_tokens": 36, "output_tokens": 87, "cached_tokens": 0, "reasoning_tokens": 20}
GEMINI_TOKENS = {"prompt": 11, "candidates": 20, "thoughts": 5}
XAI_TOKENS = {"prompt_tokens": 32, "completion_tokens": 9, "cost_in_usd_ticks": 37756000}


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


def _nonce_text(nonce: str) -> tuple[str, ...]:
    return (f"nonce {nonce}", " says", " hello")


def anthropic_reply(method: str, path: str, body: dict[str, Any], nonce: str) -> Reply:
    if method == "POST" and path == "/v1/messages":
        model = body.get("model", "claude-sonnet-4-5")
        msg_id = f"msg_{nonce or 'fake'}"
        if body.get("stream"):
            return Reply(
                events=factories.anthropic_stream(
                    model=model, message_id=msg_id, text_parts=_nonce_text(nonce), **ANTHROPIC_TOKENS
                ),
                headers={"request-id": f"req_{nonce}"},
            )
        return Reply(
            json=factories.anthropic_message(
                model=model, message_id=msg_id, text=" ".join(_nonce_text(nonce)), **ANTHROPIC_TOKENS
            ),
            headers={"request-id": f"req_{nonce}"},
        )
    if method == "GET" and path == "/v1/models":
        return Reply(json={"data": [{"type": "model", "id": "claude-sonnet-4-5"}], "has_more": False})
    return Reply(
        status=404, json={"type": "error", "error": {"type": "not_found_error", "message": "Not found"}}
    )


def openai_reply(method: str, path: str, body: dict[str, Any], nonce: str) -> Reply:
    model = body.get("model", "gpt-4o")
    if method == "POST" and path == "/v1/chat/completions":
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            return Reply(
                events=factories.openai_chat_stream(
                    model=model,
                    include_usage=include,
                    completion_id=f"chatcmpl-{nonce}",
                    text_parts=_nonce_text(nonce),
                    **OPENAI_TOKENS,
                )
            )
        return Reply(
            json=factories.openai_chat_completion(
                model=model,
                completion_id=f"chatcmpl-{nonce}",
                text=" ".join(_nonce_text(nonce)),
                **OPENAI_TOKENS,
            )
        )
    if method == "POST" and path == "/v1/responses":
        if body.get("stream"):
            return Reply(
                events=factories.openai_responses_stream(
                    model=model, response_id=f"resp_{nonce}", **RESPONSES_TOKENS
                )
            )
        return Reply(
            json=factories.openai_response(model=model, response_id=f"resp_{nonce}", **RESPONSES_TOKENS)
        )
    if method == "POST" and path == "/v1/embeddings":
        return Reply(json=factories.openai_embedding(model=model))
    return Reply(
        status=404,
        json={"error": {"message": f"Invalid URL ({method} {path})", "type": "invalid_request_error"}},
    )


def gemini_reply(
    method: str, path: str, body: dict[str, Any], nonce: str, query: dict[str, list[str]]
) -> Reply:
    head, _, action = path.rpartition(":")
    model = head.rsplit("/", 1)[-1]
    if method == "POST" and action == "generateContent":
        return Reply(
            json=factories.gemini_response(
                model_version=model,
                response_id=f"g-{nonce}",
                text=" ".join(_nonce_text(nonce)),
                **GEMINI_TOKENS,
            )
        )
    if method == "POST" and action == "streamGenerateContent":
        kw = {
            "model_version": model,
            "response_id": f"g-{nonce}",
            "parts": _nonce_text(nonce),
            **GEMINI_TOKENS,
        }
        if query.get("alt") == ["sse"]:
            return Reply(events=factories.gemini_sse_stream(**kw))
        return Reply(
            events=factories.gemini_json_array_stream(**kw), headers={"content-type": "application/json"}
        )
    return Reply(status=404, json=factories.gemini_error(404, "NOT_FOUND"))


def xai_reply(method: str, path: str, body: dict[str, Any], nonce: str) -> Reply:
    model = body.get("model", "grok-4-0709")
    if method == "POST" and path == "/v1/chat/completions":
        if body.get("stream"):
            return Reply(
                events=factories.xai_chat_stream(model=model, completion_id=nonce or "x", **XAI_TOKENS)
            )
        return Reply(
            json=factories.xai_chat_completion(model=model, completion_id=nonce or "x", **XAI_TOKENS)
        )
    return Reply(status=404, json={"code": "Client specified an invalid argument", "error": "not found"})


def error_reply(provider: str, status: int) -> Reply:
    if provider == "anthropic":
        document = factories.anthropic_error("rate_limit_error" if status == 429 else "api_error")
    elif provider == "gemini":
        document = factories.gemini_error(status, "RESOURCE_EXHAUSTED" if status == 429 else "INTERNAL")
    else:
        document = factories.openai_error("Rate limit reached" if status == 429 else "Server error")
    return Reply(status=status, json=document, headers={"retry-after": "1"} if status == 429 else {})


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
        if scenario in ("429", "500"):
            reply = error_reply(fake.name, int(scenario))
        else:
            reply = fake.reply(
                self.command, parts.path, body if isinstance(body, dict) else {}, nonce, parse_qs(parts.query)
            )
        if reply.events is not None:
            self._stream(reply, scenario, nonce)
        else:
            self._json(reply, scenario, nonce, headers.get("accept-encoding", ""))

    def _json(self, reply: Reply, scenario: str, nonce: str, accept_encoding: str) -> None:
        payload = json.dumps(reply.json).encode()
        self.send_response(reply.status)
        self.send_header("content-type", "application/json")
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
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=f"fake-{name}", daemon=True
        )

    def reply(
        self, method: str, path: str, body: dict[str, Any], nonce: str, query: dict[str, list[str]]
    ) -> Reply:
        if self.name == "anthropic":
            return anthropic_reply(method, path, body, nonce)
        if self.name == "openai":
            return openai_reply(method, path, body, nonce)
        if self.name == "gemini":
            return gemini_reply(method, path, body, nonce, query)
        if self.name == "xai":
            return xai_reply(method, path, body, nonce)
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
