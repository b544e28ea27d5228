"""The meter never loses a call it let through: the real daemon, real clients, kill -9 and stop.

Eight clients call the fake providers through the running meter (plain httpx, half in base-URL mode,
half as an ``HTTPS_PROXY`` client trusting the meter's CA; streamed and not; see
``halton_meter.testing.calling_clients``) and keep their own list of the calls they got a complete
answer for. Whatever happens to the meter (SIGKILL three times, a stop while they call, a torn journal,
a journal it cannot write), every one of those calls must end up in SQLite exactly once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from halton_meter.capture import CapturedCall
from halton_meter.journal import frame
from halton_meter.pidfile import running_pid
from halton_meter.recorder import encode_call
from halton_meter.testing.calling_clients import Clients, stored_nonces
from halton_meter.testing.processes import MeterProcess, wait_for
from halton_meter.usage import RequestInfo, Usage


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
