-- Schema version 16: a host's sightings in export order (asset, then sighting id), so a per-host
-- export or an SPDX document (which walks the fleet host by host) reads each chunk from the
-- index instead of sorting the host's rows again for every chunk.
CREATE INDEX sightings_by_host_asset ON sightings (agent_id, asset_id, sighting_id);
