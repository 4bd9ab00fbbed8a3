-- The dial-rate bucket every instance shares: one row per carrier account (src/store/bucket.rs).
-- Instants are microseconds since the epoch: `next_us` is the next free request slot, `hold_us`
-- the carrier's Retry-After; `first_us` and `granted` are the last reservation's answer.
CREATE TABLE dial_rate (
    account TEXT PRIMARY KEY,
    next_us BIGINT NOT NULL,
    hold_us BIGINT NOT NULL DEFAULT 0,
    first_us BIGINT NOT NULL DEFAULT 0,
    granted BIGINT NOT NULL DEFAULT 0,
    -- Counts reservations, so a give-back returns only the latest one's slots.
    seq BIGINT NOT NULL DEFAULT 0
);
