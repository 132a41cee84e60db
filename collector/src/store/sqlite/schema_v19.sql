-- v19: an open snapshot marks the sightings it names instead of recording its keys.
-- Every live sighting a snapshot part names was rewritten anyway (its last_seen_ms); the key
-- rows were one more insert and one more delete per entry, and the sweep looked each live
-- sighting up among them. Now a snapshot that opens takes the agent's next snapshot_epoch,
-- every sighting it names (and every live one at a key whose entry was rejected) takes that
-- epoch, and the sweep closes the live sightings of the agent without it.
ALTER TABLE agents ADD COLUMN snapshot_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sightings ADD COLUMN snapshot_epoch INTEGER;
-- The keys of the snapshots open now become the marks of epoch 1.
UPDATE agents SET snapshot_epoch = 1 WHERE open_snapshot_id IS NOT NULL;
UPDATE sightings SET snapshot_epoch = 1
    WHERE removed_at_ms IS NULL AND EXISTS (
        SELECT 1 FROM snapshot_keys k JOIN agents a ON a.agent_id = k.agent_id
        WHERE k.snapshot_id = a.open_snapshot_id AND k.agent_id = sightings.agent_id
            AND k.kind = sightings.kind AND k.local_key = sightings.local_key);
DROP TABLE snapshot_keys;
-- Every upsert reads its asset's times (store/mod.rs, "Asset times"): from this index alone,
-- not the primary key's index and then the table.
CREATE INDEX assets_seen ON assets (asset_id, first_seen_ms, last_seen_ms);
