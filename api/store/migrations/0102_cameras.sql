-- Cameras added or changed at run time through the API (the config file seeds them).
-- ``config`` is the validated CameraConfig as JSON, RTSP password included: it never leaves
-- the service through the API (responses mask it).
CREATE TABLE api_cameras (
    camera_id   TEXT PRIMARY KEY,
    config      TEXT NOT NULL,
    enabled     INTEGER NOT NULL DEFAULT 1,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL
);
