-- Schema version 5: model files that installed packages shipped are kept apart in listings.

-- 1 when the sighting's entry has an `owner` object (a model file of an installed package:
-- docs/scan-json.md), so the assets listing can leave package files out.
ALTER TABLE sightings ADD COLUMN owned INTEGER NOT NULL DEFAULT 0;
UPDATE sightings SET owned = 1 WHERE kind = 'model' AND json_type(entry_json, '$.owner') = 'object';
