-- Schema version 15: the last push to each CMDB target (collector/src/cmdb), for
-- GET /api/v1/cmdb/last-push. One row per target, replaced by each push; the report is the
-- JSON the push printed.
CREATE TABLE cmdb_pushes (
    target TEXT PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    report_json TEXT NOT NULL
) STRICT, WITHOUT ROWID;
