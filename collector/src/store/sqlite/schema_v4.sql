-- Schema version 4: what one agent stores is bounded and cannot rewrite what others see.

-- The hostname the agent reports in its batches; `hostname` stays the one it enrolled with.
ALTER TABLE agents ADD COLUMN reported_hostname TEXT;

-- Bytes of the agent's sightings (entry json, local key, location), kept by the triggers below,
-- for its storage quota.
ALTER TABLE agents ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE agents SET stored_bytes = (
    SELECT COALESCE(SUM(length(CAST(s.entry_json AS BLOB)) + length(CAST(s.local_key AS BLOB))
        + length(CAST(s.location AS BLOB))), 0)
    FROM sightings s WHERE s.agent_id = agents.agent_id);

CREATE TRIGGER sightings_stored_bytes_insert AFTER INSERT ON sightings BEGIN
    UPDATE agents SET stored_bytes = stored_bytes + length(CAST(NEW.entry_json AS BLOB))
        + length(CAST(NEW.local_key AS BLOB)) + length(CAST(NEW.location AS BLOB))
    WHERE agent_id = NEW.agent_id;
END;

CREATE TRIGGER sightings_stored_bytes_update AFTER UPDATE OF entry_json, location ON sightings BEGIN
    UPDATE agents SET stored_bytes = stored_bytes
        + length(CAST(NEW.entry_json AS BLOB)) + length(CAST(NEW.location AS BLOB))
        - length(CAST(OLD.entry_json AS BLOB)) - length(CAST(OLD.location AS BLOB))
    WHERE agent_id = NEW.agent_id;
END;

CREATE TRIGGER sightings_stored_bytes_delete AFTER DELETE ON sightings BEGIN
    UPDATE agents SET stored_bytes = stored_bytes - length(CAST(OLD.entry_json AS BLOB))
        - length(CAST(OLD.local_key AS BLOB)) - length(CAST(OLD.location AS BLOB))
    WHERE agent_id = OLD.agent_id;
END;

-- A model sighting's safety verdict (safe, suspicious, dangerous, unknown), so an asset's
-- fleet-wide verdict is the worst of its live sightings.
ALTER TABLE sightings ADD COLUMN verdict TEXT;
UPDATE sightings SET verdict = CASE json_extract(entry_json, '$.safety.verdict')
        WHEN 'safe' THEN 'safe' WHEN 'suspicious' THEN 'suspicious' WHEN 'dangerous' THEN 'dangerous'
        ELSE 'unknown' END
    WHERE kind = 'model';

-- Set on an agent that proved it is a reinstall of the agents it will supersede: they are
-- superseded when its first complete snapshot arrives (JSON array of agent ids).
ALTER TABLE agents ADD COLUMN supersedes_pending TEXT;
