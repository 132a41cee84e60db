-- Schema version 12: each asset's state as the last evaluation saw it (live or not, its worst
-- live verdict), so the next one records in the audit trail what disappeared, came back or
-- changed verdict, whichever path removed or changed its sightings.
CREATE TABLE asset_states (
    asset_id TEXT PRIMARY KEY REFERENCES assets (asset_id),
    live INTEGER NOT NULL,
    verdict TEXT
) STRICT;
