"""Fail open: an exception in one of our mitmproxy hooks must never reach the user's call.

Every hook of our addons is wrapped with :func:`fail_open`. A failure is logged with its traceback
and counted in :class:`~halton_meter.health.Health` under the hook's kind, and the flow carries on
exactly as if the addon were not there.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

FAILED = "halton.failed"  # flow.metadata key: kinds of failures seen on this flow


def _note(args: tuple[Any, ...], kind: str) -> None:
    flow = args[0] if args else None
    metadata = getattr(flow, "metadata", None)
    if isinstance(metadata, dict):
        metadata.setdefault(FAILED, []).append(kind)


def fail_open(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap a hook method of an addon that has a ``health`` attribute."""

    def decorate(hook: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(hook):

            @functools.wraps(hook)
            async def async_wrapper(self, *args: Any) -> Any:
                try:
                    return await hook(self, *args)
                except Exception as exc:
                    logger.exception("%s failed; the call goes through untouched", kind)
                    self.health.error(kind, repr(exc))
                    _note(args, kind)
                    return None

            return async_wrapper

        @functools.wraps(hook)
        def wrapper(self, *args: Any) -> Any:
            try:
                return hook(self, *args)
            except Exception as exc:
                logger.exception("%s failed; the call goes through untouched", kind)
                self.health.error(kind, repr(exc))
                _note(args, kind)
                return None

        return wrapper

    return decorate
