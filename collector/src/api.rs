//! The read-only HTTP API (axum), documented in `docs/collector.md` (*HTTP API*).
//!
//! Every route needs `Authorization: Bearer <token>` with a token made by
//! `aiscout-collector api-token create`; the store keeps only its SHA-256. Lists are pages:
//! `?limit=` (default 100, at most 1000) and `?after=` (the `next_cursor` of the previous page);
//! each page says `total`. Routes:
//! - `GET /api/v1/hosts`
//! - `GET /api/v1/assets?kind=model|framework|runtime|tooling`
//! - `GET /api/v1/assets/{id}` (with a page of its sightings: `?limit=&after=`)
//! - `GET /healthz` (no token): `ok`

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::blocking;
use crate::store::{AssetFilter, AssetKind, AssetSummary, PageRequest, Sighting, Store, StoreError, Verdict};

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

/// Page parameters of list routes.
#[derive(Debug, Deserialize)]
pub struct PageParams {
    /// Page size.
    limit: Option<u32>,
    /// Cursor from the previous page.
    after: Option<String>,
    /// Asset kind filter (`/assets` only).
    kind: Option<String>,
}

impl PageParams {
    fn page(&self) -> PageRequest {
        PageRequest { after: self.after.clone(), limit: self.limit.unwrap_or(0) }
    }
}

/// A page as JSON.
#[derive(Debug, Serialize)]
struct PageJson {
    items: Vec<Value>,
    next_cursor: Option<String>,
    total: u64,
}

async fn authorize(store: &Arc<dyn Store>, headers: &HeaderMap) -> Result<(), ApiError> {
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
        blocking(ApiError::internal, move || store.verify_api_token(&token).map_err(|e| http_status(&e))).await?;
    found.map(|_| ()).ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "unknown or revoked api token".into()))
}

fn asset_json(a: &AssetSummary) -> Value {
    json!({
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

async fn hosts(
    State(store): State<Arc<dyn Store>>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Result<Json<PageJson>, ApiError> {
    authorize(&store, &headers).await?;
    let page = blocking(ApiError::internal, move || store.hosts(&params.page()).map_err(|e| http_status(&e))).await?;
    let items = page
        .items
        .iter()
        .map(|h| {
            json!({
                "agent_id": h.agent.agent_id,
                "hostname": h.agent.hostname,
                "reported_hostname": h.agent.reported_hostname,
                "agent_version": h.agent.agent_version,
                "enrolled_at_ms": h.agent.enrolled_at_ms,
                "last_seen_ms": h.agent.last_seen_ms,
                "revoked": h.agent.revoked_at_ms.is_some(),
                "identity_status": h.agent.identity_status().as_str(),
                "superseded_by": h.agent.superseded_by,
                "clone_detected_at_ms": h.agent.clone_detected_at_ms,
                "fingerprint_changed": h.agent.reported_machine_fingerprint.as_deref()
                    .is_some_and(|r| r != h.agent.machine_fingerprint),
                "sightings": h.live_sightings,
                "stored_bytes": h.agent.stored_bytes,
            })
        })
        .collect();
    Ok(Json(PageJson { items, next_cursor: page.next_cursor, total: page.total }))
}

async fn assets(
    State(store): State<Arc<dyn Store>>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Result<Json<PageJson>, ApiError> {
    authorize(&store, &headers).await?;
    let kind = match params.kind.as_deref() {
        None | Some("") => None,
        Some(k) => Some(AssetKind::from_name(k).ok_or_else(|| {
            ApiError(StatusCode::BAD_REQUEST, format!("unknown kind {k:?}: model, framework, runtime or tooling"))
        })?),
    };
    let page = blocking(ApiError::internal, move || {
        store.assets(&AssetFilter { kind }, &params.page()).map_err(|e| http_status(&e))
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
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    authorize(&store, &headers).await?;
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

/// The API router over `store`.
pub fn router(store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v1/hosts", get(hosts))
        .route("/api/v1/assets", get(assets))
        .route("/api/v1/assets/{id}", get(asset))
        .with_state(store)
}
