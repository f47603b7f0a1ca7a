-- Search by clothing (issue 13, item 5): the coat and trousers colours the structuring stage
-- fused for a person track or a two-wheeler's rider (pipeline/structuring/person.py) as indexed
-- columns, like vehicle_color (0420). Filled from `extra` for events stored before.
ALTER TABLE events ADD COLUMN coat_color TEXT;
ALTER TABLE events ADD COLUMN trousers_color TEXT;
-- @sqlite
UPDATE events SET coat_color = json_extract(extra, '$.coat_color'),
                  trousers_color = json_extract(extra, '$.trousers_color')
 WHERE extra IS NOT NULL;
-- @postgres
UPDATE events SET coat_color = extra ->> 'coat_color',
                  trousers_color = extra ->> 'trousers_color'
 WHERE extra IS NOT NULL;
-- @end
CREATE INDEX events_coat_color ON events (coat_color, first_seen_ms);
CREATE INDEX events_trousers_color ON events (trousers_color, first_seen_ms);
