//! The read-only HTTP API (axum), documented in `docs/collector.md` (*HTTP API*).
//!
//! Every route but `/healthz` needs `Authorization: Bearer <token>` with a token made by
//! `aiscout-collector api-token create`; the store keeps only its SHA-256. Lists are pages:
//! `?limit=` (default 100, at most 1000) and `?after=` (the `next_cursor` of the previous page);
//! each page says `total`. Routes:
//! - `GET /api/v1/hosts`
//! - `GET /api/v1/assets?kind=model|framework|runtime|tooling`
//! - `GET /api/v1/assets/{id}` (with a page of its sightings: `?limit=&after=`)
//! - `GET /api/v1/findings?severity=&exact_severity=&rule=&state=&host=&asset=&since=&mapping=` and
//!   `GET /api/v1/findings/{id}` (`crate::findings`)
//! - `POST /api/v1/findings/{id}/ack` (admin scope): `{"reason", "expires_ms"?}`
//! - `GET /api/v1/audit?since=`: the audit trail, oldest first
//! - `DELETE /api/v1/hosts/{id}` (admin scope): decommission a host
//! - `GET /api/v1/risk?host=|asset=`: a risk score and the findings behind it
//! - `GET /api/v1/graph?host=|asset=`: the process ↔ model ↔ host ↔ exposure links
//! - `GET /api/v1/policy`: the applied policy (null when none)
//! - `GET /api/v1/overview`: hosts by status, models by verdict, exposed servers, open findings by
//!   severity and their 30-day trend, the newest critical findings, the models spreading fastest
//! - `GET /api/v1/changes?since=`: assets and sightings that appeared or were removed since
//! - `GET /api/v1/export?format=csv|jsonl|cyclonedx|spdx&rows=&kind=&host=&include_removed=` (export
//!   scope): the inventory, streamed (`crate::export`)
//! - `GET /api/v1/cmdb/last-push` (export or admin scope): the last push to each CMDB target
//!   (`crate::cmdb`)
//! - `GET /healthz` (no token): `ok`
//! - `GET /api/v1/openapi.json` (no token): the OpenAPI 3.1 document of these routes
//!
//! # Scopes
//! A token holds scopes ([`Scope`]: `read`, `export`, `admin`), none implying another. Routes
//! are grouped by the one scope they need, and [`router`] puts each group behind
//! [`require_scope`]: a route added to a group cannot forget the check, and a new group (the
//! coming export and admin routes) declares its scope in one line. A request without a valid
//! token is answered 401; with a valid token lacking the scope, 403. The handler finds the
//! token in the request's extensions as [`Caller`].

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::store::{
    Acknowledgement, ApiToken, AssetFilter, AssetKind, AssetSummary, FindingFilter, HostFilter, HostSummary,
    PageRequest, Scope, Sighting, Store, StoreError, Verdict,
};
use crate::{blocking, now_ms};

/// An API error: status and a lowercase message, as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl ApiError {
    /// A failure of the collector itself (a dead worker): 500.
    fn internal(message: String) -> Self {
        Self(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// A store error as an API error: its class's status ([`crate::error_code`]) and its message.
fn http_status(e: &StoreError) -> ApiError {
    ApiError(e.code().http(), e.to_string())
}

/// Parameters of the hosts and assets routes: an unknown one is refused (400) by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// Page size.
    limit: Option<u32>,
    /// Cursor from the previous page.
    after: Option<String>,
    /// Asset kind filter (`/assets` only).
    kind: Option<String>,
    /// Also list package files (`/assets` only; store module docs, "Package files").
    include_owned: Option<bool>,
    /// Also list assets no host has any more (`/assets`).
    include_removed: Option<bool>,
    /// Substring of a path, name, repo, package name or digest (`/assets`).
    q: Option<String>,
    /// On this host, an agent id (`/assets`).
    host: Option<String>,
    /// In this format (`/assets`).
    format: Option<String>,
    /// With this verdict on a live sighting (`/assets`).
    verdict: Option<String>,
    /// First seen at or after, ms (`/assets`).
    first_seen_since: Option<i64>,
    /// Last seen at or after, ms (`/assets`).
    last_seen_since: Option<i64>,
    /// `online`, `silent`, `revoked` or `decommissioned` (`/hosts`).
    status: Option<String>,
    /// Hosts with an open finding at least this severe (`/hosts`).
    severity: Option<String>,
    /// A framework's ecosystem (`/assets`).
    ecosystem: Option<String>,
    /// Listening with this exposure, or `exposed` (`/assets`: runtimes, and models they have open).
    exposure: Option<String>,
    /// Hosts not heard from since, ms (`/hosts`).
    silent_since: Option<i64>,
    /// A framework's exact package name (`/assets`).
    name: Option<String>,
    /// A framework's exact version (`/assets`; with `/hosts`, the agent version).
    version: Option<String>,
}

/// What the API needs from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct ApiSettings {
    /// A host not heard from for longer is `silent` (`findings.silent_after`).
    pub silent_after: std::time::Duration,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self { silent_after: std::time::Duration::from_secs(24 * 3600) }
    }
}

impl PageParams {
    fn page(&self) -> PageRequest {
        PageRequest { after: self.after.clone(), limit: self.limit.unwrap_or(0) }
    }
}

/// The parameters of a query string, or a 400 naming what is wrong with it (an unknown
/// parameter, a value of the wrong type).
fn query<T>(params: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    params.map(|Query(p)| p).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))
}

/// `limit=0` and a limit above the maximum are refused, never silently changed.
fn check_limit(limit: Option<u32>) -> Result<(), ApiError> {
    if limit == Some(0) || limit.is_some_and(|l| l > PageRequest::MAX_LIMIT) {
        return Err(ApiError(StatusCode::BAD_REQUEST, format!("limit: 1 to {}", PageRequest::MAX_LIMIT)));
    }
    Ok(())
}

/// An `after` cursor this listing could not have handed out is refused (400), never read as
/// "from somewhere".
fn check_cursor(after: Option<&str>, plausible: impl Fn(&str) -> bool) -> Result<(), ApiError> {
    match after {
        Some(c) if !plausible(c) || c.chars().any(char::is_control) => {
            Err(ApiError(StatusCode::BAD_REQUEST, format!("after: {c:?} is not a cursor of this listing")))
        }
        _ => Ok(()),
    }
}

/// A page as JSON.
#[derive(Debug, Serialize)]
struct PageJson {
    items: Vec<Value>,
    next_cursor: Option<String>,
    total: u64,
}

/// The verified token of the request, for handlers that want to know who asks.
#[derive(Debug, Clone)]
pub struct Caller(pub ApiToken);

/// The token of `headers`' bearer credential: 401 when there is none or it is unknown,
/// revoked or expired.
async fn authenticate(store: &Arc<dyn Store>, headers: &HeaderMap) -> Result<ApiToken, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "a bearer token is required".into()))?
        .to_string();
    let store = Arc::clone(store);
    let found =
        blocking(ApiError::internal, move || store.verify_api_token(&token, now_ms()).map_err(|e| http_status(&e)))
            .await?;
    found.ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "unknown, expired or revoked api token".into()))
}

/// Lets through a request whose bearer token holds one of `scopes` (module docs, *Scopes*): 401
/// without a valid token, 403 with one lacking every scope; the token goes into the request's
/// extensions as [`Caller`]. A request the dashboard sends in process already carries the
/// [`Caller`] it verified for the same page (`crate::ui`); a request from the network has no
/// extensions, so its bearer token is always verified here.
pub async fn require_scope(
    State((store, scopes)): State<(Arc<dyn Store>, &'static [Scope])>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = match request.extensions().get::<Caller>() {
        Some(Caller(token)) => token.clone(),
        None => authenticate(&store, request.headers()).await?,
    };
    if !scopes.iter().any(|s| token.allows(*s)) {
        let message = match scopes {
            [scope] => format!("api token {} does not have the {scope} scope", token.id),
            _ => {
                let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
                format!("api token {} has none of the scopes {}", token.id, names.join(", "))
            }
        };
        return Err(ApiError(StatusCode::FORBIDDEN, message));
    }
    request.extensions_mut().insert(Caller(token));
    Ok(next.run(request).await)
}

/// `GET /api/v1/cmdb/last-push`: `{"pushes": [{"target", "at_ms", "report"}]}`.
async fn cmdb_last_push(State(store): State<Arc<dyn Store>>) -> Result<Json<Value>, ApiError> {
    let pushes = blocking(ApiError::internal, move || store.cmdb_pushes().map_err(|e| http_status(&e))).await?;
    let pushes: Vec<Value> = pushes
        .into_iter()
        .map(|(target, at_ms, report)| {
            json!({"target": target, "at_ms": at_ms,
                "report": serde_json::from_str::<Value>(&report).unwrap_or(Value::Null)})
        })
        .collect();
    Ok(Json(json!({ "pushes": pushes })))
}

/// `routes` behind any valid API token, whatever its scopes (`/metrics`).
pub fn any_token(store: &Arc<dyn Store>, routes: Router) -> Router {
    const ANY: &[Scope] = &[Scope::Read, Scope::Export, Scope::Admin];
    routes.route_layer(middleware::from_fn_with_state((Arc::clone(store), ANY), require_scope))
}

/// `routes` behind [`require_scope`] for any of `scopes`.
fn scoped(store: &Arc<dyn Store>, scopes: &'static [Scope], routes: Router<Arc<dyn Store>>) -> Router<Arc<dyn Store>> {
    routes.route_layer(middleware::from_fn_with_state((Arc::clone(store), scopes), require_scope))
}

/// What a table of assets shows for `a`, from its latest live entry: a model's name (its own, or
/// its file's), architecture, format, size, parameters and quantization; a framework's
/// ecosystem, name, version and environment; a server's kind, ports with their exposure and
/// authentication; a tool's kind and name.
fn columns(a: &AssetSummary) -> Value {
    let Some(e) = a.latest_entry.as_deref().and_then(|j| serde_json::from_str::<Value>(j).ok()) else {
        return Value::Null;
    };
    let get = |pointer: &str| e.pointer(pointer).cloned().unwrap_or(Value::Null);
    match a.kind {
        AssetKind::Model => {
            let file = e.get("path").and_then(Value::as_str).and_then(|p| p.rsplit('/').next()).map(str::to_string);
            let name = e.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string).or(file);
            json!({"name": name, "architecture": get("/metadata/architecture"), "format": get("/format"),
                "size": get("/size"), "parameters": get("/metadata/parameters"),
                "quantization": get("/metadata/quantization"), "repo": get("/source/repo"), "path": get("/path")})
        }
        AssetKind::Framework => {
            json!({"ecosystem": get("/ecosystem"), "name": get("/name"), "version": get("/version"),
            "environment": get("/environment/path")})
        }
        AssetKind::Runtime => {
            let listening: Vec<Value> = e
                .get("listening")
                .and_then(Value::as_array)
                .map(|l| l.iter().map(|s| json!({"port": s.get("port"), "exposure": s.get("exposure")})).collect())
                .unwrap_or_default();
            let exposed = listening.iter().any(|l| l["exposure"] != "loopback");
            json!({"kind": get("/kind"), "listening": listening, "exposed": exposed, "auth": get("/auth/state")})
        }
        AssetKind::Tooling => {
            let servers: Option<Vec<Value>> = e
                .get("servers")
                .and_then(Value::as_array)
                .map(|l| l.iter().map(|s| s.get("name").cloned().unwrap_or(Value::Null)).collect());
            json!({"kind": get("/kind"), "client": get("/client"), "variable": get("/variable"),
                "provider": get("/provider"), "servers": servers, "path": get("/path")})
        }
    }
}

fn asset_json(a: &AssetSummary) -> Value {
    json!({
        "columns": columns(a),
        "id": a.id,
        "kind": a.kind.as_str(),
        "identity": a.identity,
        "first_seen_ms": a.first_seen_ms,
        "last_seen_ms": a.last_seen_ms,
        "sightings": a.live_sightings,
        "hosts": a.live_hosts,
        "hostnames": a.hostnames,
        "verdict": a.verdict.map(Verdict::as_str),
        "verdict_hosts": a.verdict_hosts.iter().map(|(v, n)| (v.as_str().to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "owned": a.owned,
    })
}

fn sighting_json(s: &Sighting) -> Value {
    json!({
        "agent_id": s.agent_id,
        "hostname": s.hostname,
        "reported_hostname": s.reported_hostname,
        "local_key": s.local_key,
        "path": s.path_or_environment,
        "first_seen_ms": s.first_seen_ms,
        "last_seen_ms": s.last_seen_ms,
        "removed_at_ms": s.removed_at_ms,
        "entry": serde_json::from_str::<Value>(&s.json).unwrap_or(Value::Null),
    })
}

/// A host as JSON; with `facts`, what its latest host facts say (OS, kernel, architecture,
/// GPUs, …: the agent's `host` object and hardware sections).
fn host_json(h: &HostSummary, silent_before: i64, facts: bool) -> Value {
    let mut out = json!({
        "agent_id": h.agent.agent_id,
        "hostname": h.agent.hostname,
        "reported_hostname": h.agent.reported_hostname,
        "agent_version": h.agent.agent_version,
        "status": h.agent.status(silent_before),
        "risk": h.risk,
        "decommissioned_at_ms": h.agent.decommissioned_at_ms,
        "enrolled_at_ms": h.agent.enrolled_at_ms,
        "last_seen_ms": h.agent.last_seen_ms,
        "revoked": h.agent.revoked_at_ms.is_some(),
        "identity_status": h.agent.identity_status().as_str(),
        "superseded_by": h.agent.superseded_by,
        "clone_detected_at_ms": h.agent.clone_detected_at_ms,
        "cert_ca_sha256": h.agent.cert_ca_sha256,
        "machine_fingerprint": h.agent.machine_fingerprint,
        "fingerprint_changed": h.agent.reported_machine_fingerprint.as_deref()
            .is_some_and(|r| r != h.agent.machine_fingerprint),
        "sightings": h.live_sightings,
        "stored_bytes": h.agent.stored_bytes,
        "update": h.update.as_ref().map(|u| json!({
            "channel": u.channel,
            "cohort": u.cohort,
            "running_version": u.agent_version,
            "state": u.state,
            "version": u.version,
            "detail": u.detail,
            "reported_at_ms": u.reported_at_ms,
        })),
    });
    if let Some(object) = out.as_object_mut() {
        let identity = h.agent.identity_json.as_deref().and_then(|f| serde_json::from_str::<Value>(f).ok());
        object.insert("identity".into(), identity.unwrap_or(Value::Null));
    }
    let parsed = h.agent.host_facts_json.as_deref().and_then(|f| serde_json::from_str::<Value>(f).ok());
    if let (Some(object), Some(f)) = (out.as_object_mut(), parsed.as_ref()) {
        for key in ["os", "kernel", "arch", "ip_addresses"] {
            object.insert(key.into(), f.get(key).cloned().unwrap_or(Value::Null));
        }
        let gpus = f.get("gpus").and_then(Value::as_array).map(Vec::len);
        object.insert("gpu_count".into(), json!(gpus));
        if facts {
            object.insert("facts".into(), f.clone());
        }
    }
    out
}

/// `now - silent_after`: hosts not heard from since are silent.
fn silent_before(settings: ApiSettings) -> i64 {
    now_ms().saturating_sub(i64::try_from(settings.silent_after.as_millis()).unwrap_or(i64::MAX))
}

async fn hosts(
    State(store): State<Arc<dyn Store>>,
    axum::Extension(settings): axum::Extension<ApiSettings>,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PageJson>, ApiError> {
    let params = query(params)?;
    check_limit(params.limit)?;
    const STATUSES: [&str; 4] = ["online", "silent", "revoked", "decommissioned"];
    if let Some(s) = params.status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(ApiError(StatusCode::BAD_REQUEST, format!("status: {s:?} is not one of {}", STATUSES.join(", "))));
    }
    use crate::findings::SEVERITIES;
    if let Some(s) = params.severity.as_deref().filter(|s| !SEVERITIES.contains(s)) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("severity: {s:?} is not one of {}", SEVERITIES.join(", ")),
        ));
    }
    check_cursor(params.after.as_deref(), |c| c.len() <= 128 && !c.is_empty())?;
    let silent_before = silent_before(settings);
    let filter = HostFilter {
        status: params.status.clone(),
        silent_before_ms: silent_before,
        version: params.version.clone(),
        agent_id: None,
        min_severity: params.severity.clone(),
        not_seen_since: params.silent_since,
    };
    let page =
        blocking(ApiError::internal, move || store.hosts(&filter, &params.page()).map_err(|e| http_status(&e))).await?;
    let items = page.items.iter().map(|h| host_json(h, silent_before, false)).collect();
    Ok(Json(PageJson { items, next_cursor: page.next_cursor, total: page.total }))
}

async fn host(
    State(store): State<Arc<dyn Store>>,
    axum::Extension(settings): axum::Extension<ApiSettings>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let silent_before = silent_before(settings);
    let filter = HostFilter { silent_before_ms: silent_before, agent_id: Some(id.clone()), ..HostFilter::default() };
    let page = blocking(ApiError::internal, move || {
        store.hosts(&filter, &PageRequest { after: None, limit: 1 }).map_err(|e| http_status(&e))
    })
    .await?;
    let h = page.items.first().ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no host {id}")))?;
    Ok(Json(host_json(h, silent_before, true)))
}

async fn assets(
    State(store): State<Arc<dyn Store>>,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PageJson>, ApiError> {
    let params = query(params)?;
    check_limit(params.limit)?;
    let verdict = match params.verdict.as_deref() {
        None => None,
        Some(v) => Some(Some(Verdict::from_name(v)).filter(|v| *v != Verdict::Unknown).ok_or_else(|| {
            ApiError(StatusCode::BAD_REQUEST, format!("verdict: {v:?} is not one of safe, suspicious, dangerous"))
        })?),
    };
    const EXPOSURES: [&str; 4] = ["exposed", "all_interfaces", "specific", "loopback"];
    if let Some(e) = params.exposure.as_deref().filter(|e| !EXPOSURES.contains(e)) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("exposure: {e:?} is not one of {}", EXPOSURES.join(", ")),
        ));
    }
    check_cursor(params.after.as_deref(), |c| {
        ["model:", "framework:", "runtime:", "tooling:"].iter().any(|k| c.starts_with(k)) && c.len() <= 1024
    })?;
    if params.q.as_deref().is_some_and(|q| q.is_empty() || q.len() > 200 || q.chars().any(char::is_control)) {
        return Err(ApiError(StatusCode::BAD_REQUEST, "q: 1 to 200 characters, no control characters".into()));
    }
    let kind = match params.kind.as_deref() {
        None | Some("") => None,
        Some(k) => Some(AssetKind::from_name(k).ok_or_else(|| {
            ApiError(StatusCode::BAD_REQUEST, format!("unknown kind {k:?}: model, framework, runtime or tooling"))
        })?),
    };
    let page = blocking(ApiError::internal, move || {
        let filter = AssetFilter {
            kind,
            include_owned: params.include_owned.unwrap_or(false),
            include_removed: params.include_removed.unwrap_or(false),
            search: params.q.clone(),
            agent_id: params.host.clone(),
            format: params.format.clone(),
            verdict,
            first_seen_since: params.first_seen_since,
            last_seen_since: params.last_seen_since,
            ecosystem: params.ecosystem.clone(),
            name: params.name.clone(),
            version: params.version.clone(),
            exposure: params.exposure.clone(),
        };
        store.assets(&filter, &params.page()).map_err(|e| http_status(&e))
    })
    .await?;
    Ok(Json(PageJson {
        items: page.items.iter().map(asset_json).collect(),
        next_cursor: page.next_cursor,
        total: page.total,
    }))
}

async fn asset(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
    Query(params): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let missing = format!("no asset {id}");
    let detail =
        blocking(ApiError::internal, move || store.asset(&id, &params.page()).map_err(|e| http_status(&e))).await?;
    let d = detail.ok_or(ApiError(StatusCode::NOT_FOUND, missing))?;
    let mut body = asset_json(&d.asset);
    if let Some(obj) = body.as_object_mut() {
        obj.insert(
            "sightings_page".into(),
            json!({
                "items": d.sightings.items.iter().map(sighting_json).collect::<Vec<_>>(),
                "next_cursor": d.sightings.next_cursor,
                "total": d.sightings.total,
            }),
        );
    }
    Ok(Json(body))
}

/// Query of `GET /api/v1/findings`: every parameter is checked, an unknown one refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingParams {
    limit: Option<u32>,
    after: Option<String>,
    /// At least this severity.
    severity: Option<String>,
    rule: Option<String>,
    state: Option<String>,
    /// An agent id.
    host: Option<String>,
    asset: Option<String>,
    /// Found or changed state at or after (ms since the epoch).
    since: Option<i64>,
    /// Of a rule mapped to this framework id (`LLM03:2025`, `AML.T0010.003`, `MEASURE 2.7`, …).
    mapping: Option<String>,
    /// `severity` alone, not the severities above it.
    exact_severity: Option<bool>,
}

async fn findings(
    State(store): State<Arc<dyn Store>>,
    params: Result<Query<FindingParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PageJson>, ApiError> {
    let p = query(params)?;
    for (key, value, allowed) in [
        ("severity", &p.severity, &crate::findings::SEVERITIES[..]),
        ("state", &p.state, &["open", "acknowledged", "resolved", "reopened", "active"][..]),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !allowed.contains(v)) {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("{key}: {v:?} is not one of {}", allowed.join(", ")),
            ));
        }
    }
    if let Some(rule) = p.rule.as_deref().filter(|r| crate::findings::rule(r).is_none()) {
        let known: Vec<&str> = crate::findings::RULES.iter().map(|r| r.id).collect();
        return Err(ApiError(StatusCode::BAD_REQUEST, format!("rule: {rule:?} is not one of {}", known.join(", "))));
    }
    let rule_ids = match p.mapping.as_deref() {
        None => None,
        Some(m) => {
            let rules = crate::findings::rules_mapped_to(m);
            if rules.is_empty() {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("mapping: no rule is mapped to {m:?} (the ids are in GET /api/v1/findings' docs)"),
                ));
            }
            Some(rules.into_iter().map(str::to_string).collect())
        }
    };
    check_limit(p.limit)?;
    check_cursor(p.after.as_deref(), |c| {
        c.len() == 26 && c.strip_prefix("f-").is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
    })?;
    let filter = FindingFilter {
        min_severity: p.severity,
        exact_severity: p.exact_severity.unwrap_or(false),
        rule_id: p.rule,
        state: p.state,
        agent_id: p.host,
        asset_id: p.asset,
        since_ms: p.since,
        rule_ids,
    };
    let page = PageRequest { after: p.after, limit: p.limit.unwrap_or(0) };
    let page =
        blocking(ApiError::internal, move || store.findings(&filter, &page).map_err(|e| http_status(&e))).await?;
    let items = page.items.iter().map(crate::findings::to_json).collect();
    Ok(Json(PageJson { items, next_cursor: page.next_cursor, total: page.total }))
}

async fn finding(State(store): State<Arc<dyn Store>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let wanted = id.clone();
    let found = blocking(ApiError::internal, move || store.finding(&wanted).map_err(|e| http_status(&e))).await?;
    found
        .map(|f| Json(crate::findings::to_json(&f)))
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no finding {id}")))
}

/// Days of findings trend the overview shows.
pub const OVERVIEW_TREND_DAYS: u32 = 30;

/// The window of "spreading fastest": new hosts over the last 7 days.
pub const OVERVIEW_SPREAD_WINDOW_MS: i64 = 7 * 86_400_000;

/// `GET /api/v1/overview`: the dashboard's first screen as JSON (`Store::overview`).
async fn overview(
    State(store): State<Arc<dyn Store>>,
    axum::Extension(settings): axum::Extension<ApiSettings>,
) -> Result<Json<Value>, ApiError> {
    let now = now_ms();
    let request = crate::store::OverviewRequest {
        now_ms: now,
        silent_before_ms: silent_before(settings),
        trend_days: OVERVIEW_TREND_DAYS,
        spread_since_ms: now.saturating_sub(OVERVIEW_SPREAD_WINDOW_MS),
        list_limit: 5,
    };
    let o = blocking(ApiError::internal, move || store.overview(&request).map_err(|e| http_status(&e))).await?;
    let counts = |list: &[(String, u64)]| -> serde_json::Map<String, Value> {
        list.iter().map(|(k, n)| (k.clone(), json!(n))).collect()
    };
    Ok(Json(json!({
        "at_ms": now,
        "hosts": {"by_status": counts(&o.hosts_by_status), "clones": o.clones},
        "models": {"total": o.models, "by_verdict": counts(&o.models_by_verdict)},
        "exposed_servers": o.exposed_servers,
        "open_findings": counts(&o.open_findings),
        "trend": o.trend.iter().map(|(end, c)| json!({"day_end_ms": end, "by_severity": counts(c)})).collect::<Vec<_>>(),
        "newest_critical": o.newest_critical.iter().map(crate::findings::to_json).collect::<Vec<_>>(),
        "spreading": o.spreading.iter().map(|(a, n)| json!({"asset": asset_json(a), "new_hosts": n,
            "window_ms": OVERVIEW_SPREAD_WINDOW_MS})).collect::<Vec<_>>(),
    })))
}

/// Query of `GET /api/v1/risk` and `/graph`: exactly one of `host` and `asset`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskParams {
    host: Option<String>,
    asset: Option<String>,
}

async fn risk(
    State(store): State<Arc<dyn Store>>,
    params: Result<Query<RiskParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = query(params)?;
    let (filter, subject) = match (p.host, p.asset) {
        (Some(h), None) => {
            (FindingFilter { agent_id: Some(h.clone()), ..FindingFilter::default() }, json!({"host": h}))
        }
        (None, Some(a)) => {
            (FindingFilter { asset_id: Some(a.clone()), ..FindingFilter::default() }, json!({"asset": a}))
        }
        _ => return Err(ApiError(StatusCode::BAD_REQUEST, "host or asset: exactly one".into())),
    };
    let findings = blocking(ApiError::internal, move || {
        let mut all = Vec::new();
        let mut page = PageRequest { after: None, limit: PageRequest::MAX_LIMIT };
        loop {
            let got = store.findings(&filter, &page).map_err(|e| http_status(&e))?;
            all.extend(got.items);
            match got.next_cursor {
                Some(c) if all.len() < 100_000 => page.after = Some(c),
                _ => return Ok(all),
            }
        }
    })
    .await?;
    let (score, parts) = crate::findings::risk::score(&findings);
    let weights: serde_json::Map<String, Value> =
        crate::findings::risk::WEIGHTS.iter().map(|(s, w)| ((*s).to_string(), json!(w))).collect();
    Ok(Json(json!({
        "subject": subject,
        "risk": score,
        "formula": "min(100, sum of the weights of the open and reopened findings concerning it)",
        "weights": weights,
        "findings": parts,
    })))
}

async fn graph(
    State(store): State<Arc<dyn Store>>,
    params: Result<Query<RiskParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = query(params)?;
    if p.host.is_some() == p.asset.is_some() {
        return Err(ApiError(StatusCode::BAD_REQUEST, "host or asset: exactly one".into()));
    }
    let graph = blocking(ApiError::internal, move || {
        let entries = store.graph_entries(p.host.as_deref(), p.asset.as_deref()).map_err(|e| http_status(&e))?;
        let mut hostnames = std::collections::HashMap::new();
        for e in &entries {
            if !hostnames.contains_key(&e.agent_id) {
                let name = store.agent(&e.agent_id).map_err(|e| http_status(&e))?.map(|a| a.hostname);
                hostnames.insert(e.agent_id.clone(), name.unwrap_or_else(|| e.agent_id.clone()));
            }
        }
        Ok(crate::graph::build(&entries, &hostnames))
    })
    .await?;
    Ok(Json(graph))
}

/// Query of `GET /api/v1/export`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// csv, jsonl, cyclonedx or spdx (required).
    format: String,
    /// assets (default) or sightings.
    rows: Option<String>,
    /// Only this kind of asset.
    kind: Option<String>,
    /// Only this host (agent id).
    host: Option<String>,
    /// Removed assets and sightings too.
    include_removed: Option<bool>,
}

/// Exports running at once over HTTP; one more is answered 503. Each holds a blocking thread
/// and reads the whole inventory, so a handful of clients cannot take the collector.
const MAX_CONCURRENT_EXPORTS: usize = 2;

/// How long an export waits for a client that stopped reading before it gives up.
const EXPORT_STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The permits of [`MAX_CONCURRENT_EXPORTS`].
fn export_permits() -> Arc<tokio::sync::Semaphore> {
    static PERMITS: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    Arc::clone(PERMITS.get_or_init(|| Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_EXPORTS))))
}

/// A message from the export worker to the response.
type ExportChunk = Result<axum::body::Bytes, crate::export::ExportError>;

/// A `Write` that hands 64 KiB chunks to the response body; it fails once the client is gone or
/// has not read for [`EXPORT_STALL_TIMEOUT`], which stops the export.
struct BodyWriter {
    /// Chunks for the body; bounded, so a slow client slows the export, not memory.
    tx: tokio::sync::mpsc::Sender<ExportChunk>,
    /// The runtime, to wait on the channel with a timeout from the blocking thread.
    runtime: tokio::runtime::Handle,
    /// The chunk being filled.
    buffer: Vec<u8>,
}

impl BodyWriter {
    const CHUNK: usize = 64 * 1024;

    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = axum::body::Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(Self::CHUNK)));
        self.runtime
            .block_on(self.tx.send_timeout(Ok(chunk), EXPORT_STALL_TIMEOUT))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl std::io::Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= Self::CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// `GET /api/v1/export` (export scope): the export streamed as it is read (`crate::export`).
/// The status waits for the first chunk: parameters, an unknown host and a store failing at the
/// start are answered 400, 404 and 5xx; a failure after the first byte (a panic included)
/// aborts the body, so a client never takes a cut export for a whole one.
async fn export(
    State(store): State<Arc<dyn Store>>,
    params: Result<Query<ExportParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    use crate::export::{ExportContext, ExportError, ExportRequest, Format, Rows};
    let p = query(params)?;
    let bad = |key: &str, value: &str, allowed: &[&str]| {
        ApiError(StatusCode::BAD_REQUEST, format!("{key}: {value:?} is not one of {}", allowed.join(", ")))
    };
    let format = Format::from_name(&p.format).ok_or_else(|| bad("format", &p.format, &Format::NAMES))?;
    let rows = match p.rows.as_deref() {
        None => Rows::Assets,
        Some(r) => Rows::from_name(r).ok_or_else(|| bad("rows", r, &["assets", "sightings"]))?,
    };
    let kind = match p.kind.as_deref() {
        None => None,
        Some(k) => {
            Some(AssetKind::from_name(k).ok_or_else(|| bad("kind", k, &["model", "framework", "runtime", "tooling"]))?)
        }
    };
    let request =
        ExportRequest { format, rows, kind, agent_id: p.host, include_removed: p.include_removed.unwrap_or(false) };
    let permit = export_permits().try_acquire_owned().map_err(|_| {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("{MAX_CONCURRENT_EXPORTS} exports are running: retry later"))
    })?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ExportChunk>(4);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut writer = BodyWriter { tx: tx.clone(), runtime, buffer: Vec::with_capacity(BodyWriter::CHUNK) };
        let run =
            std::panic::AssertUnwindSafe(|| crate::export::run(&*store, &request, &ExportContext::now(), &mut writer));
        let failure = match std::panic::catch_unwind(run) {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(ExportError::Write(std::io::Error::other("the export worker panicked"))),
        };
        if let Some(e) = failure {
            tracing::warn!(error = %e, "export stopped");
            let _ = tx.blocking_send(Err(e));
        }
    });
    let first = match rx.recv().await {
        Some(Ok(chunk)) => chunk,
        Some(Err(ExportError::UnknownHost(_))) => {
            return Err(ApiError(StatusCode::NOT_FOUND, "host: no such agent".into()))
        }
        Some(Err(ExportError::Store(e))) => return Err(http_status(&e)),
        Some(Err(e)) => return Err(ApiError::internal(e.to_string())),
        None => return Err(ApiError::internal("the export ended without output".into())),
    };
    use tokio_stream::StreamExt as _;
    let rest = tokio_stream::wrappers::ReceiverStream::new(rx)
        .map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())));
    let body = axum::body::Body::from_stream(tokio_stream::once(Ok::<_, std::io::Error>(first)).chain(rest));
    Ok((
        [
            (header::CONTENT_TYPE, format.media_type().to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", format.file_name(rows))),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}

/// Query of `GET /api/v1/changes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesParams {
    /// Changes at or after (ms since the epoch); required.
    since: i64,
    /// Most items per list.
    limit: Option<u32>,
}

async fn changes(
    State(store): State<Arc<dyn Store>>,
    params: Result<Query<ChangesParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = query(params)?;
    check_limit(p.limit)?;
    let (since, limit) = (p.since, p.limit.unwrap_or(PageRequest::DEFAULT_LIMIT));
    let c = blocking(ApiError::internal, move || store.changes(since, limit).map_err(|e| http_status(&e))).await?;
    let rows = |list: &[crate::store::Change]| -> Vec<Value> {
        list.iter()
            .map(|r| {
                json!({"asset_id": r.asset_id, "kind": r.kind, "agent_id": r.agent_id, "hostname": r.hostname,
                    "local_key": r.local_key, "location": r.location, "verdict": r.verdict, "at_ms": r.at_ms})
            })
            .collect()
    };
    let audit_rows = |list: &[crate::store::AssetEvent]| -> Vec<Value> {
        list.iter()
            .map(|(id, at, detail)| {
                let detail: Value = serde_json::from_str(detail).unwrap_or(Value::Null);
                json!({"asset_id": id, "at_ms": at, "kind": detail.get("kind"), "from": detail.get("from"),
                    "to": detail.get("to")})
            })
            .collect()
    };
    let new_assets: Vec<Value> = c
        .new_assets
        .iter()
        .map(|(id, kind, identity, at)| json!({"id": id, "kind": kind, "identity": identity, "first_seen_ms": at}))
        .collect();
    Ok(Json(json!({
        "since_ms": since,
        "new_assets": {"items": new_assets, "total": c.new_assets_total},
        "sightings_appeared": {"items": rows(&c.appeared), "total": c.appeared_total},
        "sightings_removed": {"items": rows(&c.removed), "total": c.removed_total},
        "assets_disappeared": {"items": audit_rows(&c.assets_disappeared), "total": c.assets_disappeared_total},
        "verdict_changes": {"items": audit_rows(&c.verdict_changes), "total": c.verdict_changes_total},
    })))
}

/// Query of `GET /api/v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    limit: Option<u32>,
    after: Option<String>,
    /// Records at or after (ms since the epoch).
    since: Option<i64>,
}

async fn audit(
    State(store): State<Arc<dyn Store>>,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PageJson>, ApiError> {
    let p = query(params)?;
    check_limit(p.limit)?;
    check_cursor(p.after.as_deref(), |c| c.parse::<u64>().is_ok())?;
    let page = PageRequest { after: p.after, limit: p.limit.unwrap_or(0) };
    let since = p.since;
    let page = blocking(ApiError::internal, move || store.audit_log(since, &page).map_err(|e| http_status(&e))).await?;
    let items = page
        .items
        .iter()
        .map(|r| {
            json!({
                "seq": r.seq, "at_ms": r.at_ms, "kind": r.kind, "subject": r.subject,
                "detail": serde_json::from_str::<Value>(&r.detail_json).unwrap_or(Value::Null),
                "prev_sha256": r.prev_sha256, "sha256": r.sha256,
            })
        })
        .collect();
    Ok(Json(PageJson { items, next_cursor: page.next_cursor, total: page.total }))
}

/// Body of `POST /api/v1/findings/{id}/ack`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// Why the finding is accepted (1 to 1000 characters).
    reason: String,
    /// Until when (ms since the epoch); none: until it is resolved.
    expires_ms: Option<i64>,
}

async fn acknowledge(
    State(store): State<Arc<dyn Store>>,
    axum::Extension(Caller(token)): axum::Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Json<AckBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let reason = body.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 1000 || reason.chars().any(char::is_control) {
        return Err(ApiError(StatusCode::BAD_REQUEST, "reason: 1 to 1000 characters, no control characters".into()));
    }
    let now = now_ms();
    if body.expires_ms.is_some_and(|e| e <= now) {
        return Err(ApiError(StatusCode::BAD_REQUEST, "expires_ms: must be in the future".into()));
    }
    let ack = Acknowledgement {
        reason,
        // A token labelled like a policy exception must not pass for one.
        by: if token.label.starts_with(crate::store::POLICY_ACK_PREFIX) {
            format!("api token {} ({})", token.label, token.id)
        } else {
            format!("{} ({})", token.label, token.id)
        },
        at_ms: now,
        expires_ms: body.expires_ms,
    };
    let wanted = id.clone();
    let done =
        blocking(ApiError::internal, move || store.acknowledge_finding(&wanted, &ack).map_err(|e| http_status(&e)))
            .await?;
    let f = done.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no finding {id}")))?;
    tracing::info!(finding = %id, by = %token.id, "finding acknowledged");
    Ok(Json(crate::findings::to_json(&f)))
}

async fn policy(State(store): State<Arc<dyn Store>>) -> Result<Json<Value>, ApiError> {
    let current = blocking(ApiError::internal, move || store.current_policy().map_err(|e| http_status(&e))).await?;
    Ok(Json(match current {
        Some(p) => json!({"version": p.version, "sha256": p.sha256, "applied_at_ms": p.applied_at_ms,
            "applied_by": p.applied_by, "text": p.text}),
        None => Value::Null,
    }))
}

async fn decommission(
    State(store): State<Arc<dyn Store>>,
    axum::Extension(Caller(token)): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let wanted = id.clone();
    let done = blocking(ApiError::internal, move || {
        store.decommission_agent(&wanted, now_ms()).map_err(|e| match e {
            StoreError::UnknownAgent { agent_id } => ApiError(StatusCode::NOT_FOUND, format!("no host {agent_id}")),
            other => http_status(&other),
        })
    })
    .await?;
    tracing::info!(agent_id = %id, by = %token.id, done, "host decommissioned");
    Ok(Json(json!({"agent_id": id, "decommissioned": true, "already": !done})))
}

/// The OpenAPI document of every route (`GET /api/v1/openapi.json`, no token): a test checks
/// that it names exactly the routes [`router_with`] serves, with their methods and scopes.
pub const OPENAPI: &str = include_str!("../data/openapi.json");

/// The API router over `store` with the default [`ApiSettings`].
pub fn router(store: Arc<dyn Store>) -> Router {
    router_with(store, ApiSettings::default())
}

/// The API router over `store`: `/healthz`, then one group of routes per scope (module docs,
/// *Scopes*).
pub fn router_with(store: Arc<dyn Store>, settings: ApiSettings) -> Router {
    let read = Router::new()
        .route("/api/v1/hosts", get(hosts))
        .route("/api/v1/hosts/{id}", get(host))
        .route("/api/v1/assets", get(assets))
        .route("/api/v1/assets/{id}", get(asset))
        .route("/api/v1/findings", get(findings))
        .route("/api/v1/findings/{id}", get(finding))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/changes", get(changes))
        .route("/api/v1/risk", get(risk))
        .route("/api/v1/graph", get(graph))
        .route("/api/v1/policy", get(policy))
        .route("/api/v1/overview", get(overview));
    let export = Router::new().route("/api/v1/export", get(export));
    let admin = Router::new()
        .route("/api/v1/findings/{id}/ack", post(acknowledge))
        .route("/api/v1/hosts/{id}", axum::routing::delete(decommission));
    // The CMDB push report: for exporters and admins alike.
    let cmdb = Router::new().route("/api/v1/cmdb/last-push", get(cmdb_last_push));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v1/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .merge(scoped(&store, &[Scope::Read], read))
        .merge(scoped(&store, &[Scope::Export], export))
        .merge(scoped(&store, &[Scope::Admin], admin))
        .merge(scoped(&store, &[Scope::Export, Scope::Admin], cmdb))
        .layer(axum::Extension(settings))
        .with_state(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewApiToken;
    use axum::body::Body;
    use tower::ServiceExt;

    /// The status of `GET path` with `token` as bearer, if any.
    async fn status(router: &Router, path: &str, token: Option<&str>) -> StatusCode {
        let mut request = axum::http::Request::get(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        router.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap().status()
    }

    /// A new token's secret, and its id.
    fn token_and_id(store: &Arc<dyn Store>, scopes: Vec<Scope>, expires_at_ms: Option<i64>) -> (String, String) {
        let new = NewApiToken { label: "t".into(), scopes, expires_at_ms, now_ms: now_ms() };
        let issued = store.create_api_token(&new).unwrap();
        (issued.secret.expose().to_string(), issued.id)
    }

    fn token(store: &Arc<dyn Store>, scopes: Vec<Scope>, expires_at_ms: Option<i64>) -> String {
        token_and_id(store, scopes, expires_at_ms).0
    }

    /// The routes [`router_with`] declares, as (method, path), read from its source.
    fn declared_routes() -> Vec<(String, String)> {
        let source = include_str!("api.rs");
        let body =
            source.split("pub fn router_with(").nth(1).unwrap_or_default().split("\n}\n").next().unwrap_or_default();
        let mut out = Vec::new();
        for part in body.split(".route(\"").skip(1) {
            let path = part.split('"').next().unwrap_or_default().to_string();
            let handler = part.split(", ").nth(1).unwrap_or_default();
            let method = if handler.starts_with("post(") {
                "post"
            } else if handler.starts_with("axum::routing::delete(") {
                "delete"
            } else {
                "get"
            };
            out.push((method.to_string(), path));
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn the_openapi_document_names_exactly_the_routes_served_with_their_scopes() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| ops.as_object().unwrap().keys().map(move |m| (m.clone(), path.clone())))
            .collect();
        documented.sort();
        assert_eq!(documented, declared_routes());
        // Each documented route answers as documented: served (not 404) with the scope it names,
        // refused (403) with another; and the document itself is served without a token.
        let store: Arc<dyn Store> = crate::store::tests::store().arc();
        let router = router(Arc::clone(&store));
        let read = token(&store, vec![Scope::Read], None);
        let admin = token(&store, vec![Scope::Admin], None);
        let export = token(&store, vec![Scope::Export], None);
        for (method, path) in &documented {
            let op = &doc["paths"][path][method];
            let concrete = path.replace("{id}", "x");
            let query = if path == "/api/v1/changes" {
                "?since=0"
            } else if path == "/api/v1/export" {
                "?format=csv"
            } else if path == "/api/v1/risk" || path == "/api/v1/graph" {
                "?host=x"
            } else {
                ""
            };
            let uri = format!("{concrete}{query}");
            let send = |token: Option<String>| {
                let mut request = axum::http::Request::builder().method(method.to_uppercase().as_str()).uri(&uri);
                if let Some(t) = token {
                    request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
                }
                if method == "post" {
                    request = request.header(header::CONTENT_TYPE, "application/json");
                }
                let body = if method == "post" { Body::from(r#"{"reason":"r"}"#) } else { Body::empty() };
                router.clone().oneshot(request.body(body).unwrap())
            };
            match op["x-scope"].as_str() {
                None => assert_eq!(send(None).await.unwrap().status(), StatusCode::OK, "{method} {path}"),
                Some(scope) => {
                    let (right, wrong) = match scope {
                        "admin" => (&admin, &read),
                        "export" => (&export, &read),
                        _ => (&read, &admin),
                    };
                    // Every scope the document lists is let in.
                    for also in op["x-scopes"].as_array().into_iter().flatten() {
                        let token = if also == "admin" { &admin } else { &export };
                        assert_eq!(
                            send(Some(token.clone())).await.unwrap().status(),
                            StatusCode::OK,
                            "{method} {path}"
                        );
                    }
                    let answer = send(Some(right.clone())).await.unwrap().status();
                    assert!(
                        answer == StatusCode::OK || answer == StatusCode::NOT_FOUND && path.contains("{id}"),
                        "{method} {path}: {answer}"
                    );
                    assert_eq!(
                        send(Some(wrong.clone())).await.unwrap().status(),
                        StatusCode::FORBIDDEN,
                        "{method} {path}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn every_read_route_needs_a_live_token_with_the_read_scope() {
        let store: Arc<dyn Store> = crate::store::tests::store().arc();
        let router = router(Arc::clone(&store));
        let reader = token(&store, vec![Scope::Read], None);
        let exporter = token(&store, vec![Scope::Export, Scope::Admin], None);
        let expired = token(&store, vec![Scope::Read], Some(now_ms() - 1));
        let (revoked, revoked_id) = token_and_id(&store, vec![Scope::Read], None);
        assert!(store.revoke_api_token(&revoked_id, now_ms()).unwrap());

        assert_eq!(status(&router, "/healthz", None).await, StatusCode::OK);
        for path in ["/api/v1/hosts", "/api/v1/assets?kind=model", "/api/v1/assets/model:x"] {
            assert_eq!(status(&router, path, None).await, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(status(&router, path, Some("aiscout_api_nope")).await, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(status(&router, path, Some(&expired)).await, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(status(&router, path, Some(&revoked)).await, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(status(&router, path, Some(&exporter)).await, StatusCode::FORBIDDEN, "{path}");
        }
        assert_eq!(status(&router, "/api/v1/hosts", Some(&reader)).await, StatusCode::OK);
        assert_eq!(status(&router, "/api/v1/assets", Some(&reader)).await, StatusCode::OK);
        assert_eq!(status(&router, "/api/v1/assets/model:x", Some(&reader)).await, StatusCode::NOT_FOUND);
        // A path no group has is not found, whatever the token.
        assert_eq!(status(&router, "/api/v1/nothing", None).await, StatusCode::NOT_FOUND);
        let used = store.verify_api_token(&reader, now_ms()).unwrap().unwrap();
        assert!(used.last_used_at_ms.is_some(), "the reader's use is recorded");
    }

    #[tokio::test]
    async fn the_last_cmdb_push_is_read_with_the_export_or_admin_scope() {
        let store: Arc<dyn Store> = crate::store::tests::store().arc();
        let router = router(Arc::clone(&store));
        let path = "/api/v1/cmdb/last-push";
        let (reader, exporter, admin) = (
            token(&store, vec![Scope::Read], None),
            token(&store, vec![Scope::Export], None),
            token(&store, vec![Scope::Admin], None),
        );
        assert_eq!(status(&router, path, Some(&reader)).await, StatusCode::FORBIDDEN);
        assert_eq!(status(&router, path, None).await, StatusCode::UNAUTHORIZED);
        store.record_cmdb_push("servicenow", 5, r#"{"ok":true}"#).unwrap();
        store.record_cmdb_push("servicenow", 7, r#"{"ok":false}"#).unwrap();
        for t in [&exporter, &admin] {
            let request = axum::http::Request::get(path).header(header::AUTHORIZATION, format!("Bearer {t}"));
            let answer = router.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
            assert_eq!(answer.status(), StatusCode::OK);
            let body = axum::body::to_bytes(answer.into_body(), 1 << 20).await.unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body, json!({"pushes": [{"target": "servicenow", "at_ms": 7, "report": {"ok": false}}]}));
        }
    }
}
