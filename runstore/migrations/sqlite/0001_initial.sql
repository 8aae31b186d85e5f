-- Schema v1: the first run store (wsgauge 0.1). Never edited once released: later versions add files.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per load run. status: running | completed | stopped | failed | interrupted.
CREATE TABLE IF NOT EXISTS runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL,
    started_at   REAL    NOT NULL,            -- unix seconds
    ended_at     REAL,                        -- NULL while running
    heartbeat_at REAL    NOT NULL,            -- last write; a running run with an old heartbeat is stale
    status       TEXT    NOT NULL,
    target       TEXT    NOT NULL,            -- ws:// URL, or "embedded reference server (ws://...)"
    options      TEXT    NOT NULL,            -- JSON: the load test's options
    versions     TEXT    NOT NULL,            -- JSON: {"wsgauge": ..., "locust": ..., "python": ...}
    git_commit   TEXT,
    machine      TEXT    NOT NULL,            -- JSON: {"hostname", "cpus", "memory_bytes", "platform"}
    summary      TEXT                         -- JSON written when the run ends (free form, for listings)
);

-- Latency histograms. resolution 1 = one row per second; 60 = per-minute roll-ups maintained by the writer
-- (exact merges of the per-second rows), so long ranges merge quickly. t = bucket start (unix seconds).
CREATE TABLE IF NOT EXISTS latency (
    run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    metric     TEXT    NOT NULL,
    resolution INTEGER NOT NULL,
    t          INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    min_us     INTEGER NOT NULL,
    max_us     INTEGER NOT NULL,
    mean_us    REAL    NOT NULL,
    p50_us     INTEGER NOT NULL,
    p90_us     INTEGER NOT NULL,
    p95_us     INTEGER NOT NULL,
    p99_us     INTEGER NOT NULL,
    p999_us    INTEGER NOT NULL,
    hist       BLOB    NOT NULL,              -- HdrHistogram V2, compressed, base64 (runstore.histogram)
    PRIMARY KEY (run_id, metric, resolution, t)
) WITHOUT ROWID;

-- Additive per-second counts: sent.<type>, recv.<type>, errors.<type>.<code>, latency_clamped, ...
CREATE TABLE IF NOT EXISTS counters (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name   TEXT    NOT NULL,
    t      INTEGER NOT NULL,
    value  INTEGER NOT NULL,
    PRIMARY KEY (run_id, name, t)
) WITHOUT ROWID;

-- Per-second gauge statistics over per-user observations: queue_size, users.<state>.
CREATE TABLE IF NOT EXISTS gauges (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name   TEXT    NOT NULL,
    t      INTEGER NOT NULL,
    sum    REAL    NOT NULL,
    count  INTEGER NOT NULL,
    min    REAL,
    max    REAL,
    PRIMARY KEY (run_id, name, t)
) WITHOUT ROWID;

-- Connection state transitions, one row each.
CREATE TABLE IF NOT EXISTS events (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    ts     REAL    NOT NULL,
    user   TEXT    NOT NULL,
    kind   TEXT    NOT NULL,
    detail TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_by_run_ts ON events (run_id, ts);

-- Server-side metrics scraped once a second (Prometheus sample name with labels -> value).
CREATE TABLE IF NOT EXISTS server_metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name   TEXT    NOT NULL,
    t      INTEGER NOT NULL,
    value  REAL    NOT NULL,
    PRIMARY KEY (run_id, name, t)
) WITHOUT ROWID;
