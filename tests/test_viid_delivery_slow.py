"""The issue's outage test at full length: the platform is down for 2 minutes mid-run.

Opt-in (``-m slow``, ~2.5 min); the default run has the same scenario with a 10 s outage
(``tests/test_viid_delivery.py::test_receiver_down_10s_then_up_loses_nothing``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sharpeyes.api.store import EventStore, open_store
from tests.test_viid_delivery import run_outage

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    s = open_store(f"sqlite:///{tmp_path / 'ev.db'}", tmp_path / "files")
    yield s
    s.close()


def test_receiver_down_2_minutes_then_up_loses_nothing(store: EventStore, tmp_path: Path) -> None:
    run_outage(store, tmp_path, outage_s=120.0, n_batches=30)
