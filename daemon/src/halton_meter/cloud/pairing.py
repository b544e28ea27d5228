"""The pairing dance: ask for a one-time code, then long-poll until it is approved, denied or expires.

A pairing that ends without a token (Ctrl-C, ``--timeout-seconds``, the daemon stopping) is withdrawn
with :func:`withdraw`, so a code nobody will collect cannot be approved into a device whose token no
machine holds. Used by ``halton-meter cloud connect`` (in the CLI process) and by the daemon when the dashboard calls
the loopback ``POST /v1/cloud/connect``. Each poll is a long-poll (the server answers as soon as the
pairing changes, or after ``wait_seconds``); between two *pending* answers we wait the poll interval
(``--poll-interval-seconds``, or the server's ``interval`` if that is longer). Transport errors and
429/5xx only delay the next poll: the code stays valid on the server until it expires.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from halton_meter.cloud.client import (
    MAX_POLL_WAIT_S,
    Approval,
    CloudClient,
    CloudRefused,
    CloudUnreachable,
    PairingTicket,
)
from halton_meter.cloud.state import now_utc

logger = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL_S = 2.0
DEFAULT_TIMEOUT_S = 600.0  # the cloud-side code TTL is 10 minutes
MAX_RETRY_DELAY_S = 30.0
FRESH_CODE = "run `halton-meter cloud connect` for a fresh code"
# How a pairing can end while its code is still approvable on the cloud: these must withdraw it.
WITHDRAW_ON = frozenset({"timeout", "cancelled", "refused"})


class PairingFailed(RuntimeError):
    """Pairing ended without a token; ``kind`` says how, the message what to do next."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def request_code(client: CloudClient, *, machine_id: str, hostname: str) -> PairingTicket:
    try:
        return client.start_pairing(machine_id=machine_id, hostname=hostname)
    except CloudUnreachable as exc:
        raise PairingFailed(
            "unreachable", f"{exc}. Check the network and [cloud] base_url (or --base-url), then retry."
        ) from None
    except CloudRefused as exc:
        if exc.status == 429:
            wait = f" in {exc.retry_after:.0f}s" if exc.retry_after else " in a minute"
            raise PairingFailed(
                "rate_limited", f"{client.host} is rate-limiting pairing requests: retry{wait}."
            ) from None
        raise PairingFailed("refused", f"{client.host} refused to start a pairing ({exc}).") from None


def wait_for_approval(
    client: CloudClient,
    ticket: PairingTicket,
    *,
    poll_interval: float = DEFAULT_POLL_INTERVAL_S,
    timeout: float = DEFAULT_TIMEOUT_S,
    stop: threading.Event | None = None,
    on_retry: Callable[[str], None] | None = None,
) -> Approval:
    """Poll until approved; raises :class:`PairingFailed` (denied, expired, timeout, cancelled...)."""
    start = time.monotonic()
    deadline = start + timeout
    code_deadline = start + max((ticket.expires_at - now_utc()).total_seconds(), 0.0)
    interval = max(poll_interval, ticket.interval, 0.01)
    failures = 0

    def pause(seconds: float) -> None:
        seconds = max(min(seconds, deadline - time.monotonic(), code_deadline - time.monotonic()), 0.0)
        if stop is not None:
            stop.wait(seconds)
        else:
            time.sleep(seconds)

    while True:
        now = time.monotonic()
        if stop is not None and stop.is_set():
            raise PairingFailed("cancelled", "Pairing cancelled; nothing was written.")
        if now >= code_deadline:
            raise PairingFailed(
                "expired", f"Pairing code {ticket.code} expired (codes last 10 minutes): {FRESH_CODE}."
            )
        if now >= deadline:
            raise PairingFailed(
                "timeout",
                f"Gave up waiting for approval after {timeout:g}s (--timeout-seconds); nothing was written: "
                f"{FRESH_CODE}.",
            )
        wait = min(MAX_POLL_WAIT_S, deadline - now, code_deadline - now)
        try:
            answer = client.poll_pairing(ticket.poll_secret, wait_seconds=wait)
        except CloudUnreachable as exc:
            failures += 1
            logger.warning("pairing poll failed (%d in a row): %s", failures, exc)
            if on_retry is not None and failures == 1:
                on_retry(f"{exc}; retrying")
            pause(min(MAX_RETRY_DELAY_S, interval * 2**failures))
            continue
        except CloudRefused as exc:
            if exc.status == 429 or exc.status >= 500:
                failures += 1
                logger.warning("pairing poll answered HTTP %d; retrying", exc.status)
                pause(
                    exc.retry_after
                    if exc.retry_after is not None
                    else min(MAX_RETRY_DELAY_S, interval * 2**failures)
                )
                continue
            raise PairingFailed("refused", f"{client.host} refused the pairing poll ({exc}).") from None
        failures = 0
        if answer.status == "approved" and answer.approval is not None:
            return answer.approval
        if answer.status == "pending":
            pause(interval)
            continue
        raise _ended(answer.status, ticket.code)


def withdraw(client: CloudClient, ticket: PairingTicket) -> str:
    """Cancel ``ticket``'s code on the cloud; returns the sentence for the person (or the log)."""
    try:
        answer = client.cancel_pairing(ticket.poll_secret)
    except (CloudUnreachable, CloudRefused) as exc:
        logger.warning("could not cancel pairing code %s: %s", ticket.code, exc)
        until = ticket.expires_at.strftime("%H:%M UTC")
        return (
            f"Could not cancel code {ticket.code} on {client.host} ({exc}): it stays approvable until it "
            f"expires at {until}. Do not approve it; nothing on this machine will collect it."
        )
    if answer in ("cancelled", "not_found", "expired", "denied"):
        return f"Code {ticket.code} cancelled on {client.host}: it can no longer be approved."
    logger.warning("cancelling pairing code %s: the cloud answered %r", ticket.code, answer)
    return f"{client.host} did not cancel code {ticket.code} (it answered {answer!r})."


def _ended(status: str, code: str) -> PairingFailed:
    if status == "denied":
        return PairingFailed(
            "denied",
            f"Pairing {code} was denied in the browser; nothing was written. "
            "Run `halton-meter cloud connect` to try again.",
        )
    if status == "expired":
        return PairingFailed("expired", f"Pairing code {code} expired (codes last 10 minutes): {FRESH_CODE}.")
    if status == "consumed":
        return PairingFailed("consumed", f"Pairing code {code} was already used: {FRESH_CODE}.")
    if status == "cancelled":  # the pairing was withdrawn (a dashboard pairing the daemon stopped)
        return PairingFailed("withdrawn", f"Pairing code {code} was cancelled: {FRESH_CODE}.")
    if status == "not_found":
        return PairingFailed("not_found", f"The cloud no longer knows code {code} (expired?): {FRESH_CODE}.")
    return PairingFailed("refused", f"Unexpected pairing status {status!r}: {FRESH_CODE}.")
