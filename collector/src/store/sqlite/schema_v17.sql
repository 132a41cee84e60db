-- v17: the dashboard's "spreading fastest" reads the live sightings that began lately; without
-- this index it scans every sighting.
CREATE INDEX sightings_live_by_first_seen ON sightings (first_seen_ms) WHERE removed_at_ms IS NULL;
