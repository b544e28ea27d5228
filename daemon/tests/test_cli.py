"""The command line: CliRunner for each command, and a real start/stop of the detached daemon."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from halton_meter.catalogue import load_catalogue
from halton_meter.cli import main
from halton_meter.testing.processes import free_port

run = CliRunner().invoke


def test_init_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HALTON_METER_HOME", str(tmp_path / "h"))
    result = run(main, ["init", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert len(document["created"]) == 4 and document["machine_id"]
    again = json.loads(run(main, ["init", "--json"]).output)
    assert again["created"] == [] and again["machine_id"] == document["machine_id"]


def test_status_when_stopped(home, seed):
    seed(cost="1.5")
    result = run(main, ["status"])
    assert result.exit_code == 0
    assert "stopped" in result.output and "NOT-CONFIGURED" in result.output and "$1.50" in result.output
    document = json.loads(run(main, ["status", "--json"]).output)
    assert document["daemon"]["state"] == "stopped" and document["today"]["calls"] == 1


def test_override_grants_the_next_call_and_refuses_a_bad_slug(home):
    from datetime import UTC, datetime
    from decimal import Decimal

    from halton_meter import spend_limits
    from halton_meter.store import open_store

    result = run(main, ["override", "shop"])
    assert (
        result.exit_code == 0
        and "next call of shop" in result.output
        and "No hard limit is known" in result.output
    )
    conn = open_store(home.db)
    now = datetime.now(UTC)
    spend_limits.save_fetched(
        conn,
        [spend_limits.SpendLimit("shop", Decimal("5"), spend_limits.month_of(now), Decimal("6"), now)],
        now,
    )
    assert json.loads(run(main, ["override", "shop", "--json"]).output) == {
        "project": "shop", "override": "next call", "limited": True,
    }  # fmt: skip
    assert spend_limits.pending_overrides(conn) == ["shop"]
    status = json.loads(run(main, ["status", "--json"]).output)["limits"]
    assert status["pending_overrides"] == ["shop"] and status["projects"][0]["reached"]
    refused = run(main, ["override", "../etc"])
    assert refused.exit_code != 0 and "not a project slug" in refused.output


def test_report_shows_unpriced_as_a_count(home, seed):
    seed(project="web", cost="0.02")
    seed(project="web", model="gpt-mystery", cost=None)
    text = run(main, ["report", "today"]).output
    assert "by project" in text and "by model" in text and "by provider" in text and "by day" in text
    assert "+ 1 unpriced" in text
    model_lines = [line for line in text.splitlines() if "gpt-mystery" in line and "│" in line]
    assert model_lines and "—" in model_lines[0] and "$0" not in model_lines[0]
    version = load_catalogue().version
    assert (
        f"1 call of gpt-mystery unpriced (no price in catalogue {version}); run `halton-meter rates update`"
        in text
    )
    document = json.loads(run(main, ["report", "7d", "--json"]).output)
    assert document["totals"]["unpriced_calls"] == 1 and document["totals"]["cost_usd"] == "0.020000000"
    (unpriced,) = document["unpriced"]
    assert (unpriced["model"], unpriced["calls"], unpriced["in_catalogue"]) == ("gpt-mystery", 1, False)
    csv_text = run(main, ["report", "--csv", "--by", "project"]).output
    assert csv_text.splitlines()[0].startswith("dimension,key,calls")
    assert "project,web,2,0,1,0.020000000" in csv_text


def test_report_csv_neutralises_formula_cells(home, seed):
    # A model name is whatever the SDK asked for or the provider answered: anyone's text.
    seed(model='=HYPERLINK("http://evil.example")', cost="0.5")
    seed(model="-2+3", cost="0.25")
    seed(model="@SUM(A1)", cost=None)
    rows = list(csv.reader(io.StringIO(run(main, ["report", "--csv", "--by", "model"]).output)))
    keys = {row[1] for row in rows[1:]}
    assert {'\'=HYPERLINK("http://evil.example")', "'-2+3", "'@SUM(A1)"} <= keys
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    assert rows[1][:6] == ["total", "", "3", "0", "1", "0.750000000"]  # numbers stay numbers


def test_report_periods_and_errors(home):
    assert run(main, ["report", "--from", "2026-01-01", "--to", "2026-01-31", "--json"]).exit_code == 0
    bad = run(main, ["report", "--from", "2026-02-01", "--to", "2026-01-01"])
    assert bad.exit_code == 2 and "before" in bad.output


def test_ca_explains_how_to_trust(home):
    text = run(main, ["ca"]).output
    for needle in (
        "security add-trusted-cert",
        "update-ca-certificates",
        "NODE_EXTRA_CA_CERTS",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
        str(home.ca_cert),
    ):
        assert needle in text
    document = json.loads(run(main, ["ca", "--json"]).output)
    assert document["cert"] == str(home.ca_cert) and document["trust"]["env"]["SSL_CERT_FILE"] == str(
        home.ca_bundle
    )


def test_doctor_fails_without_a_daemon(home):
    result = run(main, ["doctor", "--json"])
    assert result.exit_code == 1
    checks = {c["name"]: c["status"] for c in json.loads(result.output)["checks"]}
    assert checks["daemon"] == "fail" and checks["ca"] == "ok"


def test_fingerprint_reads_stdin(home):
    result = run(main, ["fingerprint"], input="sk-secret\n")
    assert result.exit_code == 0 and "sha256:" in result.output and "sk-secret" not in result.output


def test_reprice_json(home, seed):
    seed(cost="0.5")
    document = json.loads(run(main, ["reprice", "--json", "--dry-run"]).output)
    assert document["examined"] == 1 and document["changed"] == 1 and document["dry_run"]


def test_a_bad_config_names_the_key(home):
    home.config.write_text("[proxy]\nport = 99999\n")
    result = run(main, ["status"])
    assert result.exit_code == 2 and "[proxy] port" in result.output


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "halton_meter.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_start_stop_for_real(tmp_path: Path, fakes):
    """The detached daemon: starts, refuses a second copy, meters a call, flushes it on stop."""
    home = tmp_path / "home"
    port = free_port()
    env = {**os.environ, "HALTON_METER_HOME": str(home)}
    env.pop("HALTON_METER_PORT", None)
    assert _cli("init", env=env).returncode == 0
    (home / "config.toml").write_text(
        f'[proxy]\nport = {port}\nupstream_ca_file = "{fakes.pki.ca_path}"\n[attribution]\ndirectory = false\n'
        f'[providers.openai]\nupstream = "{fakes.openai.url}"\n'
    )
    started = _cli("start", env=env)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"mitm bound on 127.0.0.1:{port}" in started.stdout
        second = _cli("start", env=env)
        assert second.returncode == 1 and "already running" in second.stderr
        status = json.loads(_cli("status", "--json", env=env).stdout)
        assert status["daemon"]["state"] == "running" and status["daemon"]["listen"] == f"127.0.0.1:{port}"
        with httpx.Client(trust_env=False) as client:
            response = client.post(
                f"http://127.0.0.1:{port}/openai/v1/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            )
        assert response.status_code == 200
    finally:
        stopped = _cli("stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not (home / "daemon.pid").exists()
    report = json.loads(_cli("report", "--json", env=env).stdout)
    assert report["totals"]["calls"] == 1 and report["totals"]["input_tokens"] == 200
    assert json.loads(_cli("status", "--json", env=env).stdout)["daemon"]["state"] == "stopped"


def test_start_on_a_busy_port_says_why_and_status_knows_it_stopped(tmp_path: Path):
    home = tmp_path / "home"
    env = {**os.environ, "HALTON_METER_HOME": str(home)}
    env.pop("HALTON_METER_PORT", None)
    assert _cli("init", env=env).returncode == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (home / "config.toml").write_text(f"[proxy]\nport = {port}\n")
        started = _cli("start", env=env)
    assert started.returncode == 1 and "Traceback" not in started.stderr
    assert "the daemon exited at start" in started.stderr and "already in use" in started.stderr
    daemon = json.loads(_cli("status", "--json", env=env).stdout)["daemon"]
    assert daemon["state"] == "stopped" and daemon["last_seen_at"] is not None


def test_ca_names_the_port_the_running_daemon_listens_on(tmp_path: Path):
    """Started with --port (config says nothing: 8090), `ca` shows the daemon's port in every line; once
    it stops, the configured one."""
    home = tmp_path / "home"
    port = free_port()
    env = {**os.environ, "HALTON_METER_HOME": str(home)}
    env.pop("HALTON_METER_PORT", None)
    assert _cli("init", env=env).returncode == 0
    (home / "config.toml").write_text("[attribution]\ndirectory = false\n")
    started = _cli("start", "--port", str(port), env=env)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        text = _cli("ca", env=env).stdout
        document = json.loads(_cli("ca", "--json", env=env).stdout)
    finally:
        assert _cli("stop", env=env).returncode == 0
    assert f"HTTPS_PROXY=http://127.0.0.1:{port}\n" in text
    assert f"ANTHROPIC_BASE_URL=http://127.0.0.1:{port}/anthropic" in text
    assert ":8090" not in text and document["trust"]["env"]["HTTPS_PROXY"] == f"http://127.0.0.1:{port}"
    stopped = _cli("ca", env=env).stdout
    assert "HTTPS_PROXY=http://127.0.0.1:8090\n" in stopped and f":{port}" not in stopped
