"""Dead letters of GA/T 1400 delivery: list, retry one/all, and Prometheus-countable stats.

A dead letter is an outbox row in state ``failed``: the platform refused the object permanently
(its reason is the row's ``last_error``) or answered transiently ``max_attempts`` times. These
functions are what the REST route (``api/rest/routes/delivery.py``) and operators call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sharpeyes.api.store.db import Database
from sharpeyes.api.store.outbox import Outbox, OutboxItem

DESTINATION = "viid"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    row_id: int
    destination: str
    event_id: str
    kind: str
    attempts: int
    reason: str
    created_ms: int
    dead_since_ms: int

    @classmethod
    def of(cls, item: OutboxItem) -> DeadLetter:
        return cls(
            row_id=item.id,
            destination=item.destination,
            event_id=item.object_id,
            kind=item.kind,
            attempts=item.attempts,
            reason=item.last_error or "",
            created_ms=item.created_ms,
            dead_since_ms=item.next_attempt_ms,
        )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def list_dead_letters(
    db: Database, destination: str = DESTINATION, *, limit: int = 100, after_id: int = 0
) -> list[DeadLetter]:
    """Dead letters in row order; page with ``after_id`` = the last ``row_id`` seen."""
    return [
        DeadLetter.of(i) for i in Outbox(db).list_dead(destination, limit=limit, after_id=after_id)
    ]


def retry_dead_letter(
    db: Database, row_id: int, now_ms: int, destination: str = DESTINATION
) -> bool:
    """Put one dead letter back in the queue (due now); False when it is not a dead letter."""
    return Outbox(db).retry_dead(destination, [row_id], now_ms) == 1


def retry_all_dead_letters(db: Database, now_ms: int, destination: str = DESTINATION) -> int:
    """Put every dead letter of ``destination`` back in the queue; returns how many."""
    return Outbox(db).retry_dead(destination, None, now_ms)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", " ").replace('"', '\\"')[:120]


def delivery_metrics(db: Database, destination: str = DESTINATION) -> str:
    """Prometheus text: outbox gauges and dead letters per reason for ``destination``."""
    outbox = Outbox(db)
    st = outbox.stats(destination)
    d = _escape(destination)
    lines = [
        "# HELP sharpeyes_viid_outbox_rows Outbox rows by state.",
        "# TYPE sharpeyes_viid_outbox_rows gauge",
        f'sharpeyes_viid_outbox_rows{{destination="{d}",state="pending"}} {st.backlog}',
        f'sharpeyes_viid_outbox_rows{{destination="{d}",state="retrying"}} {st.retrying}',
        f'sharpeyes_viid_outbox_rows{{destination="{d}",state="delivered"}} {st.delivered}',
        f'sharpeyes_viid_outbox_rows{{destination="{d}",state="dead"}} {st.failed}',
        "# HELP sharpeyes_viid_outbox_oldest_pending_age_seconds Age of the oldest pending row.",
        "# TYPE sharpeyes_viid_outbox_oldest_pending_age_seconds gauge",
        f'sharpeyes_viid_outbox_oldest_pending_age_seconds{{destination="{d}"}} '
        f"{(st.oldest_pending_age_ms or 0) / 1000:.3f}",
        "# HELP sharpeyes_viid_dead_letters Dead letters by reason.",
        "# TYPE sharpeyes_viid_dead_letters gauge",
    ]
    for reason, count in sorted(outbox.dead_reasons(destination).items()):
        lines.append(
            f'sharpeyes_viid_dead_letters{{destination="{d}",reason="{_escape(reason)}"}} {count}'
        )
    return "\n".join(lines) + "\n"
