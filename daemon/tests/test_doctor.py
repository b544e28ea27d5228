"""doctor: each check says what is wrong and what to do."""

from __future__ import annotations

from halton_meter.doctor import FAIL, OK, WARN, _bypassed, _check_env, run_checks
from halton_meter.settings import load_settings


def by_name(checks):
    return {c.name: c for c in checks}


def test_a_fresh_home_without_a_daemon(home):
    checks = by_name(run_checks(env={}))
    assert checks["config"].status == OK and checks["home"].status == OK
    assert checks["ca"].status == OK and checks["database"].status == OK
    assert checks["daemon"].status == FAIL and checks["daemon"].fix == "run `halton-meter start`"
    assert checks["HTTPS_PROXY"].status == WARN


def test_environment_checks(home):
    settings = load_settings(home.home)
    env = {
        "HTTPS_PROXY": "http://127.0.0.1:8090",
        "NO_PROXY": "localhost,.anthropic.com",
        "SSL_CERT_FILE": str(home.ca_bundle),
        "OPENAI_BASE_URL": "https://api.openai.com/v1",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:8090/anthropic",
        "XAI_BASE_URL": "http://127.0.0.1:8090/openai/v1",
    }
    checks = by_name(_check_env(settings, env))
    assert checks["HTTPS_PROXY"].status == OK
    assert checks["NO_PROXY"].status == WARN and "api.anthropic.com" in checks["NO_PROXY"].detail
    assert checks["ca trust"].status == OK
    assert checks["OPENAI_BASE_URL"].status == WARN and "8090/openai/v1" in checks["OPENAI_BASE_URL"].fix
    assert checks["ANTHROPIC_BASE_URL"].status == OK
    assert checks["XAI_BASE_URL"].status == FAIL


def test_no_proxy_matching():
    assert _bypassed("*") and _bypassed("x.ai") == ["api.x.ai"]
    assert _bypassed("localhost,127.0.0.1,example.com") == []
