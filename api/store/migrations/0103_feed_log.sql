-- The live feed's durable sequence: one row per event published to the SSE feed, so that a
-- client reconnecting with Last-Event-ID resumes without loss, even across a service restart.
CREATE TABLE feed_log (
    seq        {{AUTOINC}},
    event_id   TEXT NOT NULL,
    type       TEXT NOT NULL,
    stream_id  TEXT NOT NULL,
    at_ms      BIGINT NOT NULL
);
CREATE INDEX feed_log_event ON feed_log (event_id);
