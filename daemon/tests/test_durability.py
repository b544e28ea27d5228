"""The meter never loses a call it let through: the real daemon, real clients, kill -9 and stop.

Eight clients call the fake providers through the running meter (plain httpx, half in base-URL mode,
half as an ``HTTPS_PROXY`` client trusting the meter's CA; streamed and not) and keep their own list of the calls they got a complete answer for. Whatever happens to the
meter (SIGKILL three times, a stop while they call, a torn journal, a journal it cannot write), every
one of those calls must end up in SQLite exactly once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import ssl
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from halton_meter.capture import CapturedCall
from halton_meter.journal import frame
from halton_meter.pidfile import running_pid
from halton_meter.recorder import encode_call
from halton_meter.testing.processes import MeterProcess, wait_for
from halton_meter.usage import RequestInfo, Usage

CLIENTS = 8


def meter_process(tmp_path: Path, fakes: Any) -> MeterProcess:
    providers = "".join(
        f'[providers.{name}]\nupstream = "{fake.url}"\n' for name, fake in fakes.providers.items()
    )
    return MeterProcess(
        tmp_path,
        base_url="http://127.0.0.1:9",  # the cloud stays off
        proxy_config=f'upstream_ca_file = "{fakes.pki.ca_path}"\n',
        extra_config=providers,
    )


class Clients:
    """Clients calling through the meter until told to stop; each keeps the nonces it got answers for.

    A call counts as answered only when the client read the whole response: a 200 with the JSON body
    parsed, or a stream read to its end (``[DONE]`` seen and the body closed cleanly). Failed calls
    (the meter is down, the connection dropped) are retried with a new nonce, as an SDK would.
    """

    def __init__(self, meter: MeterProcess, count: int = CLIENTS) -> None:
        self.port = meter.port
        self.ca = ssl.create_default_context(cafile=str(meter.paths.ca_cert))
        self.answered: list[str] = []
        self.failures = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._kill: int | None = None  # a pid to SIGKILL on the next answer
        self._killed = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(count)]

    def __enter__(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def count(self) -> int:
        with self._lock:
            return len(self.answered)

    def kill_on_next_answer(self, pid: int, timeout: float = 30.0) -> None:
        """SIGKILL ``pid`` from the client thread that gets the next complete answer, the moment it
        has it: the writer (50 ms cadence) has not committed that call yet."""
        self._killed.clear()
        with self._lock:
            self._kill = pid
        assert self._killed.wait(timeout), "no answer came"

    def _run(self, index: int) -> None:
        if index % 2:
            client = httpx.Client(trust_env=False, timeout=10)
            url = f"http://127.0.0.1:{self.port}/openai/v1/chat/completions"
        else:
            proxy = f"http://127.0.0.1:{self.port}"
            client = httpx.Client(proxy=proxy, verify=self.ca, trust_env=False, timeout=10)
            url = "https://api.openai.com/v1/chat/completions"  # the meter sends it to the fake
        with client:
            n = 0
            while not self._stop.is_set():
                nonce = uuid.uuid4().hex
                n += 1
                try:
                    call = self._stream if (index // 2 + n) % 2 else self._plain
                    ok = call(client, url, nonce)
                except httpx.HTTPError:
                    ok = False
                with self._lock:
                    if ok:
                        self.answered.append(nonce)
                        if self._kill is not None:
                            os.kill(self._kill, signal.SIGKILL)
                            self._kill = None
                            self._killed.set()
                    else:
                        self.failures += 1
                if not ok:
                    self._stop.wait(0.02)  # the meter is restarting: do not spin

    @staticmethod
    def _plain(client: httpx.Client, url: str, nonce: str) -> bool:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": nonce}]}
        response = client.post(url, json=body, headers={"x-fake-nonce": nonce})
        return response.status_code == 200 and response.json()["id"] == f"chatcmpl-{nonce}"

    @staticmethod
    def _stream(client: httpx.Client, url: str, nonce: str) -> bool:
        body = {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": nonce}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with client.stream("POST", url, json=body, headers={"x-fake-nonce": nonce}) as response:
            if response.status_code != 200:
                return False
            lines = list(response.iter_lines())  # to the end of the body: a cut stream raises
        return "data: [DONE]" in lines


def stored_nonces(db: Path) -> list[str]:
    """The nonce of every stored OpenAI chat row (its provider request id is chatcmpl-<nonce>)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        ids = [
            r[0] for r in conn.execute("SELECT provider_request_id FROM requests WHERE provider = 'openai'")
        ]
    return [i.removeprefix("chatcmpl-") for i in ids if i]


def assert_each_answered_call_stored_once(clients: Clients, db: Path) -> None:
    stored = stored_nonces(db)
    counts: dict[str, int] = {}
    for nonce in stored:
        counts[nonce] = counts.get(nonce, 0) + 1
    missing = [n for n in clients.answered if n not in counts]
    doubled = [n for n, c in counts.items() if c > 1]
    assert not missing, f"{len(missing)} of {len(clients.answered)} answered calls are not in SQLite"
    assert not doubled, f"stored more than once: {doubled[:5]}"


def start(meter: MeterProcess) -> None:
    started = meter.cli("start")
    assert started.returncode == 0, started.stdout + started.stderr


def test_sigkill_three_times_while_eight_clients_call_loses_no_answered_call(tmp_path, fakes):
    meter = meter_process(tmp_path, fakes)
    start(meter)
    try:
        with Clients(meter) as clients:
            for _ in range(3):
                seen = clients.count()
                wait_for(lambda seen=seen: clients.count() >= seen + 150, 60, "clients to get answers")
                pid = meter.pid()
                clients.kill_on_next_answer(pid)
                wait_for(lambda: running_pid(meter.paths.pidfile) is None, 15, "the killed daemon to be gone")
                start(meter)
            seen = clients.count()
            wait_for(lambda: clients.count() >= seen + 50, 60, "answers after the last restart")
        wait_for(
            lambda: set(clients.answered) <= set(stored_nonces(meter.paths.db)),
            30,
            "every answered call to be in SQLite",
        )
        assert_each_answered_call_stored_once(clients, meter.paths.db)
    finally:
        meter.cli("stop")


def test_a_stop_while_clients_call_saves_every_answered_call(tmp_path, fakes):
    meter = meter_process(tmp_path, fakes)
    start(meter)
    with Clients(meter) as clients:
        wait_for(lambda: clients.count() >= 200, 60, "clients to get answers")
        stopped = meter.cli("stop")
        assert stopped.returncode == 0, stopped.stderr
        assert "all captured calls are saved" in stopped.stdout
    # The daemon is gone: what SQLite holds now is all it will ever hold.
    assert running_pid(meter.paths.pidfile) is None
    assert_each_answered_call_stored_once(clients, meter.paths.db)
    assert not list(meter.paths.journal.glob("*.log")), "a clean stop leaves no journal behind"


def journaled_call(nonce: str) -> CapturedCall:
    now = datetime.now(UTC)
    return CapturedCall(
        request_uid=uuid.uuid4(),
        info=RequestInfo("openai", "/v1/chat/completions", "gpt-4o", streamed=False),
        usage=Usage(
            model_served="gpt-4o",
            provider_request_id=f"chatcmpl-{nonce}",
            input_tokens=200,
            output_tokens=50,
            cache_read_tokens=64,
            complete=True,
        ),
        status_code=200,
        started_at=now,
        ended_at=now,
        ttfb_ms=3,
    )


def test_a_torn_journal_is_replayed_up_to_the_tear_with_a_visible_count(tmp_path, fakes):
    meter = meter_process(tmp_path, fakes)
    meter.paths.journal.mkdir()
    whole = [frame(encode_call(journaled_call(n))) for n in ("first", "second")]
    torn = frame(encode_call(journaled_call("torn")))
    (meter.paths.journal / "00000007.log").write_bytes(b"".join(whole) + torn[: len(torn) // 2])
    start(meter)
    try:
        assert sorted(stored_nonces(meter.paths.db)) == ["first", "second"]
        status = meter.json("status")
        assert status["capture_errors"]["by_kind"].get("journal.torn") == 1, status["capture_errors"]
        log = meter.paths.daemon_log.read_text()
        assert "skipped a torn last record" in log
        assert not (meter.paths.journal / "00000007.log").exists()
        # And the meter works on: a new call is stored, the replayed ones are not stored twice.
        with Clients(meter, 1) as clients:
            wait_for(lambda: clients.count() >= 3, 30, "calls after the replay")
        wait_for(lambda: set(clients.answered) <= set(stored_nonces(meter.paths.db)), 10, "new calls stored")
        assert_each_answered_call_stored_once(clients, meter.paths.db)
        assert sorted(stored_nonces(meter.paths.db)).count("first") == 1
    finally:
        meter.cli("stop")


def test_a_journal_that_cannot_be_written_fails_open_and_is_counted(tmp_path, fakes):
    meter = meter_process(tmp_path, fakes)
    meter.paths.journal.write_text("not a folder: the journal cannot be opened here\n")
    start(meter)
    try:
        with Clients(meter, 2) as clients:
            wait_for(lambda: clients.count() >= 20, 30, "calls through a meter without a journal")
        assert clients.failures == 0  # every call went through
        wait_for(lambda: set(clients.answered) <= set(stored_nonces(meter.paths.db)), 10, "calls stored")

        def counted() -> bool:
            errors = meter.json("status")["capture_errors"]["by_kind"]
            return errors.get("journal.write", 0) >= len(clients.answered)

        wait_for(counted, 10, "journal failures counted in status")
    finally:
        meter.cli("stop")
