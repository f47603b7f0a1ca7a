-- Console users (issue 15): people log in with a name and password, machines keep API tokens.
-- Passwords are argon2id hashes (never the password); the TOTP secret, when enrolled, is sealed
-- with a key derived from the installation key; totp_last_step is the last accepted time step
-- (a code is never accepted twice). Sessions keep only the HMAC of their secret, like tokens.
CREATE TABLE users (
    user_id        TEXT PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL CHECK (role IN ('viewer', 'reviewer', 'admin')),
    password_hash  TEXT NOT NULL,
    created_ms     BIGINT NOT NULL,
    password_ms    BIGINT NOT NULL,
    display_name   TEXT NOT NULL DEFAULT '',
    totp_secret    TEXT,
    totp_last_step BIGINT,
    disabled_ms    BIGINT
);

CREATE TABLE user_sessions (
    session_id   TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (user_id),
    secret_hash  TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    expires_ms   BIGINT NOT NULL,
    ended_ms     BIGINT,
    client       TEXT NOT NULL DEFAULT ''
);

CREATE INDEX user_sessions_user ON user_sessions (user_id, ended_ms);
CREATE INDEX user_sessions_expires ON user_sessions (expires_ms);
CREATE INDEX user_sessions_ended ON user_sessions (ended_ms);
