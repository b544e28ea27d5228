"""halton_meter: the local meter of LLM API calls (CLI, capture proxy, store, reports)."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # Looked up on first use, not at import: importlib.metadata costs the CLI tens of milliseconds and
    # most commands never print the version.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("halton-meter")
    except PackageNotFoundError:  # running from a source tree without an install
        found = "0.0.0"
    globals()["__version__"] = found
    return found
