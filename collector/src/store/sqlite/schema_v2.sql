-- Schema version 2: telling reinstalls from clones (docs/fleet.md, "Host identity").

-- SHA-256 (hex) of the install key the agent sent at enrollment; the key itself is not kept.
ALTER TABLE agents ADD COLUMN install_key_sha256 TEXT;
-- The agent that replaced this one when its host enrolled again (a reinstall), and when.
ALTER TABLE agents ADD COLUMN superseded_by TEXT;
ALTER TABLE agents ADD COLUMN superseded_at_ms INTEGER;
-- When this agent was found to share its machine fingerprint with another live agent.
ALTER TABLE agents ADD COLUMN clone_detected_at_ms INTEGER;
