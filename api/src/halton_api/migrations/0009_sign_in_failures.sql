-- Failed sign-ins in a row per email address as typed (trimmed, lower-cased), whether or not an account has
-- it: an address without an account is locked exactly like one with, so the lock tells a guesser nothing
-- about who has signed up. Every API process reads and writes the same rows, so a lock earned through one
-- holds on all. `locked_until` NULL or past: sign-in may be tried. A success deletes the row; rows whose last
-- failure is older than the forget window are deleted as new failures arrive (hence the index).
CREATE TABLE sign_in_failures (
    email text PRIMARY KEY,
    failures integer NOT NULL CHECK (failures > 0),
    last_failed_at timestamptz NOT NULL,
    locked_until timestamptz
);
CREATE INDEX sign_in_failures_last_failed_at ON sign_in_failures (last_failed_at);
