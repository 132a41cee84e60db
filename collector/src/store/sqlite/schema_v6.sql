-- Schema version 6: where each agent's self-update stands (docs/rollout.md, "Signed
-- self-update"), as it says with every check of the release channel. One row per agent, the
-- latest report; the rollout pause counts these rows per channel, cohort and version.
CREATE TABLE agent_updates (
    agent_id TEXT PRIMARY KEY REFERENCES agents(agent_id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    cohort TEXT NOT NULL,
    -- The version the agent runs.
    agent_version TEXT NOT NULL,
    -- current, staged, switching, updated, rolled_back or error.
    state TEXT NOT NULL,
    -- The release the state concerns ('' for current and error).
    version TEXT NOT NULL,
    detail TEXT NOT NULL,
    -- When the collector received the report (collector clock).
    reported_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX agent_updates_rollout ON agent_updates (channel, cohort, state, version);
