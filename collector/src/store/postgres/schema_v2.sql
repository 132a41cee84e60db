-- v2: listings page in the byte order of their ids (`ORDER BY … COLLATE "C"`, as SQLite
-- orders them), which an index in the database's own collation cannot serve: each page sorted
-- every row (measured: about a second a page at 200,000 assets, 30 s with stale statistics).
-- Indexes in that order serve a page by reading it.
CREATE INDEX assets_by_kind_in_id_order ON assets (kind, asset_id COLLATE "C");
CREATE INDEX assets_in_id_order ON assets (asset_id COLLATE "C");
CREATE INDEX agents_in_id_order ON agents (agent_id COLLATE "C");
