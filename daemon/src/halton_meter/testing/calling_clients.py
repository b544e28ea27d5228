"""Clients that call the fake providers through a running meter and keep the calls they got answers for.

Used by the meter's durability tests and by the cross-component test that follows those calls into the
cloud. Each call carries a nonce the fake provider echoes as its request id (``chatcmpl-<nonce>``), so a
stored row names the client call it came from.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import ssl
import threading
import uuid
from pathlib import Path

import httpx

from halton_meter.testing.processes import MeterProcess

CLIENTS = 8


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
