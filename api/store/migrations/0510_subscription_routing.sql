-- What each GA/T 1400 subscription matches, resolved when it is stored (by the node that has the
-- delivery config), so that the one write path (api/store/events.write_groups) can add its
-- 'sub:<subscribe_id>' outbox rows in the event's own transaction without that config:
-- match_types: comma-separated event types; match_keys: comma-separated keys of the resources
-- it names: '*' (the platform: everything), 'device:<id>', 'stream:<camera id>'.
ALTER TABLE viid_subscriptions ADD COLUMN match_types TEXT NOT NULL DEFAULT '';
ALTER TABLE viid_subscriptions ADD COLUMN match_keys TEXT NOT NULL DEFAULT '';
