-- Dead letters of the outbox (issue 14): rows in state 'failed' are dead letters, last_error is
-- the reason. `rejections` counts the destination's per-object transient answers (e.g. GA/T 1400
-- StatusCode 1/2/3/9) separately from transport failures, so an outage never uses up the attempts
-- after which a row that keeps being refused is given up on.
ALTER TABLE outbox ADD COLUMN rejections INTEGER NOT NULL DEFAULT 0;
CREATE INDEX outbox_dead ON outbox (destination, state, id);
