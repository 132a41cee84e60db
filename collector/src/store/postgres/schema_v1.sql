-- Schema version 1 of the PostgreSQL store: the SQLite store's v17 in PostgreSQL's terms
-- (collector/src/store/mod.rs has the design; collector/src/store/postgres/mod.rs the
-- differences). Times are Unix milliseconds (BIGINT). Kinds are the names of AssetKind.
-- JSON columns are `json`, not `jsonb`: the text an agent sent is kept byte for byte (exports
-- are deterministic and an agent's quota counts its bytes), and it is still checked to be JSON.
-- Assets and sightings leave room in their pages (fillfactor): every batch moves the
-- `last_seen_ms` of what it names, and with room on the page that is a HOT update, which
-- writes no index entry (sightings have eight indexes, one of them a trigram index).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE agents (
    agent_id TEXT PRIMARY KEY,
    cert_serial TEXT NOT NULL,
    cert_fingerprint TEXT NOT NULL,
    cert_not_after_ms BIGINT NOT NULL,
    machine_fingerprint TEXT NOT NULL,
    reported_machine_fingerprint TEXT,
    hostname TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    enrolled_at_ms BIGINT NOT NULL,
    last_seen_ms BIGINT,
    last_sequence BIGINT NOT NULL DEFAULT 0 CHECK (last_sequence >= 0),
    revoked_at_ms BIGINT,
    host_facts_json TEXT,
    -- The snapshot being received, and whether every part of it arrived without a gap.
    open_snapshot_id BIGINT,
    open_snapshot_complete BOOLEAN NOT NULL DEFAULT FALSE,
    install_key_sha256 TEXT,
    superseded_by TEXT,
    superseded_at_ms BIGINT,
    clone_detected_at_ms BIGINT,
    cert_ca_sha256 TEXT,
    reported_hostname TEXT,
    -- Bytes of the agent's sightings (entry json, local key, location), kept by the triggers
    -- below, for its storage quota.
    stored_bytes BIGINT NOT NULL DEFAULT 0,
    -- JSON array of the agent ids this one supersedes at its first complete snapshot.
    supersedes_pending TEXT,
    decommissioned_at_ms BIGINT,
    identity_json TEXT
);
CREATE INDEX agents_by_machine_fingerprint ON agents (machine_fingerprint, enrolled_at_ms);

CREATE TABLE assets (
    asset_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('model', 'framework', 'runtime', 'tooling')),
    identity TEXT NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
) WITH (fillfactor = 70);
CREATE INDEX assets_by_kind ON assets (kind, asset_id);

CREATE TABLE sightings (
    sighting_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asset_id TEXT NOT NULL REFERENCES assets (asset_id),
    agent_id TEXT NOT NULL REFERENCES agents (agent_id),
    kind TEXT NOT NULL,
    local_key TEXT NOT NULL,
    location TEXT NOT NULL,
    entry_json JSON NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    removed_at_ms BIGINT,
    -- A model sighting's safety verdict (safe, suspicious, dangerous, unknown).
    verdict TEXT,
    -- The entry has an `owner` object: a model file an installed package shipped.
    owned BOOLEAN NOT NULL DEFAULT FALSE,
    -- What the search (`q=`) looks in (SQLite v17).
    search_text TEXT GENERATED ALWAYS AS (lower(
        location || E'\n' || COALESCE(entry_json -> 'metadata' ->> 'name', '') || E'\n'
        || COALESCE(entry_json -> 'source' ->> 'repo', '') || E'\n'
        || COALESCE(entry_json -> 'source' ->> 'name', '') || E'\n'
        || COALESCE(entry_json ->> 'name', '') || E'\n'
        || COALESCE(entry_json ->> 'sha256', ''))) STORED,
    -- A runtime entry's `listening` array (SQLite v17).
    listening_json JSONB GENERATED ALWAYS AS (
        CASE WHEN kind = 'runtime' AND json_typeof(entry_json -> 'listening') = 'array'
            THEN (entry_json -> 'listening')::jsonb END) STORED,
    UNIQUE (asset_id, agent_id, local_key)
) WITH (fillfactor = 75);
CREATE INDEX sightings_by_host_key ON sightings (agent_id, kind, local_key);
CREATE INDEX sightings_live_by_asset ON sightings (asset_id, agent_id) WHERE removed_at_ms IS NULL;
CREATE INDEX sightings_by_host_asset ON sightings (agent_id, asset_id, sighting_id);
CREATE INDEX sightings_live_by_first_seen ON sightings (kind, first_seen_ms, asset_id, agent_id)
    WHERE removed_at_ms IS NULL;
CREATE INDEX sightings_by_asset_state ON sightings (asset_id, owned, removed_at_ms, verdict, agent_id);
CREATE INDEX sightings_live_search ON sightings USING gin (search_text gin_trgm_ops)
    WHERE removed_at_ms IS NULL;
CREATE INDEX sightings_live_runtimes ON sightings (asset_id) WHERE removed_at_ms IS NULL AND kind = 'runtime';

-- agents.stored_bytes is the sum over the agent's sightings of their bytes (entry json, local
-- key, location), whoever writes them. Statement-level triggers over the transition tables: a
-- batch of 500 sightings updates its agent's row once per statement, not once per sighting, and
-- a statement that leaves every size as it was (last_seen, removed_at) updates no agent.
CREATE FUNCTION sightings_stored_bytes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE agents a SET stored_bytes = a.stored_bytes + d.bytes
        FROM (SELECT agent_id, SUM(octet_length(entry_json::text) + octet_length(local_key)
                  + octet_length(location))::bigint AS bytes
              FROM new_rows GROUP BY agent_id) d
        WHERE a.agent_id = d.agent_id AND d.bytes <> 0;
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE agents a SET stored_bytes = a.stored_bytes + d.bytes
        FROM (SELECT agent_id, SUM(bytes)::bigint AS bytes FROM (
                  SELECT agent_id, octet_length(entry_json::text) + octet_length(local_key)
                      + octet_length(location) AS bytes FROM new_rows
                  UNION ALL
                  SELECT agent_id, -(octet_length(entry_json::text) + octet_length(local_key)
                      + octet_length(location)) FROM old_rows) c
              GROUP BY agent_id) d
        WHERE a.agent_id = d.agent_id AND d.bytes <> 0;
    ELSE
        UPDATE agents a SET stored_bytes = a.stored_bytes - d.bytes
        FROM (SELECT agent_id, SUM(octet_length(entry_json::text) + octet_length(local_key)
                  + octet_length(location))::bigint AS bytes
              FROM old_rows GROUP BY agent_id) d
        WHERE a.agent_id = d.agent_id AND d.bytes <> 0;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER sightings_stored_bytes_insert AFTER INSERT ON sightings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sightings_stored_bytes();
CREATE TRIGGER sightings_stored_bytes_update AFTER UPDATE ON sightings
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sightings_stored_bytes();
CREATE TRIGGER sightings_stored_bytes_delete AFTER DELETE ON sightings
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION sightings_stored_bytes();

-- Keys named by the parts of each agent's open snapshot.
CREATE TABLE snapshot_keys (
    agent_id TEXT NOT NULL REFERENCES agents (agent_id),
    snapshot_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    local_key TEXT NOT NULL,
    PRIMARY KEY (agent_id, snapshot_id, kind, local_key)
);

CREATE TABLE enrollment_tokens (
    token_id TEXT PRIMARY KEY,
    secret_sha256 BYTEA NOT NULL UNIQUE,
    label TEXT NOT NULL,
    uses_left BIGINT NOT NULL CHECK (uses_left >= 0),
    expires_at_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);

CREATE TABLE api_tokens (
    token_id TEXT PRIMARY KEY,
    secret_sha256 BYTEA NOT NULL UNIQUE,
    label TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT,
    scopes TEXT NOT NULL DEFAULT 'read',
    expires_at_ms BIGINT,
    last_used_at_ms BIGINT
);

CREATE TABLE agent_updates (
    agent_id TEXT PRIMARY KEY REFERENCES agents (agent_id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    cohort TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    state TEXT NOT NULL,
    version TEXT NOT NULL,
    detail TEXT NOT NULL,
    reported_at_ms BIGINT NOT NULL
);
CREATE INDEX agent_updates_rollout ON agent_updates (channel, cohort, state, version);

CREATE TABLE findings (
    finding_id TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('info', 'low', 'medium', 'high', 'critical')),
    title TEXT NOT NULL,
    evidence_json JSON NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved', 'reopened')),
    state_changed_ms BIGINT NOT NULL,
    resolved_at_ms BIGINT,
    reopened_count BIGINT NOT NULL DEFAULT 0,
    ack_reason TEXT,
    ack_by TEXT,
    ack_at_ms BIGINT,
    ack_expires_ms BIGINT,
    UNIQUE (rule_id, subject)
);
CREATE INDEX findings_by_state ON findings (state, finding_id);
CREATE INDEX findings_by_rule ON findings (rule_id, finding_id);
CREATE INDEX findings_summary ON findings (state, severity, first_seen_ms, resolved_at_ms);

CREATE TABLE finding_hosts (
    finding_id TEXT NOT NULL REFERENCES findings (finding_id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL,
    PRIMARY KEY (finding_id, agent_id)
);
CREATE INDEX finding_hosts_by_agent ON finding_hosts (agent_id, finding_id);

CREATE TABLE finding_assets (
    finding_id TEXT NOT NULL REFERENCES findings (finding_id) ON DELETE CASCADE,
    asset_id TEXT NOT NULL,
    PRIMARY KEY (finding_id, asset_id)
);
CREATE INDEX finding_assets_by_asset ON finding_assets (asset_id, finding_id);

CREATE TABLE policies (
    version BIGINT PRIMARY KEY CHECK (version > 0),
    sha256 TEXT NOT NULL,
    text TEXT NOT NULL,
    applied_at_ms BIGINT NOT NULL,
    applied_by TEXT NOT NULL
);

-- The audit trail: append-only, each record chained by hash to the one before. Appends take
-- an advisory lock (postgres/audit.rs), so collectors sharing the database keep one chain.
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY CHECK (seq > 0),
    at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail_json JSON NOT NULL,
    prev_sha256 TEXT NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit (at_ms, seq);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only';
END $$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE TABLE siem_cursors (
    target TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL DEFAULT 0,
    delivered BIGINT NOT NULL DEFAULT 0,
    last_ok_ms BIGINT,
    last_error TEXT,
    last_error_ms BIGINT
);

CREATE TABLE asset_states (
    asset_id TEXT PRIMARY KEY REFERENCES assets (asset_id),
    live BOOLEAN NOT NULL,
    verdict TEXT
);

CREATE TABLE release_downloads (
    agent_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (agent_id, sha256)
);

CREATE TABLE cmdb_pushes (
    target TEXT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    report_json TEXT NOT NULL
);

-- What a collector would otherwise keep in memory between requests, so any replica can serve
-- any agent: each agent's rate-limit window (collector/src/rate.rs).
CREATE TABLE rate_windows (
    agent_id TEXT PRIMARY KEY,
    window_start_ms BIGINT NOT NULL,
    batches BIGINT NOT NULL,
    bytes BIGINT NOT NULL
);
