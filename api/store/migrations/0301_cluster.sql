-- Camera sharding across workers (docs/SCALE_OUT.md §2.2–2.4): desired cameras with their
-- current lease (epoch = fencing token, owner, committed position), the lease history, the
-- commit log (one row per fenced commit; a second commit from the same position is refused by
-- the primary key), fencing rejections, workers ever created (names are never reused) and the
-- uploader leases. Times are UTC epoch milliseconds.

CREATE TABLE cluster_cameras (
    camera_id           TEXT PRIMARY KEY,
    desired             INTEGER NOT NULL DEFAULT 1 CHECK (desired IN (0, 1)),
    cost                {{REAL}} NOT NULL DEFAULT 1.0,
    resource            TEXT,
    kind                TEXT NOT NULL DEFAULT 'synthetic',
    config              TEXT NOT NULL DEFAULT '{}',
    epoch               BIGINT NOT NULL DEFAULT 0,
    owner               TEXT,
    pos                 BIGINT NOT NULL DEFAULT 0,
    last_commit_ms      BIGINT,
    updated_ms          BIGINT NOT NULL
);
CREATE INDEX cluster_cameras_owner ON cluster_cameras (owner);

CREATE TABLE cluster_leases (
    camera_id           TEXT NOT NULL,
    epoch               BIGINT NOT NULL,
    owner               TEXT,
    granted_ms          BIGINT NOT NULL,
    start_pos           BIGINT NOT NULL,
    first_commit_ms     BIGINT,
    last_commit_ms      BIGINT,
    PRIMARY KEY (camera_id, epoch)
);

CREATE TABLE cluster_commits (
    camera_id           TEXT NOT NULL,
    from_pos            BIGINT NOT NULL,
    to_pos              BIGINT NOT NULL,
    epoch               BIGINT NOT NULL,
    committed_ms        BIGINT NOT NULL,
    PRIMARY KEY (camera_id, from_pos)
);

CREATE TABLE cluster_rejections (
    id                  {{AUTOINC}},
    camera_id           TEXT NOT NULL,
    stale_epoch         BIGINT NOT NULL,
    owner               TEXT,
    at_ms               BIGINT NOT NULL
);

CREATE TABLE cluster_workers (
    name                TEXT PRIMARY KEY,
    node                TEXT NOT NULL,
    capacity            {{REAL}} NOT NULL,
    state               TEXT NOT NULL
                        CHECK (state IN ('pending', 'ready', 'draining', 'dead')),
    created_ms          BIGINT NOT NULL,
    updated_ms          BIGINT NOT NULL
);

CREATE TABLE uploader_leases (
    shard               TEXT PRIMARY KEY,
    epoch               BIGINT NOT NULL,
    holder              TEXT NOT NULL,
    granted_ms          BIGINT NOT NULL
);
