"""Shared test configuration: where the shared data lives, and the 'require everything' switch.

CI sets ``SHARPEYES_REQUIRE_ALL=1``: a test whose real dependency (RTSP server, PostgreSQL,
Chromium, shared sample data) is missing then FAILS instead of being skipped, so a green CI run
never hides skipped work.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    env = os.environ.get("SHARPEYES_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def require_all() -> bool:
    return os.environ.get("SHARPEYES_REQUIRE_ALL") == "1"


def need(condition: bool, reason: str) -> None:
    """Skip (locally) or fail (CI) when a real dependency is missing."""
    if condition:
        return
    if require_all():
        pytest.fail(f"required dependency missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared() -> Path:
    d = shared_dir()
    need(d.is_dir(), f"shared data folder {d} not found")
    return d


@pytest.fixture(scope="session")
def sample_videos(shared: Path) -> Path:
    return shared / "sample_videos"
