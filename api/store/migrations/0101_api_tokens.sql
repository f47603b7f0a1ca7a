-- API tokens (hashed secrets only) and the append-only audit of authentication events.
CREATE TABLE api_tokens (
    token_id     TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('viewer', 'reviewer', 'admin')),
    secret_hash  TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    revoked_ms   BIGINT,
    last_used_ms BIGINT
);

CREATE TABLE auth_audit (
    audit_id  {{AUTOINC}},
    at_ms     BIGINT NOT NULL,
    action    TEXT NOT NULL,
    token_id  TEXT NOT NULL DEFAULT '',
    name      TEXT NOT NULL DEFAULT '',
    role      TEXT NOT NULL DEFAULT '',
    client    TEXT NOT NULL DEFAULT '',
    method    TEXT NOT NULL DEFAULT '',
    path      TEXT NOT NULL DEFAULT '',
    status    INTEGER NOT NULL DEFAULT 0,
    detail    TEXT NOT NULL DEFAULT ''
);

CREATE INDEX auth_audit_at ON auth_audit (at_ms);
CREATE INDEX auth_audit_token ON auth_audit (token_id, audit_id);

-- auth_audit is append-only (行为留痕): refuse UPDATE and DELETE in the database itself.
-- @sqlite
CREATE TRIGGER auth_audit_no_update BEFORE UPDATE ON auth_audit
BEGIN
    SELECT RAISE(ABORT, 'auth_audit is append-only');
END;
CREATE TRIGGER auth_audit_no_delete BEFORE DELETE ON auth_audit
BEGIN
    SELECT RAISE(ABORT, 'auth_audit is append-only');
END;
-- @postgres
CREATE FUNCTION auth_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'auth_audit is append-only';
END;
$$;
CREATE TRIGGER auth_audit_no_change BEFORE UPDATE OR DELETE ON auth_audit
    FOR EACH ROW EXECUTE FUNCTION auth_audit_append_only();
CREATE TRIGGER auth_audit_no_truncate BEFORE TRUNCATE ON auth_audit
    FOR EACH STATEMENT EXECUTE FUNCTION auth_audit_append_only();
-- @end
