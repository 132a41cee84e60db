-- v17: what the dashboard (issue 16) reads, fast at 10,000 hosts and 50,000 assets.
--
-- The models spreading fastest: live sightings by kind and first sighting, with what the count
-- needs, so it reads the index alone.
CREATE INDEX sightings_live_by_first_seen ON sightings (kind, first_seen_ms, asset_id, agent_id)
    WHERE removed_at_ms IS NULL;
-- The listings' conditions on an asset's sightings (package file, verdict, live) answered from
-- the index instead of the rows, which hold the entry JSON.
CREATE INDEX sightings_by_asset_state ON sightings (asset_id, owned, removed_at_ms, verdict, agent_id);
-- The search (`q=`) looks in this text: the location, the model's own name, its Hugging Face
-- repo and source name, a package name and the SHA-256, lower-cased, one per line. Computed from
-- the row (nothing to keep in step at ingest) and kept, for live sightings, in an index the
-- search reads instead of parsing every entry's JSON.
ALTER TABLE sightings ADD COLUMN search_text TEXT GENERATED ALWAYS AS (lower(
    location || char(10) || COALESCE(json_extract(entry_json, '$.metadata.name'), '') || char(10)
    || COALESCE(json_extract(entry_json, '$.source.repo'), '') || char(10)
    || COALESCE(json_extract(entry_json, '$.source.name'), '') || char(10)
    || COALESCE(json_extract(entry_json, '$.name'), '') || char(10)
    || COALESCE(json_extract(entry_json, '$.sha256'), ''))) VIRTUAL;
CREATE INDEX sightings_live_search ON sightings (asset_id, search_text) WHERE removed_at_ms IS NULL;
-- The overview's findings by severity, its newest critical ones and its 30-day trend, read from
-- the index instead of the rows (which hold the evidence JSON).
CREATE INDEX findings_summary ON findings (state, severity, first_seen_ms, resolved_at_ms);
-- Where a server listens (`exposure=`, the overview's exposed servers): a runtime entry's
-- `listening` array, kept for live runtimes in an index, so the test reads that short array
-- instead of parsing the whole entry.
ALTER TABLE sightings ADD COLUMN listening_json TEXT GENERATED ALWAYS AS (
    CASE WHEN kind = 'runtime' AND json_type(entry_json, '$.listening') = 'array'
        THEN json_extract(entry_json, '$.listening') END) VIRTUAL;
CREATE INDEX sightings_live_listening ON sightings (asset_id, listening_json)
    WHERE removed_at_ms IS NULL AND kind = 'runtime';
