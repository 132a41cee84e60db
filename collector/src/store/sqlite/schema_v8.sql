-- Schema version 8: the applied policies (collector/src/policy.rs), newest by version. Every
-- evaluation of the findings reads the newest; the older ones are its history.
CREATE TABLE policies (
    version INTEGER PRIMARY KEY CHECK (version > 0),
    sha256 TEXT NOT NULL,
    text TEXT NOT NULL,
    applied_at_ms INTEGER NOT NULL,
    applied_by TEXT NOT NULL
) STRICT;
