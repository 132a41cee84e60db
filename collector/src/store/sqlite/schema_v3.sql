-- Schema version 3: tokens an operator can manage (docs/collector.md, "Tokens"), and the CA
-- behind each agent's certificate ("Rotating the CA").

-- When an operator revoked the enrollment token (`token revoke`); a revoked token enrolls no one.
ALTER TABLE enrollment_tokens ADD COLUMN revoked_at_ms INTEGER;
-- What an API token may do: scope names joined by ',' (read, export, admin). Tokens made before
-- scopes existed could only read, so they keep exactly that.
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT 'read';
-- When the API token stops working (`api-token create --ttl`); NULL: when revoked.
ALTER TABLE api_tokens ADD COLUMN expires_at_ms INTEGER;
-- When the API token last authenticated a request, to the minute (a read does not write per request).
ALTER TABLE api_tokens ADD COLUMN last_used_at_ms INTEGER;
-- SHA-256 (hex) of the SubjectPublicKeyInfo of the CA that signed the agent's current
-- certificate. NULL for certificates signed before it was recorded: such an agent is asked to
-- renew, like one whose CA is no longer the current one.
ALTER TABLE agents ADD COLUMN cert_ca_sha256 TEXT;
