"""How a platform's per-object answer is classified (issue 14 items 1–2), as one table.

========  ==========================================================  ===========================
row       condition (first match wins)                                outcome
========  ==========================================================  ===========================
ok        ``StatusCode`` 0                                            DELIVERED
relogin   a ``relogin_markers`` fragment in StatusString (code ≠ 0)   SESSION_LOST (re-register)
dup       code in ``duplicate_status_codes``, a ``duplicate_markers``  DUPLICATE (= delivered)
          fragment and no ``not_duplicate_markers`` fragment
transient code in ``transient_status_codes`` (1, 2, 3, 9)             TRANSIENT (back-off, retry)
permanent code in ``permanent_status_codes`` (4, 5, 6, 7, 8)          PERMANENT (dead letter)
other     any other code (-1, "500", 1403 … seen in the wild)         ``unknown_status_outcome``
========  ==========================================================  ===========================

Only an explicit duplicate-*id* answer counts as delivered: ``4 "TollgateID not exists"`` is a
permanent rejection, not a duplicate. Every list is a platform variant in
:class:`~sharpeyes.api.viid.config.ViidPlatform`.
"""

from __future__ import annotations

import enum

from sharpeyes.api.viid.config import ViidPlatform
from sharpeyes.api.viid.schemas import ResponseStatus


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    DUPLICATE = "duplicate"
    SESSION_LOST = "session_lost"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


def _has(text: str, fragments: tuple[str, ...]) -> bool:
    low = text.lower()
    return any(f.lower() in low for f in fragments)


def classify(code: int, text: str | None, platform: ViidPlatform) -> tuple[str, Outcome]:
    """(table row, outcome) of one StatusCode/StatusString pair."""
    t = text or ""
    if code == 0:
        return "ok", Outcome.DELIVERED
    if _has(t, platform.relogin_markers):
        return "relogin", Outcome.SESSION_LOST
    if (
        code in platform.duplicate_status_codes
        and _has(t, platform.duplicate_markers)
        and not _has(t, platform.not_duplicate_markers)
    ):
        return "dup", Outcome.DUPLICATE
    if code in platform.transient_status_codes:
        return "transient", Outcome.TRANSIENT
    if code in platform.permanent_status_codes:
        return "permanent", Outcome.PERMANENT
    return "other", Outcome(platform.unknown_status_outcome)


def classify_status(status: ResponseStatus, platform: ViidPlatform) -> Outcome:
    return classify(status.code, status.StatusString, platform)[1]


def http_outcome(status_code: int) -> Outcome:
    """A whole-request answer without per-object statuses: 401 → session, 4xx → permanent for
    the request (the sender isolates objects before dead-lettering), 408/429/5xx → transient."""
    if status_code == 401:
        return Outcome.SESSION_LOST
    if status_code in (408, 425, 429) or status_code >= 500:
        return Outcome.TRANSIENT
    if 400 <= status_code < 500:
        return Outcome.PERMANENT
    return Outcome.TRANSIENT
