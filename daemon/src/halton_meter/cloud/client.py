"""The HTTP calls the meter makes to the cloud API, and what each answer means.

One :class:`CloudClient` per base URL. Calls that only succeed or fail (whoami, disconnect, pairing
start) raise :class:`CloudUnreachable` when no HTTP answer came back and :class:`CloudRefused` for an
HTTP error; the batch upload returns a :class:`BatchResponse` whatever the status, because the sync
pass treats each status differently (see :mod:`halton_meter.cloud.sync`).

httpx is imported on the first call that needs it, not with this module: ``cloud whoami`` (and ``cloud
resume``, which starts with it) make their one GET with the standard library, which loads in a third
of httpx's time (a CLI that answers in a blink, issue 18, item 8). Both paths follow the same rules:
no redirects, and proxies and CA bundle from the environment only for a cloud that is not on loopback.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from halton_meter import __version__
from halton_meter.hosts import is_loopback_host
from halton_meter.retry_after import parse_retry_after
from halton_meter.settings import web_origin

if TYPE_CHECKING:
    import ssl
    import urllib.request
    from email.message import Message

    import httpx

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
MAX_POLL_WAIT_S = 25.0  # the server holds a poll at most this long
HEALTH_TIMEOUT_S = 2.0  # a probe that waits longer than this is as good as "not back yet"
# Cancelling runs while the person waits at a Ctrl-C: a short wait, the code's TTL covers a lost cancel.
CANCEL_TIMEOUT_S = 5.0
REPORT_TIMEOUT_S = 5.0  # a state report must not hold up the next sync pass for long


class CloudError(Exception):
    """A call to the cloud did not succeed; ``str()`` says what happened."""


class CloudUnreachable(CloudError):
    """No HTTP answer: DNS, connection refused, TLS, timeout, connection cut."""


class CloudRefused(CloudError):
    """The cloud answered with an HTTP error status."""

    def __init__(self, status: int, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


@dataclass(frozen=True)
class PairingTicket:
    code: str
    poll_secret: str
    approve_url: str
    expires_at: datetime
    interval: float

    def to_json(self) -> dict[str, Any]:
        """What may be shown (the poll secret is not)."""
        return {"code": self.code, "approve_url": self.approve_url, "expires_at": self.expires_at.isoformat()}

    @property
    def dashboard_origin(self) -> str | None:
        """The cloud's dashboard, as its answer names it (the origin of the approve page), if a web URL."""
        parts = urlsplit(self.approve_url)
        try:
            return web_origin(f"{parts.scheme}://{parts.netloc}")
        except ValueError:
            return None


@dataclass(frozen=True)
class Approval:
    """The approved poll: the token (handed out once) and who it belongs to."""

    token: str
    workspace_id: str
    workspace_slug: str
    workspace_name: str
    device_id: str | None
    machine_id: str


@dataclass(frozen=True)
class PollAnswer:
    status: str  # pending, approved, denied, expired, consumed, not_found
    approval: Approval | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Identity:
    """``GET /v1/daemon/whoami``."""

    workspace_id: str
    workspace_slug: str
    workspace_name: str
    device_id: str | None
    machine_id: str
    hostname: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class BatchResponse:
    """The answer to one ``POST /v1/requests/batch``; ``status`` None = no answer (transport error)."""

    status: int | None
    document: dict[str, Any] | None
    detail: str
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def host_of(base_url: str) -> str:
    """How a base URL is named in messages: ``api.haltonmeter.com``, ``127.0.0.1:8000``."""
    return urlsplit(base_url).netloc or base_url


def _is_loopback(base_url: str) -> bool:
    return is_loopback_host(urlsplit(base_url).hostname)


def _refused(response: httpx.Response) -> CloudRefused:
    """The cloud's refusal of ``response``: its status, what it said, and when to try again."""
    return CloudRefused(
        response.status_code, _detail(response), parse_retry_after(response.headers.get("retry-after"))
    )


def _detail(response: httpx.Response) -> str:
    return _detail_of(response.text, response.reason_phrase)


def _detail_of(text: str, reason: str) -> str:
    """What an error answer says: FastAPI's ``detail``, else the start of the body, else the reason."""
    try:
        document = json.loads(text)
    except ValueError:
        return text.strip()[:300] or reason
    if isinstance(document, dict):
        detail = document.get("detail")
        if isinstance(detail, dict):  # FastAPI wraps some problems one level deeper
            detail = detail.get("detail")
        if detail:
            return str(detail)[:1000]
    return reason


@dataclass(frozen=True)
class _Answer:
    """An answer read with the standard library (see :meth:`CloudClient._get_plain`)."""

    status: int
    reason: str
    headers: Message
    body: bytes

    @property
    def detail(self) -> str:
        return _detail_of(self.body.decode("utf-8", "replace"), self.reason)


def _ssl_context(trust_env: bool) -> ssl.SSLContext:
    """The CA roots httpx verifies with (``httpx.create_ssl_context``): the bundle named by
    ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when the environment is trusted, else certifi's."""
    import ssl

    import certifi

    if trust_env and os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if trust_env and os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    return ssl.create_default_context(cafile=certifi.where())


def _no_redirects() -> urllib.request.HTTPRedirectHandler:
    """A redirect answer is returned as it is, as httpx does: the token is never sent on elsewhere."""
    import urllib.request

    class Refuse(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return Refuse()


class CloudClient:
    """Synchronous client (the worker runs in its own thread, the CLI in its own process)."""

    def __init__(self, base_url: str, *, timeout: float = READ_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = host_of(self.base_url)
        self._timeout = timeout
        # Corporate proxies and CA bundles from the environment apply to a real cloud, never to a
        # loopback one (a development server, or a test's fake).
        self._trust_env = not _is_loopback(self.base_url)
        self._user_agent = f"halton-meter/{__version__}"

    @cached_property
    def _http(self) -> httpx.Client:
        import httpx

        return httpx.Client(
            timeout=httpx.Timeout(self._timeout, connect=CONNECT_TIMEOUT_S),
            trust_env=self._trust_env,
            headers={"User-Agent": self._user_agent},
        )

    def close(self) -> None:
        if "_http" in self.__dict__:
            self._http.close()

    def __enter__(self) -> CloudClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            return self._http.request(method, self.base_url + path, **kwargs)
        except httpx.HTTPError as exc:
            raise CloudUnreachable(f"cannot reach {self.host}: {_describe_error(exc)}") from exc

    def _get_plain(self, path: str, headers: dict[str, str]) -> _Answer:
        """``GET path`` with the standard library (see the module docstring). One socket timeout,
        :data:`CONNECT_TIMEOUT_S`, covers the connection and each read: the answer is a few hundred bytes."""
        import http.client
        import urllib.error
        import urllib.request

        handlers: list[urllib.request.BaseHandler] = [
            _no_redirects(),
            urllib.request.ProxyHandler(None if self._trust_env else {}),
        ]
        if urlsplit(self.base_url).scheme == "https":
            handlers.append(urllib.request.HTTPSHandler(context=_ssl_context(self._trust_env)))
        request = urllib.request.Request(
            self.base_url + path, headers={"User-Agent": self._user_agent, **headers}
        )
        try:
            with urllib.request.build_opener(*handlers).open(request, timeout=CONNECT_TIMEOUT_S) as response:
                return _Answer(response.status, response.reason, response.headers, response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return _Answer(exc.code, exc.reason, exc.headers, exc.read())
        except urllib.error.URLError as exc:
            raise CloudUnreachable(f"cannot reach {self.host}: {_describe_error(exc.reason)}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise CloudUnreachable(f"cannot reach {self.host}: {_describe_error(exc)}") from exc

    @staticmethod
    def _auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    # -- pairing -------------------------------------------------------------------------------

    def start_pairing(self, *, machine_id: str, hostname: str) -> PairingTicket:
        response = self._request(
            "POST",
            "/v1/pairing/start",
            json={"machine_id": machine_id, "hostname": hostname, "meter_version": __version__},
        )
        if response.status_code != 201 and response.status_code != 200:
            raise _refused(response)
        try:
            document = response.json()
            return PairingTicket(
                code=str(document["code"]),
                poll_secret=str(document["poll_secret"]),
                approve_url=str(document["approve_url"]),
                expires_at=datetime.fromisoformat(str(document["expires_at"]).replace("Z", "+00:00")),
                interval=float(document.get("interval") or 0.0),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CloudRefused(
                response.status_code, f"unexpected answer to /v1/pairing/start ({exc})"
            ) from None

    def poll_pairing(self, poll_secret: str, *, wait_seconds: float) -> PollAnswer:
        import httpx

        wait = min(max(wait_seconds, 0.0), MAX_POLL_WAIT_S)
        response = self._request(
            "POST",
            "/v1/pairing/poll",
            json={"poll_secret": poll_secret, "wait_seconds": wait},
            timeout=httpx.Timeout(wait + READ_TIMEOUT_S / 2, connect=CONNECT_TIMEOUT_S),
        )
        if response.status_code == 404:
            return PollAnswer("not_found", detail=_detail(response))
        try:
            document = response.json()
        except ValueError:
            document = None
        if response.status_code == 410 and isinstance(document, dict):
            return PollAnswer(str(document.get("status") or "expired"), detail=_detail(response))
        if response.status_code != 200 or not isinstance(document, dict):
            raise _refused(response)
        status = str(document.get("status"))
        if status != "approved":
            return PollAnswer(status)
        try:
            approval = Approval(
                token=str(document["token"]),
                workspace_id=str(document["workspace_id"]),
                workspace_slug=str(document["workspace_slug"]),
                workspace_name=str(document["workspace_name"]),
                device_id=str(document["device_id"]) if document.get("device_id") else None,
                machine_id=str(document["machine_id"]),
            )
        except KeyError as exc:
            raise CloudRefused(200, f"the approved poll is missing {exc}") from None
        return PollAnswer("approved", approval=approval)

    def cancel_pairing(self, poll_secret: str) -> str:
        """Withdraw the code so nobody can approve it; returns the cloud's word (``cancelled``, or
        ``denied``/``expired``/``consumed`` when it was no longer pending, ``not_found``)."""
        import httpx

        response = self._request(
            "POST",
            "/v1/pairing/cancel",
            json={"poll_secret": poll_secret},
            timeout=httpx.Timeout(CANCEL_TIMEOUT_S, connect=CANCEL_TIMEOUT_S),
        )
        if response.status_code == 404:
            return "not_found"
        try:
            document = response.json()
        except ValueError:
            document = None
        if response.status_code != 200 or not isinstance(document, dict):
            raise CloudRefused(response.status_code, _detail(response))
        return str(document.get("status"))

    # -- the paired machine --------------------------------------------------------------------

    def whoami(self, token: str) -> Identity:
        answer = self._get_plain("/v1/daemon/whoami", self._auth(token))
        if answer.status != 200:
            raise CloudRefused(
                answer.status, answer.detail, parse_retry_after(answer.headers.get("retry-after"))
            )
        try:
            document = json.loads(answer.body)
            return Identity(
                workspace_id=str(document["workspace_id"]),
                workspace_slug=str(document["workspace_slug"]),
                workspace_name=str(document["workspace_name"]),
                device_id=str(document["device_id"]) if document.get("device_id") else None,
                machine_id=str(document["machine_id"]),
                hostname=str(document.get("hostname") or ""),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CloudRefused(answer.status, f"unexpected answer to /v1/daemon/whoami ({exc!r})") from None

    def disconnect(self, token: str) -> None:
        response = self._request("DELETE", "/v1/daemon/disconnect", headers=self._auth(token))
        if response.status_code not in (200, 204):
            raise CloudRefused(response.status_code, _detail(response))

    def healthy(self) -> bool:
        """``GET /healthz`` answered 200: the API and both its stores are up (no token is sent)."""
        import httpx

        try:
            response = self._http.get(self.base_url + "/healthz", timeout=HEALTH_TIMEOUT_S)
        except httpx.HTTPError as exc:
            logger.debug("health probe of %s: %s", self.host, _describe_error(exc))
            return False
        return response.status_code == 200

    def report(self, token: str, document: dict[str, Any]) -> int | None:
        """``POST /v1/daemon/report``: the meter's sync state. Returns the status (None: no answer); a report
        is best-effort, so it waits at most :data:`REPORT_TIMEOUT_S` and never raises."""
        import httpx

        try:
            response = self._http.post(
                self.base_url + "/v1/daemon/report",
                json=document,
                headers=self._auth(token),
                timeout=REPORT_TIMEOUT_S,
            )
        except httpx.HTTPError as exc:
            logger.debug("state report to %s: %s", self.host, _describe_error(exc))
            return None
        if response.status_code != 204:
            logger.info("state report to %s: HTTP %d: %s", self.host, response.status_code, _detail(response))
        return response.status_code

    def reconcile_days(self, token: str, first: date, last: date) -> list[tuple[date, int, Decimal]]:
        """``GET /v1/daemon/reconcile``: (day, rows, cost) the cloud holds for this machine, UTC days."""
        response = self._request(
            "GET",
            "/v1/daemon/reconcile",
            params={"from": first.isoformat(), "to": last.isoformat()},
            headers=self._auth(token),
        )
        if response.status_code != 200:
            raise _refused(response)
        return [
            (date.fromisoformat(d["day"]), int(d["rows"]), Decimal(str(d["cost_usd"])))
            for d in response.json()["days"]
        ]

    def reconcile_missing(self, token: str, day: date, request_uids: list[str]) -> list[str]:
        """``POST /v1/daemon/reconcile/missing``: which of ``request_uids`` (one UTC day) the cloud lacks."""
        response = self._request(
            "POST",
            "/v1/daemon/reconcile/missing",
            json={"day": day.isoformat(), "request_uids": request_uids},
            headers=self._auth(token),
        )
        if response.status_code != 200:
            raise _refused(response)
        return [str(uid) for uid in response.json()["missing"]]

    def rates(self, etag: str | None = None) -> dict[str, Any] | None:
        """``GET /v1/rates``: the cloud's price catalogue (parsed, not yet validated), or None when ``etag``
        (``If-None-Match``) names the one it has in force. No token: the catalogue is public."""
        headers = {"If-None-Match": etag} if etag else {}
        response = self._request("GET", "/v1/rates", headers=headers)
        if response.status_code == 304:
            return None
        if response.status_code != 200:
            raise _refused(response)
        try:
            document = response.json()
        except ValueError as exc:
            raise CloudRefused(response.status_code, f"GET /v1/rates answered with no JSON: {exc}") from exc
        return document

    def spend_limits(self, token: str) -> list[Any]:
        """``GET /v1/daemon/whoami``'s ``spend_limits``: the workspace's hard limits with each project's
        month-to-date spend (:func:`halton_meter.spend_limits.parse_wire` reads them)."""
        response = self._request("GET", "/v1/daemon/whoami", headers=self._auth(token))
        if response.status_code != 200:
            raise _refused(response)
        try:
            document = response.json()
        except ValueError as exc:
            raise CloudRefused(
                response.status_code, f"GET /v1/daemon/whoami answered with no JSON: {exc}"
            ) from exc
        limits = document.get("spend_limits") if isinstance(document, dict) else None
        return limits if isinstance(limits, list) else []

    def post_limit_events(self, token: str, events: list[dict[str, Any]]) -> None:
        """``POST /v1/daemon/limit-events``: calls refused at a hard limit or let through on an override."""
        response = self._request(
            "POST", "/v1/daemon/limit-events", json={"events": events}, headers=self._auth(token)
        )
        if response.status_code != 204:
            raise _refused(response)

    def post_batch(self, token: str, gzipped_body: bytes) -> BatchResponse:
        import httpx

        try:
            response = self._http.post(
                self.base_url + "/v1/requests/batch",
                content=gzipped_body,
                headers={
                    **self._auth(token),
                    "Content-Type": "application/json",
                    "Content-Encoding": "gzip",
                },
            )
        except httpx.HTTPError as exc:
            return BatchResponse(None, None, f"cannot reach {self.host}: {_describe_error(exc)}")
        try:
            document = response.json()
        except (ValueError, json.JSONDecodeError):
            document = None
        return BatchResponse(
            response.status_code,
            document if isinstance(document, dict) else None,
            _detail(response),
            parse_retry_after(response.headers.get("retry-after")),
        )


def _describe_error(exc: BaseException | str) -> str:
    """An error with no HTTP answer (httpx's or the standard library's), named by its kind."""
    if isinstance(exc, str):  # urllib's URLError may carry a bare reason
        return exc
    kind = type(exc).__name__
    text = str(exc) or kind
    return text if kind in text else f"{kind}: {text}"
