"""Waiting for a condition in integration tests (a server's answer, a row delivered)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx


def wait_for(cond: Callable[[], Any], timeout_s: float, what: str, step_s: float = 0.1) -> Any:
    """``cond()``'s first truthy value; an HTTP error counts as not yet (the server is still
    starting); fails the test naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            got = cond()
            if got:
                return got
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(step_s)
