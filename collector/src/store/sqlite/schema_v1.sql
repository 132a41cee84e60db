-- Schema version 1 of the collector store (collector/src/store/mod.rs has the design).
-- Times are Unix milliseconds. Kinds are the names of AssetKind.

CREATE TABLE agents (
    agent_id TEXT PRIMARY KEY,
    cert_serial TEXT NOT NULL,
    cert_fingerprint TEXT NOT NULL,
    cert_not_after_ms INTEGER NOT NULL,
    machine_fingerprint TEXT NOT NULL,
    reported_machine_fingerprint TEXT,
    hostname TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    enrolled_at_ms INTEGER NOT NULL,
    last_seen_ms INTEGER,
    last_sequence INTEGER NOT NULL DEFAULT 0 CHECK (last_sequence >= 0),
    revoked_at_ms INTEGER,
    host_facts_json TEXT,
    -- The snapshot being received, and whether every part of it arrived without a gap.
    open_snapshot_id INTEGER,
    open_snapshot_complete INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX agents_by_machine_fingerprint ON agents (machine_fingerprint, enrolled_at_ms);

CREATE TABLE assets (
    asset_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('model', 'framework', 'runtime', 'tooling')),
    identity TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL
) STRICT;

CREATE INDEX assets_by_kind ON assets (kind, asset_id);

CREATE TABLE sightings (
    sighting_id INTEGER PRIMARY KEY,
    asset_id TEXT NOT NULL REFERENCES assets (asset_id),
    agent_id TEXT NOT NULL REFERENCES agents (agent_id),
    kind TEXT NOT NULL,
    local_key TEXT NOT NULL,
    location TEXT NOT NULL,
    entry_json TEXT NOT NULL CHECK (json_valid(entry_json)),
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    removed_at_ms INTEGER,
    UNIQUE (asset_id, agent_id, local_key)
) STRICT;

CREATE INDEX sightings_by_host_key ON sightings (agent_id, kind, local_key);
CREATE INDEX sightings_live_by_asset ON sightings (asset_id, agent_id) WHERE removed_at_ms IS NULL;

-- Keys named by the parts of each agent's open snapshot.
CREATE TABLE snapshot_keys (
    agent_id TEXT NOT NULL REFERENCES agents (agent_id),
    snapshot_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    local_key TEXT NOT NULL,
    PRIMARY KEY (agent_id, snapshot_id, kind, local_key)
) STRICT, WITHOUT ROWID;

CREATE TABLE enrollment_tokens (
    token_id TEXT PRIMARY KEY,
    secret_sha256 BLOB NOT NULL UNIQUE,
    label TEXT NOT NULL,
    uses_left INTEGER NOT NULL CHECK (uses_left >= 0),
    expires_at_ms INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE api_tokens (
    token_id TEXT PRIMARY KEY,
    secret_sha256 BLOB NOT NULL UNIQUE,
    label TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
) STRICT;
