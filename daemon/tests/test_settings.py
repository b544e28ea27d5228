"""Settings: config.toml, then HALTON_METER_PORT, then --port; errors name the key to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from halton_meter.settings import SettingsError, key_fingerprint, load_settings


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
