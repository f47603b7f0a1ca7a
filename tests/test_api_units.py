"""Unit tests of the API's pure parts: limiter, tokens, URL masking, signed URLs, feed hub."""

from __future__ import annotations

import asyncio

import pytest

from sharpeyes.api.rest.auth import FailureLimiter, MemoryTokenRepository, Role, TokenService
from sharpeyes.api.rest.auth.tokens import TokenError, split_token
from sharpeyes.api.rest.cameras import mask_url, restore_masked_url
from sharpeyes.api.rest.evidence import UrlSigner
from sharpeyes.api.rest.feed import FeedFilter, FeedHub, FeedItem


def test_limiter_blocks_after_n_failures_and_recovers() -> None:
    now = [0.0]
    lim = FailureLimiter(3, 10.0, clock=lambda: now[0])
    for _ in range(3):
        assert lim.retry_after("a") == 0
        lim.record_failure("a")
    assert lim.retry_after("a") == pytest.approx(10.0)
    assert lim.retry_after("b") == 0  # per client
    now[0] = 9.0
    assert lim.retry_after("a") == pytest.approx(1.0)
    now[0] = 10.5
    assert lim.retry_after("a") == 0 and lim.tracked_keys() == 0


def test_limiter_bounds_tracked_clients() -> None:
    lim = FailureLimiter(2, 60.0, max_keys=3)
    for k in "abcdef":
        lim.record_failure(k)
    assert lim.tracked_keys() == 3


def test_tokens_hash_roles_and_revocation() -> None:
    repo = MemoryTokenRepository()
    svc = TokenService(repo, b"pepper")
    rec, token = svc.issue("zhang", Role.REVIEWER)
    token_id, secret = split_token(token)
    assert rec.token_id == token_id and secret not in rec.secret_hash
    assert TokenService(repo, b"other").hash_secret(secret) != rec.secret_hash
    p = svc.authenticate(token)
    assert p.role is Role.REVIEWER and p.allows(Role.VIEWER) and not p.allows(Role.ADMIN)
    for bad in ("", "se_x", token + "x", "se_000000000000.abc", "Bearer " + token):
        with pytest.raises(TokenError):
            svc.authenticate(bad)
    assert svc.revoke(token_id) and not svc.revoke(token_id)
    with pytest.raises(TokenError, match="revoked"):
        svc.authenticate(token)
    assert svc.ensure(token, "again", Role.ADMIN).role is Role.REVIEWER  # idempotent


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("rtsp://admin:pa55@10.0.0.1:554/ch1", "rtsp://admin:***@10.0.0.1:554/ch1"),
        ("rtsp://admin:p@ss@10.0.0.1/ch1", "rtsp://admin:***@10.0.0.1/ch1"),
        ("rtsp://user@10.0.0.1/ch1", "rtsp://user@10.0.0.1/ch1"),
        ("rtsp://10.0.0.1/x?user=a&password=b", "rtsp://10.0.0.1/x?user=a&password=***"),
        ("/data/video.mp4", "/data/video.mp4"),
        (None, None),
    ],
)
def test_mask_url(url: str | None, masked: str | None) -> None:
    assert mask_url(url) == masked


def test_restore_masked_url_keeps_secret_only_for_the_same_url() -> None:
    old = "rtsp://admin:pa55@10.0.0.1/ch1"
    assert restore_masked_url("rtsp://admin:***@10.0.0.1/ch1", old) == old
    assert restore_masked_url("rtsp://admin:***@10.0.0.2/ch1", old) == (
        "rtsp://admin:***@10.0.0.2/ch1"
    )
    assert restore_masked_url("rtsp://admin:new@10.0.0.1/ch1", old).endswith("new@10.0.0.1/ch1")  # type: ignore[union-attr]


def test_url_signer() -> None:
    s = UrlSigner(b"k", ttl_s=60)
    exp, sig = s.sign("e1", "clip.mp4", now=1000.0)
    assert exp == 1060 and s.verify("e1", "clip.mp4", exp, sig, now=1059.0)
    assert not s.verify("e1", "clip.mp4", exp, sig, now=1061.0)
    assert not s.verify("e1", "1.jpg", exp, sig, now=1000.0)
    assert not s.verify("e2", "clip.mp4", exp, sig, now=1000.0)
    assert not UrlSigner(b"other").verify("e1", "clip.mp4", exp, sig, now=1000.0)


def test_feed_item_sse_format() -> None:
    item = FeedItem(7, "vehicle_pass", "cam1", '{"a":1}')
    assert item.to_sse() == 'id: 7\nevent: vehicle_pass\ndata: {"a":1}\n\n'


def test_feed_ring_and_backfill() -> None:
    store: list[FeedItem] = []

    def backfill(after: int, limit: int) -> list[FeedItem]:
        return [i for i in store if i.seq > after][:limit]

    hub = FeedHub(capacity=3, backfill=backfill)
    for n in range(1, 7):
        store.append(hub.publish("t", "c", str(n), seq=n * 10))
    assert [i.seq for i in hub.after(40)] == [50, 60]
    assert [i.seq for i in hub.after(0)] == [10, 20, 30, 40, 50, 60]  # ring holds 40..60
    assert [i.seq for i in hub.after(0, limit=2)] == [10, 20]
    assert hub.after(60) == []
    # a late arrival (committed first, published second) keeps its durable seq; the head stays
    late = hub.publish("t", "c", "x", seq=55)
    assert late.seq == 55
    assert [i.seq for i in hub.after(50)] == [55, 60]
    assert hub.after(60) == []
    assert hub.publish("t", "c", "y").seq == 61  # unnumbered: after the head, never behind
    no_store = FeedHub(capacity=2)
    for n in range(5):
        no_store.publish("t", "c", str(n))
    assert [i.seq for i in no_store.after(0)] == [4, 5]


def test_feed_subscribe_filters_and_wakes_on_publish_from_a_thread() -> None:
    async def scenario() -> list[str]:
        hub = FeedHub()
        hub.publish("vehicle_pass", "cam1", "old")
        flt = FeedFilter(frozenset({"cam2"}), frozenset({"red_light_violation"}))
        got: list[str] = []

        async def consume() -> None:
            async for item in hub.subscribe(None, flt, heartbeat_s=5):
                assert item is not None
                got.append(item.data)
                if len(got) == 2:
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        for cam, type_, data in [
            ("cam2", "vehicle_pass", "no"),
            ("cam2", "red_light_violation", "yes1"),
            ("cam1", "red_light_violation", "no"),
            ("cam2", "red_light_violation", "yes2"),
        ]:
            await loop.run_in_executor(None, hub.publish, type_, cam, data)
        await asyncio.wait_for(task, 2)
        assert hub.subscribers == 0
        return got

    assert asyncio.run(scenario()) == ["yes1", "yes2"]
