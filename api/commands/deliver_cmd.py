"""``sharpeyes deliver OUT --deliver DELIVERY.yaml``: send what an ``analyze --deliver`` run left
in its outbox.

``analyze`` waits a while for its GA/T 1400 deliveries and then leaves the rest in the durable
outbox of its output folder (a view library that was down, slow or refusing). This command sends
them: the pending rows are made due now (their retry back-off is for a running service, not for
someone re-sending by hand), the delivery runs until the outbox is empty or ``--timeout``, and
one line says what was delivered, what is still pending and what was given up on (dead letters:
``--retry-dead`` queues those again first).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from sharpeyes.pipeline.errors import ConfigError

EXIT_OK = 0
EXIT_PENDING = 1


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``deliver`` command to a ``add_subparsers()`` object."""
    d: argparse.ArgumentParser = subparsers.add_parser(
        "deliver", help="send the GA/T 1400 records an analyze run left in its outbox"
    )
    d.add_argument("out", help="the output folder of 'sharpeyes analyze --deliver' (events.db)")
    d.add_argument("--deliver", required=True, help="GA/T 1400 delivery config YAML")
    d.add_argument("--timeout", type=float, default=300.0, help="seconds to keep trying")
    d.add_argument("--retry-dead", action="store_true", help="queue dead letters again first")
    d.set_defaults(func=run)
    return d


def run(args: argparse.Namespace) -> int:
    """Deliver the outbox of ``args.out``; exit status 1 when rows are still pending."""
    from sharpeyes.api.store.db import open_database
    from sharpeyes.api.store.events import EventStore
    from sharpeyes.api.store.outbox import Outbox
    from sharpeyes.api.viid.delivery import DESTINATION, load_delivery_config, start_delivery

    out = Path(args.out)
    db_path = out / "events.db"
    if not db_path.is_file():
        raise ConfigError(f"{db_path} not found: give the output folder of an analyze run")
    cfg = load_delivery_config(Path(args.deliver))
    store = EventStore(open_database(str(db_path)), out)
    try:
        now = int(time.time() * 1000)
        outbox = Outbox(store.db)
        if args.retry_dead:
            outbox.requeue(DESTINATION, now)
        outbox.make_due(DESTINATION, now)
        delivery = start_delivery(store, cfg, files_root=out)
        before = delivery.backlog()
        drained = delivery.drain(args.timeout)
        after = delivery.backlog()
        delivery.stop()
    finally:
        store.db.close()
    sent = after.delivered - before.delivered
    sys.stdout.write(
        f"GA/T 1400 delivery: {sent} delivered now ({after.delivered} in all), "
        f"{after.backlog} pending, {after.failed} dead letters\n"
    )
    if not drained:
        sys.stdout.write("not drained: run it again when the view library answers\n")
    return EXIT_OK if drained else EXIT_PENDING
