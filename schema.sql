-- lrci ledger, migration 1. Frozen once released: later changes are new migrations
-- appended in src/ledger/migrate.rs, never edits here.
--
-- Timestamps are RFC 3339 UTC text with a `Z` and millisecond precision, e.g.
-- `2026-11-27T20:53:22.123Z`. That form sorts lexically in time order, so range
-- queries compare text.

-- One row per sync, backfill or replay that took the lock.
CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    kind         TEXT    NOT NULL CHECK (kind IN ('sync', 'backfill', 'replay')),
    started_at   TEXT    NOT NULL,
    finished_at  TEXT,
    window_from  TEXT,
    window_to    TEXT,
    exit_code    INTEGER,
    -- The JSON summary printed by --json, kept so `ledger runs` can show it later.
    summary      TEXT
);

-- Every alarm lrci has listed, with what it decided about it.
CREATE TABLE alarms (
    alarm_id        INTEGER PRIMARY KEY,
    rule_name       TEXT    NOT NULL,
    status          INTEGER,
    entity_name     TEXT,
    date_inserted   TEXT    NOT NULL,
    rbp_max         INTEGER,
    -- accepted: indicators extracted; filtered: a rule filter or --min-rbp said no;
    -- error: details or events could not be fetched or parsed yet (retried by later runs).
    decision        TEXT    NOT NULL CHECK (decision IN ('accepted', 'filtered', 'error')),
    reason          TEXT,
    event_count     INTEGER,
    fetch_attempts  INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    first_run_id    INTEGER REFERENCES runs (id),
    first_seen_at   TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
);
CREATE INDEX alarms_by_date ON alarms (date_inserted);
CREATE INDEX alarms_by_decision ON alarms (decision);

-- One POST to Collective Insights.
CREATE TABLE submissions (
    id           INTEGER PRIMARY KEY,
    run_id       INTEGER REFERENCES runs (id),
    at           TEXT    NOT NULL,
    items        INTEGER NOT NULL,
    debug        INTEGER NOT NULL CHECK (debug IN (0, 1)),
    outcome      TEXT    NOT NULL CHECK (outcome IN ('ok', 'rejected', 'failed')),
    http_status  INTEGER,
    -- result.summary.processed as CI returned it (JSON), when it did.
    processed    TEXT
);
CREATE INDEX submissions_by_at ON submissions (at);

-- One detection per (alarm, indicator type, normalised value).
CREATE TABLE detections (
    id             INTEGER PRIMARY KEY,
    alarm_id       INTEGER NOT NULL REFERENCES alarms (alarm_id),
    ioc_type       TEXT    NOT NULL CHECK (ioc_type IN ('ip', 'domain', 'url', 'vulnerability', 'hash')),
    value          TEXT    NOT NULL,
    field          TEXT    NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'rejected', 'excluded')),
    -- Why it was excluded (policy) or rejected (CI's 400 message).
    reason         TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL,
    sent_at        TEXT,
    submission_id  INTEGER REFERENCES submissions (id),
    UNIQUE (alarm_id, ioc_type, value)
);
CREATE INDEX detections_by_state ON detections (state);
CREATE INDEX detections_by_value ON detections (value);

-- The coverage map: for each UTC hour slice, up to when it was listed completely.
CREATE TABLE coverage (
    slice_start    TEXT PRIMARY KEY,
    covered_until  TEXT    NOT NULL,
    -- JSON array of the timestamps where a full page shared one dateInserted and
    -- the server ignored offset, so alarms may be missing; NULL when none.
    saturated_at   TEXT,
    updated_at     TEXT    NOT NULL,
    run_id         INTEGER REFERENCES runs (id)
);

-- Tombstones of alarms removed by `lrci ledger prune --before DATE`: the compact
-- memory of an alarm whose detail (the alarm row, its detections, old submissions
-- and runs) was pruned. The engine treats an alarm here as known, so a later
-- `backfill --refetch` over a pruned window lists it but never fetches, records or
-- sends it again. Coverage rows are never pruned. Added before the first release,
-- so it belongs to migration 1.
CREATE TABLE pruned_alarms (
    alarm_id       INTEGER PRIMARY KEY,
    date_inserted  TEXT    NOT NULL,
    -- The alarm's decision when it was pruned: accepted, filtered or error.
    decision       TEXT    NOT NULL,
    -- Its detections when pruned: all of them, those sent, and those still pending
    -- or failed (non-zero only when pruning was forced with --force).
    detections     INTEGER NOT NULL,
    sent           INTEGER NOT NULL,
    unsent         INTEGER NOT NULL,
    pruned_at      TEXT    NOT NULL
);
