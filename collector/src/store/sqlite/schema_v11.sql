-- Schema version 11: decommissioned hosts (`aiscout-collector host decommission`): their
-- sightings are closed, their agent revoked, their history kept.
ALTER TABLE agents ADD COLUMN decommissioned_at_ms INTEGER;
