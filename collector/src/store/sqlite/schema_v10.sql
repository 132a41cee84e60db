-- Schema version 10: how far each SIEM target has been sent the finding events of the audit
-- trail (collector/src/siem.rs). The audit trail is the outbox: events are never lost while a
-- target is down, and a cursor only moves once the target accepted what is before it.
CREATE TABLE siem_cursors (
    target TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL DEFAULT 0,
    delivered INTEGER NOT NULL DEFAULT 0,
    last_ok_ms INTEGER,
    last_error TEXT,
    last_error_ms INTEGER
) STRICT;
