"""Issue 14 items 1–2: the answer-classification table (one test per row) and dead letters.

Old code: any non-zero StatusCode whose StatusString contained "exists" was a duplicate
(= delivered), so ``4 "TollgateID not exists"`` was silently lost; permanent rejections were
retried forever and there were no dead-letter functions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sharpeyes.api.store import EventStore, Outbox, open_store
from sharpeyes.api.viid.client import BatchResult, ViidClient
from sharpeyes.api.viid.config import ViidPlatform
from sharpeyes.api.viid.dead_letters import (
    delivery_metrics,
    list_dead_letters,
    retry_all_dead_letters,
    retry_dead_letter,
)
from sharpeyes.api.viid.mapping import EventMapper
from sharpeyes.api.viid.outcomes import Outcome, classify
from sharpeyes.api.viid.receiver.server import ReceiverServer
from sharpeyes.api.viid.receiver.state import ReceiverConfig, ReceiverState
from sharpeyes.api.viid.resources import COLLECTIONS, Collection
from sharpeyes.api.viid.schemas import ResponseStatus
from sharpeyes.api.viid.sender import OutboxSender, SenderOptions
from sharpeyes.pipeline.types import EventType, Plate
from tests._viid_fixtures import client_config, jpeg, make_event, mapping_config

P = ViidPlatform()
MV = COLLECTIONS[Collection.MOTOR_VEHICLE]
FAST = SenderOptions(claim_limit=50, lease_ms=1000, backoff_initial_s=0.01, backoff_max_s=0.02)

# (StatusCode, StatusString, expected table row, expected outcome)
ROWS = [
    (0, "OK", "ok", Outcome.DELIVERED),
    (0, "OK (duplicate)", "ok", Outcome.DELIVERED),
    (4, "请先注册", "relogin", Outcome.SESSION_LOST),
    (500, "保活失败,请先注册", "relogin", Outcome.SESSION_LOST),
    (4, "ID already exists", "dup", Outcome.DUPLICATE),
    (1, "duplicate MotorVehicleID", "dup", Outcome.DUPLICATE),
    (4, "数据已存在", "dup", Outcome.DUPLICATE),
    (4, "TollgateID not exists", "permanent", Outcome.PERMANENT),  # the silent loss
    (4, "DeviceID does not exist", "permanent", Outcome.PERMANENT),
    (4, "设备不存在", "permanent", Outcome.PERMANENT),
    (8, "$.MotorVehicleObject[0].HasPlate: expected string", "permanent", Outcome.PERMANENT),
    (5, "invalid XML format", "permanent", Outcome.PERMANENT),
    (7, "invalid JSON format", "permanent", Outcome.PERMANENT),
    (1, "other error", "transient", Outcome.TRANSIENT),
    (1, "TollgateID not exists", "transient", Outcome.TRANSIENT),
    (2, "device busy", "transient", Outcome.TRANSIENT),
    (3, "device error", "transient", Outcome.TRANSIENT),
    (9, "system rebooting", "transient", Outcome.TRANSIENT),
    (-1, "failed", "other", Outcome.TRANSIENT),
    (1403, "forbidden", "other", Outcome.TRANSIENT),
    (8, "object already exists but contents differ", "permanent", Outcome.PERMANENT),
]


@pytest.mark.parametrize(("code", "text", "row", "outcome"), ROWS)
def test_classification_table_row(code: int, text: str, row: str, outcome: Outcome) -> None:
    assert classify(code, text, P) == (row, outcome)


@pytest.mark.parametrize(("code", "text", "row", "outcome"), ROWS)
def test_client_batch_result_follows_the_table(
    code: int, text: str, row: str, outcome: Outcome
) -> None:
    client = ViidClient(client_config("http://127.0.0.1:9"))
    status = ResponseStatus(StatusCode=code, StatusString=text, Id="a")
    r = client._classify([status], ["a"])
    where = {
        Outcome.DELIVERED: r.delivered,
        Outcome.DUPLICATE: r.duplicates,
        Outcome.TRANSIENT: list(r.failed),
        Outcome.SESSION_LOST: list(r.failed),  # a per-object 'register first': retried
        Outcome.PERMANENT: list(getattr(r, "rejected", {})),
    }
    assert where[outcome] == ["a"], (row, r)
    assert "a" not in r.ok_ids or outcome in (Outcome.DELIVERED, Outcome.DUPLICATE)


def test_platform_variants_are_configurable() -> None:
    hao = ViidPlatform(
        duplicate_markers=("记录重复",),
        duplicate_status_codes=(-1,),
        unknown_status_outcome="permanent",
        transient_status_codes=(2, 9),
    )
    assert classify(-1, "记录重复", hao) == ("dup", Outcome.DUPLICATE)
    assert classify(4, "ID already exists", hao)[1] is Outcome.PERMANENT  # not its marker
    assert classify(1, "other", hao) == ("other", Outcome.PERMANENT)
    assert classify(1403, "x", hao) == ("other", Outcome.PERMANENT)


# -- dead letters --------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    s = open_store(f"sqlite:///{tmp_path / 'ev.db'}", tmp_path / "files")
    try:
        yield s
    finally:
        s.close()


def _add(store: EventStore, n: int) -> None:
    evs = [
        make_event(
            EventType.VEHICLE_PASS,
            track_id=i,
            t_ms=1_704_081_600_000 + i * 41,
            crop=jpeg(seed=i),
            plate=Plate("京A1234" + str(i % 10), "blue", 0.9),
        )
        for i in range(n)
    ]
    store.add_events(evs, outbox_destinations=["viid"])


def _drain(sender: OutboxSender, rounds: int = 40) -> None:
    for _ in range(rounds):
        if not sender.backlog().backlog:
            return
        sender.run_once()
        time.sleep(0.03)


@pytest.mark.integration
def test_permanent_rejection_is_a_dead_letter_with_its_reason(store: EventStore) -> None:
    _add(store, 10)
    state = ReceiverState()
    state.answer_hook = lambda _coll, _oid: (4, "TollgateID not exists")
    rcfg = ReceiverConfig(accounts={"admin": "secret"})
    with (
        ReceiverServer(config=rcfg, state=state) as srv,
        ViidClient(client_config(srv.url)) as client,
    ):
        sender = OutboxSender(store, client, EventMapper(mapping_config()), options=FAST)
        _drain(sender)
        requests = state.requests
        _drain(sender)  # nothing is retried once dead
        assert state.requests == requests
    st = Outbox(store.db).stats("viid")
    assert (st.delivered, st.failed, st.backlog) == (0, 10, 0)  # old code: 10 delivered
    dead = list_dead_letters(store.db)
    assert len(dead) == 10 and all("TollgateID not exists" in d.reason for d in dead)
    assert all(d.reason.startswith("permanent:") for d in dead)
    # each names the GA/T object id the platform refused (what its operator can look up)
    refused = {d.reason.rsplit("(object ", 1)[-1].rstrip(")") for d in dead}
    assert len(refused) == 10 and all(len(i) == 48 and i.isdigit() for i in refused)
    assert sender.totals.dead == 10 and sender.totals.delivered == 0
    text = delivery_metrics(store.db)
    assert 'sharpeyes_viid_outbox_rows{destination="viid",state="dead"} 10' in text
    assert "TollgateID not exists" in text
    # retry one, then all
    assert retry_dead_letter(store.db, dead[0].row_id, now_ms=0)
    assert not retry_dead_letter(store.db, dead[0].row_id, now_ms=0)  # no longer dead
    assert Outbox(store.db).stats("viid").backlog == 1
    assert retry_all_dead_letters(store.db, now_ms=0) == 9
    assert Outbox(store.db).stats("viid").backlog == 10
    assert list_dead_letters(store.db) == []


@pytest.mark.integration
def test_transient_answers_back_off_then_dead_letter_after_max_attempts(
    store: EventStore,
) -> None:
    _add(store, 3)
    state = ReceiverState()
    state.answer_hook = lambda _coll, _oid: (1, "other error")
    opts = SenderOptions(
        claim_limit=50, lease_ms=1000, backoff_initial_s=0.01, backoff_max_s=0.02, max_attempts=4
    )
    rcfg = ReceiverConfig(accounts={"admin": "secret"})
    with (
        ReceiverServer(config=rcfg, state=state) as srv,
        ViidClient(client_config(srv.url)) as client,
    ):
        sender = OutboxSender(store, client, EventMapper(mapping_config()), options=opts)
        sender.run_once()
        st = Outbox(store.db).stats("viid")
        assert (st.backlog, st.retrying, st.failed) == (3, 3, 0)  # transient: back-off
        _drain(sender)
    dead = list_dead_letters(store.db)
    assert len(dead) == 3 and all(d.attempts == 4 for d in dead)
    assert all(d.reason.startswith("gave up after 4 transient answers") for d in dead)


def test_whole_request_4xx_isolates_the_bad_object(store: EventStore) -> None:
    """A platform answering one 400 for a whole batch: siblings are delivered one by one, only
    the bad object is dead-lettered."""
    _add(store, 5)
    mapper = EventMapper(mapping_config())
    bad: list[str] = []
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Register"):
            return httpx.Response(200, json={"ResponseStatusObject": {"StatusCode": 0}})
        body = json.loads(request.content)
        objs = body["MotorVehicleListObject"]["MotorVehicleObject"]
        seen.append(len(objs))
        if not bad:
            bad.append(objs[2]["MotorVehicleID"])  # the third object is the broken one
        if any(o["MotorVehicleID"] == bad[0] for o in objs):
            return httpx.Response(
                400, json={"ResponseStatusObject": {"StatusCode": 8, "StatusString": "bad"}}
            )
        statuses = [{"Id": o["MotorVehicleID"], "StatusCode": 0} for o in objs]
        return httpx.Response(
            200, json={"ResponseStatusListObject": {"ResponseStatusObject": statuses}}
        )

    client = ViidClient(
        client_config("http://viid.test", time_sync_interval_s=1e9),
        transport=httpx.MockTransport(handler),
    )
    client._last_time_sync = 0.0
    sender = OutboxSender(store, client, mapper, options=FAST)
    sender.run_once()
    st = Outbox(store.db).stats("viid")
    assert (st.delivered, st.failed, st.backlog) == (4, 1, 0)
    assert seen[0] == 5 and seen[1:] == [1, 1, 1, 1, 1]
    (dead,) = list_dead_letters(store.db)
    assert "HTTP 400" in dead.reason


def test_batch_result_has_a_permanent_bucket() -> None:
    assert BatchResult().rejected == {}
