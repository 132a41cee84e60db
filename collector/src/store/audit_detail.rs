//! The detail JSON of the audit records the backends write for the same operations, in one
//! place: the hash chain covers it, so both backends must write it byte for byte alike.

use serde_json::{json, Value};

use super::types::{AgentRegistration, HostStatus, NewApiToken, NewEnrollmentToken, PolicyRecord};

/// `agent.enrolled`.
pub(crate) fn enrolled(agent: &AgentRegistration, status: &HostStatus) -> Value {
    json!({"hostname": agent.hostname, "agent_version": agent.agent_version,
        "machine_fingerprint": agent.machine_fingerprint, "host_status": format!("{status:?}")})
}

/// `enrollment_token.created`.
pub(crate) fn enrollment_token_created(token: &NewEnrollmentToken) -> Value {
    json!({"label": token.label, "uses": token.uses, "expires_at_ms": token.expires_at_ms})
}

/// `api_token.created`.
pub(crate) fn api_token_created(token: &NewApiToken) -> Value {
    let scopes: Vec<String> = token.scopes.iter().map(ToString::to_string).collect();
    json!({"label": token.label, "scopes": scopes, "expires_at_ms": token.expires_at_ms})
}

/// `policy.applied`.
pub(crate) fn policy_applied(policy: &PolicyRecord) -> Value {
    json!({"sha256": policy.sha256, "applied_by": policy.applied_by})
}
