-- GA/T 1400 subscriptions from upper platforms (we are the lower platform, GAT1400.md §7).
-- Placeholders (see api/store/migrate.py): {{AUTOINC}} {{JSON}}. Times are UTC epoch ms.
-- Notifications themselves go through the outbox, destination 'sub:<subscribe_id>'.
CREATE TABLE viid_subscriptions (
    subscribe_id        TEXT PRIMARY KEY,
    title               TEXT,
    details             TEXT NOT NULL,
    resource_uri        TEXT NOT NULL,
    receive_addr        TEXT NOT NULL,
    begin_ms            BIGINT,
    end_ms              BIGINT,
    report_interval_s   INTEGER NOT NULL DEFAULT 0,
    image_declare       TEXT,
    status              INTEGER NOT NULL DEFAULT 0,
    subscriber          TEXT,
    body                {{JSON}} NOT NULL,
    created_ms          BIGINT NOT NULL,
    updated_ms          BIGINT NOT NULL,
    cancelled_ms        BIGINT,
    cancel_reason       TEXT
);
CREATE INDEX viid_subscriptions_status ON viid_subscriptions (status, end_ms);

-- Who created, changed, cancelled or deleted which subscription, and when (append-only by use).
CREATE TABLE viid_subscription_log (
    id                  {{AUTOINC}},
    subscribe_id        TEXT NOT NULL,
    action              TEXT NOT NULL,
    actor               TEXT,
    detail              TEXT,
    at_ms               BIGINT NOT NULL
);
CREATE INDEX viid_subscription_log_sub ON viid_subscription_log (subscribe_id, id);
