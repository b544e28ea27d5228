"""halton_meter: the local meter of LLM API calls (CLI, capture proxy, store, reports)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("halton-meter")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
