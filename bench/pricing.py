"""What pricing one call costs the meter (µs per call), and what building the price book costs.

Prices a fixed mix of 12 calls (every provider; cache reads and writes; a size tier; batch, flex and
priority; a US-only call; an unknown model; a provider error) N times round-robin with
``PriceBook().price(info, usage, at)``, the call the meter's writer thread makes for every row. Only that
public API is used, so the same script measures an older checkout: put its ``daemon/src`` first on
``PYTHONPATH`` (``PYTHONPATH=/path/to/old/daemon/src uv run python bench/pricing.py``) and compare the two
figures of one session (these machines are shared and noisy).

Run: ``uv run python bench/pricing.py [-n 200000]``.
"""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import statistics
import time
from datetime import UTC, datetime

from halton_meter import pricing
from halton_meter.pricing import PriceBook
from halton_meter.usage import RequestInfo, Usage

AT = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def calls() -> list[tuple[RequestInfo, Usage, int | None]]:
    def info(provider: str, model: str, **kw: object) -> RequestInfo:
        return RequestInfo(provider=provider, endpoint="/v1/x", model_requested=model, streamed=False, **kw)  # type: ignore[arg-type]

    def usage(inp: int | None, out: int | None, **kw: object) -> Usage:
        return Usage(input_tokens=inp, output_tokens=out, complete=True, **kw)  # type: ignore[arg-type]

    return [
        (
            info("anthropic", "claude-sonnet-4-5"),
            usage(12_000, 800, cache_read_tokens=8000, cache_write_tokens=2000),
            None,
        ),
        (info("anthropic", "claude-sonnet-4-5-20250929"), usage(250_000, 1000), None),
        (info("anthropic", "claude-haiku-4-5", batch=True), usage(3000, 300), None),
        (info("anthropic", "claude-opus-4-1"), usage(5000, 500, cache_write_1h_tokens=1000), None),
        (info("openai", "gpt-4o"), usage(1200, 300, cache_read_tokens=1024), None),
        (info("openai", "o3", service_tier="flex"), usage(10_000, 4000), None),
        (
            info("openai", "gpt-5", service_tier="priority"),
            usage(10_000, 1000, service_tier="priority"),
            None,
        ),
        (info("gemini", "gemini-2.5-pro"), usage(210_000, 5000, cache_read_tokens=10_000), None),
        (info("gemini", "gemini-2.5-flash"), usage(2000, 700, reasoning_tokens=500), None),
        (info("xai", "grok-4"), usage(1000, 100, cache_read_tokens=400), None),
        (info("openai", "gpt-imaginary-9"), usage(1000, 1000), None),
        (info("anthropic", "claude-sonnet-4-5"), Usage(complete=True), 529),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200_000, help="calls priced per round (default 200,000)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    started = time.perf_counter()
    book = PriceBook()
    built_ms = (time.perf_counter() - started) * 1000
    mix = calls()
    takes_status = "status_code" in inspect.signature(book.price).parameters
    per_call: list[float] = []
    for _ in range(args.rounds):
        begin = time.perf_counter()
        for i in range(args.n):
            call_info, call_usage, status = mix[i % len(mix)]
            if takes_status:
                book.price(call_info, call_usage, AT, status_code=status)
            else:
                book.price(call_info, call_usage, AT)
        per_call.append((time.perf_counter() - begin) / args.n * 1e6)

    print(f"pricing module: {pricing.__file__}")
    print(f"price data: {book.version}")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}"
    )
    print(f"PriceBook() built in {built_ms:.1f} ms")
    print(
        f"price(): median {statistics.median(per_call):.2f} µs/call, best {min(per_call):.2f} µs/call "
        f"({args.rounds} rounds of {args.n:,} calls, {len(mix)}-call mix)"
    )


if __name__ == "__main__":
    main()
