-- Ingest order (issue 15): every event gets a strictly increasing `ingest_seq` when it is stored,
-- so a poller can ask for "everything stored after N" (`?after=N`) and miss nothing, whatever
-- the event's `first_seen` (events are stored when their track ends, up to ~45 s later).
-- Sequences are handed out from the one-row `ingest_counter` inside the writing transaction:
-- on PostgreSQL its row lock is held until commit, so sequence order is commit order (a reader
-- never sees N+1 before N); SQLite has a single writer. Duplicates leave gaps, never reuse.
ALTER TABLE events ADD COLUMN ingest_seq BIGINT;
-- Events stored before this migration: numbered in the order they were stored.
UPDATE events SET ingest_seq = r.n
FROM (SELECT event_id, ROW_NUMBER() OVER (ORDER BY created_ms, event_id) AS n FROM events) AS r
WHERE r.event_id = events.event_id;
CREATE UNIQUE INDEX events_ingest_seq ON events (ingest_seq);
CREATE TABLE ingest_counter (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL
);
INSERT INTO ingest_counter (id, seq) SELECT 1, COALESCE(MAX(ingest_seq), 0) FROM events;
