-- Maintenance windows: while one is on, a site is still checked and its results
-- stored, but no alert goes out and its rounds count apart from uptime. Windows
-- are public (served with the site's status), so a declared "maintenance" that
-- hides an outage is there for anyone to see.

CREATE TABLE maintenance_windows (
    id               BIGSERIAL PRIMARY KEY,
    website_id       BIGINT NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    -- `once`: [starts_at, ends_at). `weekly`: every `weekday` (0 = Monday … 6 =
    -- Sunday) at `start_time` local time in `time_zone`, for `duration_minutes`.
    kind             TEXT NOT NULL CHECK (kind IN ('once', 'weekly')),
    starts_at        TIMESTAMPTZ,
    ends_at          TIMESTAMPTZ,
    weekday          SMALLINT CHECK (weekday BETWEEN 0 AND 6),
    start_time       TIME,
    duration_minutes INTEGER CHECK (duration_minutes BETWEEN 1 AND 1440),
    -- An IANA zone name, checked by the API.
    time_zone        TEXT NOT NULL DEFAULT 'UTC' CHECK (length(time_zone) BETWEEN 1 AND 64),
    note             TEXT CHECK (char_length(note) <= 200),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT maintenance_windows_shape CHECK (
        (kind = 'once' AND starts_at IS NOT NULL AND ends_at IS NOT NULL
            AND ends_at > starts_at AND ends_at <= starts_at + interval '7 days'
            AND weekday IS NULL AND start_time IS NULL AND duration_minutes IS NULL)
        OR (kind = 'weekly' AND starts_at IS NULL AND ends_at IS NULL
            AND weekday IS NOT NULL AND start_time IS NOT NULL AND duration_minutes IS NOT NULL))
);
CREATE INDEX maintenance_windows_website_idx ON maintenance_windows (website_id);

-- Results received in rounds that opened inside a window: counted here, not in
-- `up`/`down`, so they stay out of the uptime share.
ALTER TABLE website_hourly_rollups
    ADD COLUMN maintenance_checks INTEGER NOT NULL DEFAULT 0;

-- An incident confirmed in a round that opened inside a window (its alert was withheld).
ALTER TABLE incidents
    ADD COLUMN opened_in_maintenance BOOLEAN NOT NULL DEFAULT false;
