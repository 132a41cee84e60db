-- Schema version 14: which agent downloaded which release archive. A rollback counts toward
-- pausing a cohort only from an agent that downloaded the release it says it rolled back.
CREATE TABLE release_downloads (
    agent_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (agent_id, sha256)
) STRICT, WITHOUT ROWID;
