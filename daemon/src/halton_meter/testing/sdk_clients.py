"""The official provider SDKs, pointed at a running meter in either of its two modes.

* ``base_url``: the SDK's base URL is the meter's own (``http://127.0.0.1:<port>/<provider>``), plain HTTP,
  no CA needed;
* ``proxy``: the SDK keeps the provider's real URL and goes through the meter as an HTTPS proxy
  (CONNECT, TLS intercepted by the meter's CA, which ``ca`` trusts).

xAI has no SDK of its own in the workspace: its API is the OpenAI dialect, so it goes through the openai
SDK with xAI's base URL, as xAI's documentation tells users to do. Every client is built with
``max_retries=0`` so a provider error reaches the test (and the meter records it) once.
"""

from __future__ import annotations

import ssl
from typing import Any

import anthropic
import httpx
import openai
from google import genai
from google.genai import types as genai_types

MODES = ["base_url", "proxy"]
XAI_URL = "https://api.x.ai/v1"


def base_url(meter: Any, prefix: str) -> str:
    return f"http://127.0.0.1:{meter.listen[1]}/{prefix}"


def plain_client() -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=30)


def proxied_client(meter: Any, ca: ssl.SSLContext | None) -> httpx.Client:
    return httpx.Client(proxy=f"http://127.0.0.1:{meter.listen[1]}", verify=ca, trust_env=False, timeout=30)


def _check(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


def anthropic_client(mode: str, meter: Any, ca: ssl.SSLContext | None) -> anthropic.Anthropic:
    _check(mode)
    if mode == "base_url":
        return anthropic.Anthropic(
            api_key="sk-ant-test",
            base_url=base_url(meter, "anthropic"),
            max_retries=0,
            http_client=plain_client(),
        )
    return anthropic.Anthropic(api_key="sk-ant-test", max_retries=0, http_client=proxied_client(meter, ca))


def openai_client(mode: str, meter: Any, ca: ssl.SSLContext | None) -> openai.OpenAI:
    _check(mode)
    if mode == "base_url":
        return openai.OpenAI(
            api_key="sk-test",
            base_url=base_url(meter, "openai/v1"),
            max_retries=0,
            http_client=plain_client(),
        )
    return openai.OpenAI(api_key="sk-test", max_retries=0, http_client=proxied_client(meter, ca))


def xai_client(mode: str, meter: Any, ca: ssl.SSLContext | None) -> openai.OpenAI:
    """The openai SDK speaking to xAI (``https://api.x.ai/v1``), as xAI documents."""
    _check(mode)
    if mode == "base_url":
        return openai.OpenAI(
            api_key="xai-test", base_url=base_url(meter, "xai/v1"), max_retries=0, http_client=plain_client()
        )
    return openai.OpenAI(
        api_key="xai-test", base_url=XAI_URL, max_retries=0, http_client=proxied_client(meter, ca)
    )


def gemini_client(
    mode: str, meter: Any, ca: ssl.SSLContext | None, headers: dict[str, str] | None = None
) -> genai.Client:
    """A google-genai client; ``headers`` go on every request it makes (the fakes' steering headers)."""
    _check(mode)
    if mode == "base_url":
        options = genai_types.HttpOptions(
            base_url=base_url(meter, "gemini"), headers=headers or {}, httpx_client=plain_client()
        )
    else:
        options = genai_types.HttpOptions(headers=headers or {}, httpx_client=proxied_client(meter, ca))
    return genai.Client(api_key="g-test", http_options=options)


def xai_url(mode: str, meter: Any) -> str:
    """The chat completions URL a raw HTTP client posts to, in ``mode``."""
    _check(mode)
    return (
        f"{base_url(meter, 'xai/v1')}/chat/completions"
        if mode == "base_url"
        else f"{XAI_URL}/chat/completions"
    )


def xai_http(mode: str, meter: Any, ca: ssl.SSLContext | None) -> httpx.Client:
    _check(mode)
    return plain_client() if mode == "base_url" else proxied_client(meter, ca)
