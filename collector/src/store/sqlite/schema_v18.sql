-- v18: each agent's rate-limit window lives in the store (collector/src/rate.rs,
-- store/rate_window.rs), as in the PostgreSQL store, where several collectors share it.
CREATE TABLE rate_windows (
    agent_id TEXT PRIMARY KEY,
    window_start_ms INTEGER NOT NULL,
    batches INTEGER NOT NULL,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;
