-- Schema v2: what a run is (kind, host, tag, build) and roll-ups for long-lived runs.
-- Counters and gauges gain a resolution column like latency's: 1 = per second, 60 and 3600 = roll-ups kept
-- by the writer (exact merges). SQLite cannot change a primary key in place, so both tables are rebuilt and
-- their roll-ups computed from the per-second rows. Latency hour roll-ups need histogram merges: the store
-- fills them in Python right after this file (runstore.schema.fill_latency_hours).

ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'load' CHECK (kind IN ('load', 'probe'));
ALTER TABLE runs ADD COLUMN host TEXT;
ALTER TABLE runs ADD COLUMN tag TEXT;
ALTER TABLE runs ADD COLUMN build TEXT;
UPDATE runs SET host = json_extract(machine, '$.hostname'), build = git_commit;
CREATE INDEX runs_by_kind_name ON runs (kind, name);

CREATE TABLE counters_v2 (
    run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    resolution INTEGER NOT NULL,
    t          INTEGER NOT NULL,
    value      INTEGER NOT NULL,
    PRIMARY KEY (run_id, name, resolution, t)
) WITHOUT ROWID;
INSERT INTO counters_v2 SELECT run_id, name, 1, t, value FROM counters;
INSERT INTO counters_v2
    SELECT run_id, name, 60, t / 60 * 60, SUM(value) FROM counters GROUP BY run_id, name, t / 60;
INSERT INTO counters_v2
    SELECT run_id, name, 3600, t / 3600 * 3600, SUM(value) FROM counters GROUP BY run_id, name, t / 3600;
DROP TABLE counters;
ALTER TABLE counters_v2 RENAME TO counters;

-- seconds: how many seconds of the bucket had a row (1 for a per-second row).
CREATE TABLE gauges_v2 (
    run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    resolution INTEGER NOT NULL,
    t          INTEGER NOT NULL,
    sum        REAL    NOT NULL,
    count      INTEGER NOT NULL,
    min        REAL,
    max        REAL,
    seconds    INTEGER NOT NULL,
    PRIMARY KEY (run_id, name, resolution, t)
) WITHOUT ROWID;
INSERT INTO gauges_v2 SELECT run_id, name, 1, t, sum, count, min, max, 1 FROM gauges;
INSERT INTO gauges_v2
    SELECT run_id, name, 60, t / 60 * 60, SUM(sum), SUM(count), MIN(min), MAX(max), COUNT(*)
    FROM gauges GROUP BY run_id, name, t / 60;
INSERT INTO gauges_v2
    SELECT run_id, name, 3600, t / 3600 * 3600, SUM(sum), SUM(count), MIN(min), MAX(max), COUNT(*)
    FROM gauges GROUP BY run_id, name, t / 3600;
DROP TABLE gauges;
ALTER TABLE gauges_v2 RENAME TO gauges;
