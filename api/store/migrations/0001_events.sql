-- Schema v1: events, outbox, review audit trail, stream positions.
-- Placeholders (see api/store/migrate.py): {{AUTOINC}} {{BLOB}} {{JSON}} {{REAL}}.
-- Times are UTC epoch milliseconds (BIGINT); pts are stream seconds.

CREATE TABLE events (
    event_id            TEXT PRIMARY KEY,
    type                TEXT NOT NULL,
    stream_id           TEXT NOT NULL,
    device_id           TEXT,
    kind                TEXT NOT NULL,
    class_id            INTEGER,
    class_name          TEXT,
    class_code          TEXT,
    track_id            BIGINT,
    first_seen_ms       BIGINT NOT NULL,
    last_seen_ms        BIGINT NOT NULL,
    first_pts           {{REAL}} NOT NULL,
    last_pts            {{REAL}} NOT NULL,
    best_pts            {{REAL}},
    confidence          {{REAL}} NOT NULL,
    bbox_x1             {{REAL}},
    bbox_y1             {{REAL}},
    bbox_x2             {{REAL}},
    bbox_y2             {{REAL}},
    frame_w             INTEGER,
    frame_h             INTEGER,
    direction           TEXT,
    heading_deg         {{REAL}},
    trajectory          {{JSON}},
    crop_path           TEXT,
    plate_text          TEXT,
    plate_color         TEXT,
    plate_confidence    {{REAL}},
    plate_layers        INTEGER,
    violation_code      TEXT,
    signal_group        TEXT,
    signal_color        TEXT,
    seconds_since_red   {{REAL}},
    lane_no             INTEGER,
    movement            TEXT,
    approach            TEXT,
    crossed_stop_line_pts {{REAL}},
    evidence_pts        {{JSON}},
    evidence_dir        TEXT,
    metadata_path       TEXT,
    detail              TEXT,
    extra               {{JSON}},
    review_state        TEXT CHECK (review_state IN ('pending', 'confirmed', 'rejected')),
    created_ms          BIGINT NOT NULL
);
CREATE INDEX events_stream_first_seen ON events (stream_id, first_seen_ms);
CREATE INDEX events_type_first_seen ON events (type, first_seen_ms);
CREATE INDEX events_first_seen ON events (first_seen_ms, event_id);
CREATE INDEX events_plate ON events (plate_text);
CREATE INDEX events_review_state ON events (review_state, first_seen_ms);

CREATE TABLE outbox (
    id                  {{AUTOINC}},
    destination         TEXT NOT NULL,
    object_id           TEXT NOT NULL,
    kind                TEXT NOT NULL,
    created_ms          BIGINT NOT NULL,
    state               TEXT NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms     BIGINT NOT NULL,
    last_error          TEXT,
    delivered_ms        BIGINT,
    UNIQUE (destination, object_id)
);
CREATE INDEX outbox_due ON outbox (destination, state, next_attempt_ms, id);

CREATE TABLE review_actions (
    id                  {{AUTOINC}},
    event_id            TEXT NOT NULL REFERENCES events (event_id),
    actor               TEXT NOT NULL,
    action              TEXT NOT NULL,
    reason              TEXT,
    before              {{JSON}} NOT NULL,
    after               {{JSON}} NOT NULL,
    at_ms               BIGINT NOT NULL
);
CREATE INDEX review_actions_event ON review_actions (event_id, id);

CREATE TABLE stream_positions (
    stream_id           TEXT PRIMARY KEY,
    seq                 BIGINT NOT NULL,
    pts                 {{REAL}} NOT NULL,
    epoch               BIGINT NOT NULL DEFAULT 0,
    updated_ms          BIGINT NOT NULL
);

-- review_actions is an append-only audit trail: refuse UPDATE and DELETE in the database itself.
-- @sqlite
CREATE TRIGGER review_actions_no_update BEFORE UPDATE ON review_actions
BEGIN
    SELECT RAISE(ABORT, 'review_actions is append-only');
END;
CREATE TRIGGER review_actions_no_delete BEFORE DELETE ON review_actions
BEGIN
    SELECT RAISE(ABORT, 'review_actions is append-only');
END;
-- @postgres
CREATE FUNCTION review_actions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'review_actions is append-only';
END;
$$;
CREATE TRIGGER review_actions_no_change BEFORE UPDATE OR DELETE ON review_actions
    FOR EACH ROW EXECUTE FUNCTION review_actions_append_only();
CREATE TRIGGER review_actions_no_truncate BEFORE TRUNCATE ON review_actions
    FOR EACH STATEMENT EXECUTE FUNCTION review_actions_append_only();
-- @end
