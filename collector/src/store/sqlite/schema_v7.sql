-- Schema version 7: findings (collector/src/findings/mod.rs has the design).

-- One row per finding: a rule's conclusion about one subject, kept across evaluations. Its
-- state moves open -> acknowledged (by an operator, until an optional expiry) or resolved (the
-- evidence is gone), and resolved -> reopened when the evidence returns.
CREATE TABLE findings (
    finding_id TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('info', 'low', 'medium', 'high', 'critical')),
    title TEXT NOT NULL,
    evidence_json TEXT NOT NULL CHECK (json_valid(evidence_json)),
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved', 'reopened')),
    state_changed_ms INTEGER NOT NULL,
    resolved_at_ms INTEGER,
    reopened_count INTEGER NOT NULL DEFAULT 0,
    ack_reason TEXT,
    ack_by TEXT,
    ack_at_ms INTEGER,
    ack_expires_ms INTEGER,
    UNIQUE (rule_id, subject)
) STRICT;
CREATE INDEX findings_by_state ON findings (state, finding_id);
CREATE INDEX findings_by_rule ON findings (rule_id, finding_id);

-- The hosts and assets each finding concerns (its latest evidence), for the filters.
CREATE TABLE finding_hosts (
    finding_id TEXT NOT NULL REFERENCES findings (finding_id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL,
    PRIMARY KEY (finding_id, agent_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX finding_hosts_by_agent ON finding_hosts (agent_id, finding_id);

CREATE TABLE finding_assets (
    finding_id TEXT NOT NULL REFERENCES findings (finding_id) ON DELETE CASCADE,
    asset_id TEXT NOT NULL,
    PRIMARY KEY (finding_id, asset_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX finding_assets_by_asset ON finding_assets (asset_id, finding_id);
