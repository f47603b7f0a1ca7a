-- Search (issue 13): checkpoint attributes as indexed columns. `vehicle_color` is the body colour
-- a checkpoint camera fused for a vehicle (pipeline/structuring), `lane_no` now also holds the
-- lane a pass event's track was counted in (pipeline/flow). Indexes lead with the searched value
-- and end with the time, the order every list route reads in. Partial-plate search on
-- PostgreSQL is served by a trigram index when pg_trgm is available (api/store/search.py).
ALTER TABLE events ADD COLUMN vehicle_color TEXT;
-- @sqlite
UPDATE events SET vehicle_color = json_extract(extra, '$.vehicle_color') WHERE extra IS NOT NULL;
-- @postgres
UPDATE events SET vehicle_color = extra ->> 'vehicle_color' WHERE extra IS NOT NULL;
-- @end
CREATE INDEX events_plate_color ON events (plate_color, first_seen_ms);
CREATE INDEX events_vehicle_color ON events (vehicle_color, first_seen_ms);
CREATE INDEX events_class_name ON events (class_name, first_seen_ms);
CREATE INDEX events_plate_first_seen ON events (plate_text, first_seen_ms);
