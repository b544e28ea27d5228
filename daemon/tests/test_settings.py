"""Settings: config.toml, then HALTON_METER_PORT, then --port; errors name the key to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from halton_meter.protocol import MAX_ROWS_PER_BATCH
from halton_meter.settings import MAX_BATCH_ROWS, SettingsError, key_fingerprint, load_settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("HALTON_METER_PORT", raising=False)
    monkeypatch.setenv("HALTON_METER_HOME", str(tmp_path))
    return tmp_path


def write(home: Path, text: str) -> None:
    (home / "config.toml").write_text(text)


def test_defaults_without_a_config_file(home: Path):
    s = load_settings()
    assert s.home == home
    assert (s.listen_host, s.port) == ("127.0.0.1", 8090)
    assert s.default_project == "default" and s.directory_attribution
    assert not s.capture_bodies and not s.cloud_enabled
    assert s.pricing_overrides == home / "rates.json"


def test_port_precedence(home: Path, monkeypatch: pytest.MonkeyPatch):
    write(home, "[proxy]\nport = 9000\n")
    assert load_settings().port == 9000
    monkeypatch.setenv("HALTON_METER_PORT", "9100")
    assert load_settings().port == 9100
    assert load_settings(port=9200).port == 9200


def test_a_full_config(home: Path):
    write(
        home,
        """
[proxy]
upstream_ca_file = "corp.pem"
[attribution]
default_project = "misc"
directory = false
[attribution.api_keys]
"sha256:9f86d081884c7d65" = "checkout"
[attribution.directories]
"~/src/pay" = "payments"
[providers.openai]
upstream = "https://gateway.corp/openai/"
extra_hosts = ["MyCo.openai.azure.com", "*.corp.example"]
[capture]
bodies = true
body_max_bytes = 1024
""",
    )
    s = load_settings()
    assert s.upstream_ca_file == home / "corp.pem"
    assert s.default_project == "misc" and not s.directory_attribution
    assert s.api_key_projects == {"sha256:9f86d081884c7d65": "checkout"}
    assert s.directory_projects == {Path("~/src/pay").expanduser(): "payments"}
    assert s.provider("openai").upstream == "https://gateway.corp/openai"
    assert s.provider("openai").extra_hosts == ("myco.openai.azure.com", "*.corp.example")
    assert s.provider("anthropic").upstream is None
    assert s.capture_bodies and s.body_max_bytes == 1024


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[proxy]\nport = 70000\n", "config.toml: [proxy] port:"),
        ('[proxy]\nport = "abc"\n', "config.toml: [proxy] port:"),
        ("[proxy]\nprot = 1\n", "config.toml: [proxy] prot: unknown key"),
        ('[attribution.api_keys]\n"sk-ant-api03-xyz" = "p"\n', "is not a key fingerprint"),
        ('[attribution]\ndefault_project = "has space"\n', "[attribution] default_project"),
        ('[providers.mistral]\nupstream = "https://x"\n', "unknown provider 'mistral'"),
        ('[providers.openai]\nupstream = "api.openai.com"\n', "[providers.openai] upstream"),
        ('[providers.openai]\nextra_hosts = ["bad host"]\n', "[providers.openai] extra_hosts"),
        ("[proxy\n", "not valid TOML"),
    ],
)
def test_errors_name_the_key(home: Path, text: str, message: str):
    write(home, text)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert message in str(raised.value)


def test_a_bad_environment_port_names_the_variable(home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HALTON_METER_PORT", "eighty")
    with pytest.raises(SettingsError, match="HALTON_METER_PORT: must be a port number"):
        load_settings()


def test_a_raw_key_never_needs_to_be_in_the_config():
    fingerprint = key_fingerprint("sk-test")
    assert fingerprint.startswith("sha256:") and "sk-test" not in fingerprint and len(fingerprint) == 71


@pytest.mark.parametrize(
    ("cloud", "dashboard", "chosen"),
    [
        ("", "https://app.haltonmeter.com", False),  # the hosted cloud: the hosted dashboard
        ('base_url = "https://API.haltonmeter.com/"\n', "https://app.haltonmeter.com", False),
        ('base_url = "http://Cloud.example:8000/api/"\n', "http://cloud.example:8000", False),
        (
            'base_url = "http://cloud.example"\ndashboard_origin = "https://dash.example"\n',
            "https://dash.example",
            True,
        ),
        (
            'base_url = "http://cloud.example"\ndashboard_origin = "https://dash.example"\n'
            'dashboard_origin_written_by_meter = "https://dash.example"\n',
            "https://dash.example",
            False,  # recorded at pairing: the next pairing may replace it
        ),
    ],
)
def test_the_dashboard_follows_the_cloud_unless_one_is_set(home: Path, cloud, dashboard, chosen):
    write(home, "[cloud]\n" + cloud)
    settings = load_settings()
    assert settings.cloud_dashboard_origin == dashboard and settings.cloud_dashboard_origin_chosen is chosen


def test_the_batch_limit_is_the_protocols():
    # settings repeats the number so that reading the config does not load pydantic (issue 18).
    assert MAX_BATCH_ROWS == MAX_ROWS_PER_BATCH


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[proxy]\nport = 8091.5\n", "config.toml: [proxy] port: must be a whole number from 0 to 65535"),
        ("[proxy]\nport = true\n", "config.toml: [proxy] port: must be a whole number"),
        ("proxy = 5\n", "config.toml: proxy: must be a table ([proxy])"),
        ("[prxy]\nport = 1\n", "config.toml: prxy: unknown key"),
        ("[attribution]\ndirectory = 'maybe'\n", "[attribution] directory: must be true or false"),
        (
            '[attribution.directories]\n"~/src" = "has space"\n',
            "config.toml: [attribution.directories] ~/src: must be a project name",
        ),
        ('[providers.openai]\nextra_hosts = "a.b"\n', "[providers.openai] extra_hosts: must be a list"),
        ("[providers.openai]\nupstrem = 'https://x'\n", "[providers.openai] upstrem: unknown key"),
        ("providers = 1\n", "config.toml: providers: must be tables"),
        ("[pricing]\noverrides = 3\n", "[pricing] overrides: must be a string, got 3"),
        ('[cloud]\nworkspace_id = ""\n', "[cloud] workspace_id: must be 1 to 64 characters"),
        ("[cloud]\nheartbeat_seconds = nan\n", "[cloud] heartbeat_seconds: must be a number of seconds"),
        ("[cloud]\nreconcile_hours = 1000\n", "[cloud] reconcile_hours: must be a number of hours"),
        ('[log]\nlevel = "debug"\n', "[log] level: must be one of 'DEBUG', 'INFO', 'WARNING', 'ERROR'"),
    ],
)
def test_each_kind_of_value_is_checked(home: Path, text: str, message: str):
    write(home, text)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert message in str(raised.value)


def test_every_problem_is_reported_at_once(home: Path):
    write(home, '[proxy]\nport = 70000\n[log]\nlevel = "x"\n')
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert str(raised.value).splitlines() == [
        "config.toml: [proxy] port: must be a whole number from 0 to 65535, got 70000",
        "config.toml: [log] level: must be one of 'DEBUG', 'INFO', 'WARNING', 'ERROR', got 'x'",
    ]


def test_numbers_and_flags_may_be_written_as_strings(home: Path):
    # As the pydantic model this loader replaced accepted them: configs that worked keep working.
    write(
        home,
        '[proxy]\nport = "8091"\n[attribution]\ndirectory = "no"\n[capture]\nbodies = 1\n'
        '[cloud]\nsync_interval_seconds = "0.5"\nbatch_rows = 10.0\n',
    )
    s = load_settings()
    assert (s.port, s.directory_attribution, s.capture_bodies) == (8091, False, True)
    assert (s.cloud_sync_interval, s.cloud_batch_rows) == (0.5, 10)
