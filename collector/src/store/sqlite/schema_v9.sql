-- Schema version 9: the audit trail (collector/src/store/sqlite/audit.rs): append-only, each
-- record chained by hash to the one before.
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY CHECK (seq > 0),
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail_json TEXT NOT NULL CHECK (json_valid(detail_json)),
    prev_sha256 TEXT NOT NULL,
    sha256 TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_time ON audit (at_ms, seq);
-- Append-only: the database refuses to change or delete a record.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
