"""Two publishers on one feed (the store writer and a review): a commit published after one with
a higher seq keeps its durable seq — it was renumbered before, so the id a client got disagreed
with the feed log and a resume skipped or repeated one — and a live subscriber whose cursor had
passed it still receives it, once."""

from __future__ import annotations

import asyncio

from sharpeyes.api.rest.feed import FeedFilter, FeedHub, FeedItem


async def _take(hub: FeedHub, after: int | None, n: int, late: list[int]) -> list[FeedItem]:
    got: list[FeedItem] = []
    gen = hub.subscribe(after, FeedFilter(), heartbeat_s=0.05)
    published = False
    async for item in gen:
        if item is not None:
            got.append(item)
        if not published:  # subscribed and caught up: the late commits arrive now
            for seq in late:
                hub.publish("review", "cam1", f'{{"n": {seq}}}', seq)
            published = True
        if len(got) >= n:
            break
    return got


def test_a_late_commit_keeps_its_seq_and_reaches_a_live_subscriber_once() -> None:
    hub = FeedHub(capacity=16)
    for seq in (1, 2, 4):
        hub.publish("vehicle_pass", "cam1", f'{{"n": {seq}}}', seq)
    got = asyncio.run(_take(hub, None, 1, late=[3]))  # live from the head (4)
    assert [(i.seq, i.type) for i in got] == [(3, "review")]
    assert hub.last_seq == 4
    assert [i.seq for i in hub.after(0)] == [1, 2, 3, 4]  # in order, nothing renumbered


def test_a_subscriber_behind_gets_every_item_once_in_the_order_it_can() -> None:
    hub = FeedHub(capacity=16)
    for seq in (1, 2, 5):
        hub.publish("vehicle_pass", "cam1", "{}", seq)
    # from 1: the ring gives 2 and 5; then 3 arrives late (passed) and 6 on time
    got = asyncio.run(_take(hub, 1, 4, late=[3, 6]))
    assert sorted(i.seq for i in got) == [2, 3, 5, 6]
    assert len({i.seq for i in got}) == len(got)  # none twice
