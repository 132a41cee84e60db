//! The dashboard's pages. Each asks the API what it shows ([`Ui::api_get`]) and renders it.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};
use tower::ServiceExt as _;

use super::render::{self, at, link, list_at, num_at, page, segment, str_at, text, time_at};
use super::session::{self, Session};
use super::{svg, Ui};
use crate::findings::SEVERITIES;
use crate::store::{ApiToken, Scope};

/// Largest API answer a page reads (a page of 1,000 assets is far below it).
const MAX_API_BODY: usize = 32 * 1024 * 1024;

/// Why a page is not shown.
#[derive(Debug)]
pub enum UiError {
    /// No session, or its token is no longer accepted: to the sign-in page, cookie cleared.
    SignIn,
    /// A page saying what went wrong, with the status.
    Page(StatusCode, String),
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => Redirect::to("/ui/login").into_response(),
            Self::Page(status, message) => {
                let body = html! {
                    p.error data-test="error" { (message) }
                    p { a href="/ui/" { "Back to the overview" } }
                };
                (status, Html(page(&status.to_string(), "", None, body).into_string())).into_response()
            }
        }
    }
}

impl Ui {
    /// `token` as the store knows it now (`None`: unknown, expired or revoked), or the status
    /// and message of the store's failure.
    async fn verify(&self, token: String) -> Result<Option<ApiToken>, (StatusCode, String)> {
        let store = std::sync::Arc::clone(&self.store);
        crate::blocking(
            |e| (StatusCode::INTERNAL_SERVER_ERROR, e),
            move || store.verify_api_token(&token, crate::now_ms()).map_err(|e| (e.code().http(), e.to_string())),
        )
        .await
    }

    /// The session of `headers`' cookie, whose token is live and holds the read scope; else to
    /// the sign-in page (a page that asks the API nothing must not show to a revoked token).
    async fn session(&self, headers: &HeaderMap) -> Result<Session, UiError> {
        let mut s = session::from_headers(headers, self.tls).ok_or(UiError::SignIn)?;
        match self.verify(s.token.clone()).await.map_err(|(status, m)| UiError::Page(status, m))? {
            Some(t) if t.allows(Scope::Read) => {
                s.verified = Some(t);
                Ok(s)
            }
            _ => Err(UiError::SignIn),
        }
    }

    /// The API's answer to `method path` with `session`'s token and `body` (JSON).
    async fn api(&self, session: &Session, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", session.token));
        let body = match body {
            Some(v) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let mut request = match request.body(body) {
            Ok(r) => r,
            Err(e) => {
                return UiError::Page(StatusCode::BAD_REQUEST, format!("cannot ask the api for {path}: {e}"))
                    .into_response()
            }
        };
        if let Some(token) = &session.verified {
            request.extensions_mut().insert(crate::api::Caller(token.clone()));
        }
        match self.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// The API's JSON for `method path`: a 401 sends the browser to sign in, another failure is
    /// the API's message with its status.
    async fn api_json(
        &self,
        session: &Session,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, UiError> {
        let response = self.api(session, method, path, body).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_API_BODY)
            .await
            .map_err(|e| UiError::Page(StatusCode::BAD_GATEWAY, format!("reading the api's answer to {path}: {e}")))?;
        match status {
            StatusCode::OK => Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null)),
            other => Err(api_failure(other, &bytes, || format!("the api answered {other}"))),
        }
    }

    /// `GET path?params` of the API as JSON (empty parameters left out).
    async fn api_get(&self, session: &Session, path: &str, params: &[(&str, &str)]) -> Result<Value, UiError> {
        self.api_json(session, Method::GET, &link(path, params), None).await
    }
}

/// What a page says of an API answer other than 200: a 401 sends the browser to sign in,
/// another status is shown with the API's `{"error"}` message (`fallback` when it has none).
fn api_failure(status: StatusCode, body: &[u8], fallback: impl FnOnce() -> String) -> UiError {
    if status == StatusCode::UNAUTHORIZED {
        return UiError::SignIn;
    }
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    UiError::Page(status, str_at(&value, "/error").map_or_else(fallback, str::to_string))
}

/// A page's query parameters, or a 400 page naming what is wrong with them.
fn params<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, UiError> {
    query.map(|Query(q)| q).map_err(|e| UiError::Page(StatusCode::BAD_REQUEST, e.body_text()))
}

/// A page in the layout, for `session`.
fn html_page(title: &str, active: &str, session: &Session, body: Markup) -> Html<String> {
    Html(page(title, active, Some(session), body).into_string())
}

/// A dashboard path nobody serves: a page for `/ui/…`, the API's plain 404 elsewhere.
pub async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/ui/") {
        UiError::Page(StatusCode::NOT_FOUND, format!("there is no page {}", uri.path())).into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

// ---- sign in, sign out ----

fn login_page(message: Option<&str>) -> Html<String> {
    let body = html! {
        @if let Some(m) = message { p.error data-test="error" { (m) } }
        form.login method="post" action="/ui/login" {
            label for="token" { "API token" }
            input #token type="password" name="token" autocomplete="off" required;
            button type="submit" { "Sign in" }
        }
        p.hint {
            "A token with the read scope shows the pages; acknowledging a finding needs the admin scope and "
            "downloading an export the export scope. Make one with "
            code { "aiscout-collector api-token create --scope read" } "."
        }
    };
    Html(page("Sign in", "", None, body).into_string())
}

pub async fn login_form() -> Html<String> {
    login_page(None)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
}

/// Checks the token (known, live, with the read scope) and keeps it in the session cookie.
pub async fn login(State(ui): State<Ui>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    if !session::same_origin(&headers) {
        return UiError::Page(StatusCode::FORBIDDEN, "sign-in refused: the form was not sent by this dashboard".into())
            .into_response();
    }
    let token = form.token.trim().to_string();
    let refused = |status: StatusCode, message: &str| (status, login_page(Some(message))).into_response();
    if !session::plausible_token(&token) {
        return refused(StatusCode::UNAUTHORIZED, "that is not an api token");
    }
    match ui.verify(token.clone()).await {
        Ok(Some(t)) if t.allows(Scope::Read) => {
            tracing::info!(token_id = %t.id, "dashboard sign-in");
            let mut response = Redirect::to("/ui/").into_response();
            if let Some(cookie) = session::set_cookie(&token, ui.tls) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Ok(Some(t)) => refused(
            StatusCode::FORBIDDEN,
            &format!("api token {} does not have the read scope the dashboard needs", t.id),
        ),
        Ok(None) => refused(StatusCode::UNAUTHORIZED, "unknown, expired or revoked api token"),
        Err((_, e)) => refused(StatusCode::SERVICE_UNAVAILABLE, &format!("cannot check the token now: {e}")),
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// The session of a state change: signed in, sent by this dashboard, with the session's CSRF token.
async fn changing(ui: &Ui, headers: &HeaderMap, csrf: &str) -> Result<Session, UiError> {
    let s = ui.session(headers).await?;
    if !session::same_origin(headers) || !s.csrf_ok(csrf) {
        return Err(UiError::Page(
            StatusCode::FORBIDDEN,
            "refused: the form was not sent by this dashboard (csrf)".into(),
        ));
    }
    Ok(s)
}

/// Forgets the session (the token itself stays valid until revoked: `api-token revoke`).
pub async fn logout(State(ui): State<Ui>, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    if let Err(e) = changing(&ui, &headers, &form.csrf).await {
        return e.into_response();
    }
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().insert(header::SET_COOKIE, session::clear_cookie(ui.tls));
    response
}

// ---- overview ----

/// A number that links to the list it counts (when there is one), with a name the browser
/// test reads.
fn metric(label: &str, key: &str, value: u64, href: Option<&str>) -> Markup {
    let inner = html! {
        span.value data-metric=(key) { (value) }
        span.label { (label) }
    };
    html! {
        @match href {
            Some(href) => { a.metric href=(href) { (inner) } }
            None => { span.metric { (inner) } }
        }
    }
}

pub async fn overview(State(ui): State<Ui>, headers: HeaderMap) -> Result<Html<String>, UiError> {
    let s = ui.session(&headers).await?;
    let o = ui.api_get(&s, "/api/v1/overview", &[]).await?;
    let status = |k: &str| num_at(&o, &format!("/hosts/by_status/{k}"));
    let verdict = |k: &str| num_at(&o, &format!("/models/by_verdict/{k}"));
    let open = |k: &str| num_at(&o, &format!("/open_findings/{k}"));
    let trend = list_at(&o, "/trend");
    let critical = list_at(&o, "/newest_critical");
    let spreading = list_at(&o, "/spreading");
    let body = html! {
        section.cards {
            div.card {
                h2 { "Hosts" }
                (metric("online", "hosts.online", status("online"), Some("/ui/hosts?status=online")))
                (metric("silent", "hosts.silent", status("silent"), Some("/ui/hosts?status=silent")))
                (metric("clones", "hosts.clones", num_at(&o, "/hosts/clones"), None))
                (metric("revoked", "hosts.revoked", status("revoked"), Some("/ui/hosts?status=revoked")))
            }
            div.card {
                h2 { "Models" }
                (metric("all", "models.total", num_at(&o, "/models/total"), Some("/ui/models")))
                (metric("dangerous", "models.dangerous", verdict("dangerous"), Some("/ui/models?verdict=dangerous")))
                (metric("suspicious", "models.suspicious", verdict("suspicious"), Some("/ui/models?verdict=suspicious")))
                (metric("safe", "models.safe", verdict("safe"), Some("/ui/models?verdict=safe")))
            }
            div.card {
                h2 { "Inference servers" }
                (metric("beyond loopback", "servers.exposed", num_at(&o, "/exposed_servers"), None))
            }
            div.card {
                h2 { "Open findings" }
                @for sev in SEVERITIES.iter().rev() {
                    (metric(sev, &format!("findings.{sev}"), open(sev), Some(&format!("/ui/findings?severity={sev}&exact_severity=true&state=active"))))
                }
            }
        }
        section {
            h2 { "Findings over the last " (trend.len()) " days" }
            (svg::trend(trend))
            p.hint { "Findings found by each day's end and not resolved by then, by severity." }
        }
        section.split {
            div {
                h2 { "Newest critical findings" }
                table {
                    thead { tr { th { "Finding" } th { "State" } th { "First seen" } } }
                    tbody {
                        @for f in critical {
                            tr {
                                td { a href={ "/ui/findings/" (segment(str_at(f, "/id").unwrap_or(""))) } { (at(f, "/title")) } }
                                td { (at(f, "/state")) }
                                td { (time_at(f, "/first_seen_ms")) }
                            }
                        }
                        @if critical.is_empty() { (render::empty_row(3, "no open critical finding")) }
                    }
                }
            }
            div {
                h2 { "Models spreading fastest (7 days)" }
                table {
                    thead { tr { th { "Model" } th { "New hosts" } th { "Hosts" } th { "Verdict" } } }
                    tbody {
                        @for m in spreading {
                            tr {
                                td { a href={ "/ui/models/" (segment(str_at(m, "/asset/id").unwrap_or(""))) } { (model_name(m.get("asset").unwrap_or(&Value::Null))) } }
                                td { (num_at(m, "/new_hosts")) }
                                td { (num_at(m, "/asset/hosts")) }
                                td { (render::verdict(str_at(m, "/asset/verdict"))) }
                            }
                        }
                        @if spreading.is_empty() { (render::empty_row(4, "no model reached a new host this week")) }
                    }
                }
            }
        }
        p.hint { "As of " (time_at(&o, "/at_ms")) "." }
    };
    Ok(html_page("Overview", "/ui/", &s, body))
}

/// A model's name as the tables show it: its own, its file's, else its identity.
fn model_name(asset: &Value) -> String {
    str_at(asset, "/columns/name").or_else(|| str_at(asset, "/identity")).unwrap_or("?").to_string()
}

// ---- findings ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FindingsQuery {
    severity: String,
    rule: String,
    state: String,
    host: String,
    mapping: String,
    exact_severity: String,
    after: String,
}

/// The severities as a filter's choices, most severe first.
fn severity_choices() -> Vec<(&'static str, &'static str)> {
    SEVERITIES.iter().rev().map(|s| (*s, *s)).collect()
}

/// The framework keys as the filter names them.
const FRAMEWORK_NAMES: [(&str, &str); 4] = [
    ("owasp_llm", "OWASP LLM Top 10"),
    ("mitre_atlas", "MITRE ATLAS"),
    ("nist_ai_rmf", "NIST AI RMF"),
    ("iso_42001", "ISO/IEC 42001"),
];

pub async fn findings(
    State(ui): State<Ui>,
    headers: HeaderMap,
    query: Result<Query<FindingsQuery>, QueryRejection>,
) -> Result<Html<String>, UiError> {
    let s = ui.session(&headers).await?;
    let q = params(query)?;
    let params = [
        ("severity", q.severity.as_str()),
        ("rule", q.rule.as_str()),
        ("state", q.state.as_str()),
        ("host", q.host.as_str()),
        ("mapping", q.mapping.as_str()),
        ("exact_severity", q.exact_severity.as_str()),
        ("after", q.after.as_str()),
    ];
    let list = ui.api_get(&s, "/api/v1/findings", &params).await?;
    let rules: Vec<(&str, &str)> = crate::findings::RULES.iter().map(|r| (r.id, r.id)).collect();
    let severities = severity_choices();
    let states: Vec<(&str, &str)> = [
        ("active", "open or reopened"),
        ("open", "open"),
        ("reopened", "reopened"),
        ("acknowledged", "acknowledged"),
        ("resolved", "resolved"),
    ]
    .to_vec();
    let mapped = crate::findings::mapped_ids();
    let items = list_at(&list, "/items");
    let body = html! {
        form.filters method="get" action="/ui/findings" {
            label { "Severity " (render::select("severity", "any", &severities, &q.severity)) }
            label { "Only that severity " (render::select("exact_severity", "and above", &[("true", "exactly")], &q.exact_severity)) }
            label { "Rule " (render::select("rule", "any", &rules, &q.rule)) }
            label { "State " (render::select("state", "any", &states, &q.state)) }
            label { "Host (agent id) " input type="text" name="host" value=(q.host) size="20"; }
            label { "Mapping "
                select name="mapping" {
                    option value="" selected[q.mapping.is_empty()] { "any" }
                    @for (key, ids) in &mapped {
                        optgroup label=(FRAMEWORK_NAMES.iter().find(|(k, _)| k == key).map_or(*key, |(_, n)| *n)) {
                            @for id in ids { option value=(id) selected[*id == q.mapping] { (id) } }
                        }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        table data-test="findings" {
            thead { tr { th { "Severity" } th { "Finding" } th { "Rule" } th { "State" } th { "Hosts" } th { "First seen" } th { "Last seen" } } }
            tbody {
                @for f in items {
                    tr {
                        td { (render::severity(str_at(f, "/severity").unwrap_or(""))) }
                        td { a href={ "/ui/findings/" (segment(str_at(f, "/id").unwrap_or(""))) } { (at(f, "/title")) } }
                        td { (at(f, "/rule")) }
                        td data-test="state" { (at(f, "/state")) }
                        td { (f.get("hosts").and_then(Value::as_array).map_or(0, Vec::len)) }
                        td { (time_at(f, "/first_seen_ms")) }
                        td { (time_at(f, "/last_seen_ms")) }
                    }
                }
                @if items.is_empty() { (render::empty_row(7, "no finding matches")) }
            }
        }
        (render::pager("/ui/findings", &params, &list))
    };
    Ok(html_page("Findings", "/ui/findings", &s, body))
}

pub async fn finding(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Html<String>, UiError> {
    let s = ui.session(&headers).await?;
    let f = ui.api_get(&s, &format!("/api/v1/findings/{}", segment(&id)), &[]).await?;
    let hosts = list_at(&f, "/hosts");
    let assets = list_at(&f, "/assets");
    let state = str_at(&f, "/state").unwrap_or("");
    let body = html! {
        dl.facts {
            dt { "Severity" } dd { (render::severity(str_at(&f, "/severity").unwrap_or(""))) }
            dt { "Title" } dd data-test="finding-title" { (at(&f, "/title")) }
            dt { "Rule" } dd { (at(&f, "/rule")) " — " (at(&f, "/rule_title")) }
            dt { "State" } dd data-test="finding-state" { (state) }
            dt { "First seen" } dd { (time_at(&f, "/first_seen_ms")) }
            dt { "Last seen" } dd { (time_at(&f, "/last_seen_ms")) }
            dt { "State changed" } dd { (time_at(&f, "/state_changed_ms")) }
            @if let Some(m) = f.get("mappings").and_then(Value::as_object) {
                @for (key, ids) in m {
                    dt { (FRAMEWORK_NAMES.iter().find(|(k, _)| k == key).map_or(key.as_str(), |(_, n)| *n)) }
                    dd { (text(Some(ids))) }
                }
            }
            @if let Some(a) = f.get("acknowledgement").filter(|a| !a.is_null()) {
                dt { "Acknowledged" }
                dd data-test="acknowledgement" { (at(a, "/reason")) " — by " (at(a, "/by")) ", " (time_at(a, "/at_ms"))
                    @if a.get("expires_ms").is_some_and(|e| !e.is_null()) { ", until " (time_at(a, "/expires_ms")) } }
            }
        }
        h2 { "Concerns" }
        ul {
            @for h in hosts { @if let Some(h) = h.as_str() { li { "host " a href={ "/ui/hosts/" (segment(h)) } { (h) } } } }
            @for a in assets { @if let Some(a) = a.as_str() { li { "asset " a href={ "/ui/models/" (segment(a)) } { (a) } } } }
        }
        h2 { "Evidence" }
        pre.evidence data-test="evidence" { (render::pretty(f.get("evidence").unwrap_or(&Value::Null))) }
        @if state != "resolved" {
            h2 { "Acknowledge" }
            form.ack method="post" action={ "/ui/findings/" (segment(&id)) "/ack" } {
                input type="hidden" name="csrf" value=(s.csrf);
                label { "Reason " textarea name="reason" rows="2" cols="60" maxlength="1000" required {} }
                label { "Until "
                    select name="expires_days" {
                        option value="" { "it is resolved" }
                        option value="7" { "7 days" }
                        option value="30" selected { "30 days" }
                        option value="90" { "90 days" }
                    }
                }
                button type="submit" { "Acknowledge" }
                p.hint { "Needs a token with the admin scope." }
            }
        }
    };
    Ok(html_page(&format!("Finding {id}"), "/ui/findings", &s, body))
}

#[derive(Debug, Deserialize)]
pub struct AckForm {
    #[serde(default)]
    csrf: String,
    reason: String,
    #[serde(default)]
    expires_days: String,
}

/// Acknowledges through `POST /api/v1/findings/{id}/ack` (admin scope), then shows the finding.
pub async fn acknowledge(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<AckForm>,
) -> Result<Response, UiError> {
    let s = changing(&ui, &headers, &form.csrf).await?;
    let expires_ms = match form.expires_days.as_str() {
        "" => None,
        days => {
            let days: i64 = days.parse().ok().filter(|d| (1..=3650).contains(d)).ok_or_else(|| {
                UiError::Page(StatusCode::BAD_REQUEST, format!("expires_days: {days:?} is not 1 to 3650"))
            })?;
            Some(crate::now_ms().saturating_add(days * 86_400_000))
        }
    };
    let body = json!({"reason": form.reason, "expires_ms": expires_ms});
    let path = format!("/api/v1/findings/{}/ack", segment(&id));
    ui.api_json(&s, Method::POST, &path, Some(body)).await?;
    Ok(Redirect::to(&format!("/ui/findings/{}", segment(&id))).into_response())
}

// ---- models ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ModelsQuery {
    q: String,
    host: String,
    verdict: String,
    format: String,
    after: String,
}

/// The parameter count the way model cards write it (7.2B, 350M).
fn parameters(v: Option<&Value>) -> String {
    match v.and_then(Value::as_u64) {
        Some(n) if n >= 1_000_000_000 => format!("{:.1}B", n as f64 / 1e9),
        Some(n) if n >= 1_000_000 => format!("{:.0}M", n as f64 / 1e6),
        Some(n) => n.to_string(),
        None => text(v),
    }
}

pub async fn models(
    State(ui): State<Ui>,
    headers: HeaderMap,
    query: Result<Query<ModelsQuery>, QueryRejection>,
) -> Result<Html<String>, UiError> {
    let s = ui.session(&headers).await?;
    let q = params(query)?;
    let params = [
        ("kind", "model"),
        ("q", q.q.as_str()),
        ("verdict", q.verdict.as_str()),
        ("format", q.format.as_str()),
        ("host", q.host.as_str()),
        ("after", q.after.as_str()),
    ];
    let list = ui.api_get(&s, "/api/v1/assets", &params).await?;
    let verdicts = [("dangerous", "dangerous"), ("suspicious", "suspicious"), ("safe", "safe")];
    let items = list_at(&list, "/items");
    let body = html! {
        form.filters method="get" action="/ui/models" {
            label { "Name, repo or digest " input type="search" name="q" value=(q.q) size="30" maxlength="200"; }
            label { "Verdict " (render::select("verdict", "any", &verdicts, &q.verdict)) }
            label { "Format " input type="text" name="format" value=(q.format) size="12"; }
            label { "Host (agent id) " input type="text" name="host" value=(q.host) size="20"; }
            button type="submit" { "Search" }
        }
        table data-test="models" {
            thead { tr {
                th { "Name" } th { "Architecture" } th { "Format" } th { "Parameters" } th { "Quantization" }
                th { "Source repo" } th { "Verdict" } th { "Hosts" } th { "First seen" } th { "Last seen" }
            } }
            tbody {
                @for a in items {
                    tr {
                        td { a href={ "/ui/models/" (segment(str_at(a, "/id").unwrap_or(""))) } { (model_name(a)) } }
                        td { (at(a, "/columns/architecture")) }
                        td { (at(a, "/columns/format")) }
                        td { (parameters(a.pointer("/columns/parameters"))) }
                        td { (at(a, "/columns/quantization")) }
                        td { (at(a, "/columns/repo")) }
                        td { (render::verdict(str_at(a, "/verdict"))) }
                        td { (num_at(a, "/hosts")) }
                        td { (time_at(a, "/first_seen_ms")) }
                        td { (time_at(a, "/last_seen_ms")) }
                    }
                }
                @if items.is_empty() { (render::empty_row(10, "no model matches")) }
            }
        }
        (render::pager("/ui/models", &params[1..], &list))
    };
    Ok(html_page("Models", "/ui/models", &s, body))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SightingsQuery {
    after: String,
}

/// What a process that has a model open exposes, from the graph: for each `(agent, model node)`,
/// the processes (label) and their sockets (label, exposure).
type OpenBy = BTreeMap<(String, String), Vec<(String, Vec<(String, String)>)>>;

/// A graph (`GET /api/v1/graph`) indexed once: nodes by id and edge targets by source and
/// type, so a page walks it in time linear in its size whatever an agent put in it.
struct GraphIndex<'g> {
    nodes: std::collections::HashMap<&'g str, &'g Value>,
    targets: std::collections::HashMap<(&'g str, &'g str), Vec<&'g str>>,
}

/// Edge targets a page lists per process (an agent may report thousands of sockets).
const MAX_TARGETS: usize = 50;

impl<'g> GraphIndex<'g> {
    fn new(graph: &'g Value) -> Self {
        let mut nodes = std::collections::HashMap::new();
        for n in graph.get("nodes").and_then(Value::as_array).into_iter().flatten() {
            if let Some(id) = str_at(n, "/id") {
                nodes.insert(id, n);
            }
        }
        let mut targets: std::collections::HashMap<(&str, &str), Vec<&str>> = std::collections::HashMap::new();
        for e in graph.get("edges").and_then(Value::as_array).into_iter().flatten() {
            if let (Some(from), Some(kind), Some(to)) = (str_at(e, "/from"), str_at(e, "/type"), str_at(e, "/to")) {
                targets.entry((from, kind)).or_default().push(to);
            }
        }
        Self { nodes, targets }
    }

    /// The nodes `from` has edges of `kind` to, at most [`MAX_TARGETS`].
    fn targets(&self, from: &str, kind: &str) -> Vec<&'g Value> {
        let ids = self.targets.get(&(from, kind)).map_or(&[][..], Vec::as_slice);
        ids.iter().filter_map(|id| self.nodes.get(id).copied()).take(MAX_TARGETS).collect()
    }

    /// The nodes of `kind`, in id order.
    fn of_type(&self, kind: &str) -> Vec<&'g Value> {
        let mut found: Vec<&Value> =
            self.nodes.values().copied().filter(|n| str_at(n, "/type") == Some(kind)).collect();
        found.sort_by_key(|n| str_at(n, "/id"));
        found
    }
}

fn open_by(graph: &Value) -> OpenBy {
    let index = GraphIndex::new(graph);
    let mut out = OpenBy::new();
    for process in index.of_type("process") {
        let Some(id) = str_at(process, "/id") else { continue };
        // `process:<agent>:<pid>`
        let agent = id.strip_prefix("process:").and_then(|r| r.rsplit_once(':')).map_or("", |(a, _)| a);
        let sockets: Vec<(String, String)> =
            index.targets(id, "listens").iter().map(|n| (at(n, "/label"), at(n, "/exposure"))).collect();
        for model in index.targets(id, "has_open") {
            let Some(model) = str_at(model, "/id") else { continue };
            out.entry((agent.to_string(), model.to_string()))
                .or_default()
                .push((at(process, "/label"), sockets.clone()));
        }
    }
    out
}

pub async fn model(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<SightingsQuery>, QueryRejection>,
) -> Result<Html<String>, UiError> {
    let s = ui.session(&headers).await?;
    let q = params(query)?;
    let path = format!("/api/v1/assets/{}", segment(&id));
    let a = ui.api_get(&s, &path, &[("limit", "200"), ("after", &q.after)]).await?;
    let graph = ui.api_get(&s, "/api/v1/graph", &[("asset", &id)]).await?;
    let findings = ui.api_get(&s, "/api/v1/findings", &[("asset", &id), ("limit", "100")]).await?;
    let open = open_by(&graph);
    let model_node = format!("model:{id}");
    let sightings = list_at(&a, "/sightings_page/items");
    let latest = sightings.iter().find(|s| s.get("removed_at_ms").is_none_or(Value::is_null)).or(sightings.first());
    let entry = latest.and_then(|s| s.get("entry")).unwrap_or(&Value::Null);
    let safety = list_at(entry, "/safety/findings");
    let metadata = entry.get("metadata").and_then(Value::as_object);
    let finding_items = list_at(&findings, "/items");
    let mut history: Vec<(i64, String, String)> = Vec::new();
    for s in sightings {
        let host = at(s, "/hostname");
        let path = at(s, "/path");
        if let Some(t) = s.get("first_seen_ms").and_then(Value::as_i64) {
            history.push((t, format!("appeared on {host}"), path.clone()));
        }
        if let Some(t) = s.get("removed_at_ms").and_then(Value::as_i64) {
            history.push((t, format!("removed from {host}"), path));
        }
    }
    history.sort_by_key(|(t, _, _)| std::cmp::Reverse(*t));
    let name = model_name(&a);
    let body = html! {
        p { a href=(link("/ui/graph", &[("asset", &id)])) { "Graph of this model" } }
        dl.facts {
            dt { "Verdict" } dd data-test="verdict" { (render::verdict(str_at(&a, "/verdict"))) }
            dt { "Identity" } dd { code { (at(&a, "/identity")) } }
            dt { "Digest (SHA-256)" } dd { code { (at(entry, "/sha256")) } }
            dt { "Format" } dd { (at(entry, "/format")) }
            dt { "Size" } dd { (entry.get("size").and_then(Value::as_u64).map_or_else(|| "—".into(), render::bytes)) }
            dt { "Source" } dd { (at(entry, "/source/repo")) @if let Some(r) = str_at(entry, "/source/revision") { " @ " (r) } }
            dt { "Hosts" } dd { (num_at(&a, "/hosts")) " (" (num_at(&a, "/sightings")) " sightings)" }
            dt { "First seen" } dd { (time_at(&a, "/first_seen_ms")) }
            dt { "Last seen" } dd { (time_at(&a, "/last_seen_ms")) }
            @if let Some(m) = metadata {
                @for (k, v) in m { dt { (k) } dd { (text(Some(v))) } }
            }
        }
        h2 { "Why it can or cannot run code" }
        table data-test="safety" {
            thead { tr { th { "Severity" } th { "Kind" } th { "Subject" } th { "Why" } th { "ATLAS / OWASP" } } }
            tbody {
                @for f in safety {
                    tr {
                        // The scan's own scale: dangerous or suspicious, as the verdicts.
                        td { (render::verdict(str_at(f, "/severity"))) }
                        td { (at(f, "/kind")) }
                        td { code { (at(f, "/subject")) } }
                        td { (at(f, "/detail")) @if let Some(l) = str_at(f, "/location") { " (" (l) ")" } }
                        td { (at(f, "/atlas")) " " (at(f, "/owasp")) }
                    }
                }
                @if safety.is_empty() { (render::empty_row(5, "the scan found nothing that runs code")) }
            }
        }
        h2 { "Findings" }
        (findings_table(finding_items))
        h2 { "Sightings" }
        table data-test="sightings" {
            thead { tr { th { "Host" } th { "Path" } th { "Open by" } th { "Listening" } th { "Last seen" } th { "Removed" } } }
            tbody {
                @for si in sightings {
                    @let agent = str_at(si, "/agent_id").unwrap_or("");
                    @let procs = open.get(&(agent.to_string(), model_node.clone()));
                    tr {
                        td { a href={ "/ui/hosts/" (segment(agent)) } { (at(si, "/hostname")) } }
                        td { code { (at(si, "/path")) } }
                        td { @if let Some(p) = procs { (p.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>().join(", ")) } @else { "—" } }
                        td {
                            @if let Some(p) = procs {
                                @for (_, sockets) in p { @for (label, exposure) in sockets {
                                    span class={ "badge exposure-" (if exposure == "loopback" { "loopback" } else { "exposed" }) } { (label) " " (exposure) } " "
                                } }
                            } @else { "—" }
                        }
                        td { (time_at(si, "/last_seen_ms")) }
                        td { (time_at(si, "/removed_at_ms")) }
                    }
                }
                @if sightings.is_empty() { (render::empty_row(6, "no sighting")) }
            }
        }
        (render::pager(&format!("/ui/models/{}", segment(&id)), &[("after", q.after.as_str())], a.get("sightings_page").unwrap_or(&Value::Null)))
        h2 { "History" }
        ul.history {
            @for (t, what, path) in &history { li { (render::time(Some(*t))) " " (what) ": " code { (path) } } }
        }
    };
    Ok(html_page(&name, "/ui/models", &s, body))
}

fn findings_table(items: &[Value]) -> Markup {
    html! {
        table data-test="findings" {
            thead { tr { th { "Severity" } th { "Finding" } th { "State" } th { "First seen" } } }
            tbody {
                @for f in items {
                    tr {
                        td { (render::severity(str_at(f, "/severity").unwrap_or(""))) }
                        td { a href={ "/ui/findings/" (segment(str_at(f, "/id").unwrap_or(""))) } { (at(f, "/title")) } }
                        td { (at(f, "/state")) }
                        td { (time_at(f, "/first_seen_ms")) }
                    }
                }
                @if items.is_empty() { (render::empty_row(4, "no finding")) }
            }
        }
    }
}

// ---- hosts ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HostsQuery {
    status: String,
    severity: String,
    after: String,
}

pub async fn hosts(
    State(ui): State<Ui>,
    headers: HeaderMap,
    query: Result<Query<HostsQuery>, QueryRejection>,
) -> Result<Html<String>, UiError> {
    let s = ui.session(&headers).await?;
    let q = params(query)?;
    let params = [("status", q.status.as_str()), ("severity", q.severity.as_str()), ("after", q.after.as_str())];
    let list = ui.api_get(&s, "/api/v1/hosts", &params).await?;
    let statuses =
        [("online", "online"), ("silent", "silent"), ("revoked", "revoked"), ("decommissioned", "decommissioned")];
    let severities = severity_choices();
    let items = list_at(&list, "/items");
    let body = html! {
        form.filters method="get" action="/ui/hosts" {
            label { "Status " (render::select("status", "any", &statuses, &q.status)) }
            label { "With an open finding at least " (render::select("severity", "any", &severities, &q.severity)) }
            button type="submit" { "Filter" }
        }
        table data-test="hosts" {
            thead { tr { th { "Hostname" } th { "OS" } th { "Agent" } th { "Update" } th { "Status" } th { "Last seen" } th { "GPUs" } th { "Risk" } } }
            tbody {
                @for h in items {
                    tr {
                        td { a href={ "/ui/hosts/" (segment(str_at(h, "/agent_id").unwrap_or(""))) } data-test="hostname" { (at(h, "/hostname")) }
                            @if str_at(h, "/identity_status") == Some("clone") { " " span.badge.clone { "clone" } } }
                        td { (at(h, "/os")) }
                        td { (at(h, "/agent_version")) }
                        td { (at(h, "/update/state")) }
                        td { (at(h, "/status")) }
                        td { (time_at(h, "/last_seen_ms")) }
                        td { (at(h, "/gpu_count")) }
                        td { (num_at(h, "/risk")) }
                    }
                }
                @if items.is_empty() { (render::empty_row(8, "no host matches")) }
            }
        }
        (render::pager("/ui/hosts", &params, &list))
    };
    Ok(html_page("Hosts", "/ui/hosts", &s, body))
}

pub async fn host(State(ui): State<Ui>, headers: HeaderMap, Path(id): Path<String>) -> Result<Html<String>, UiError> {
    let s = ui.session(&headers).await?;
    let h = ui.api_get(&s, &format!("/api/v1/hosts/{}", segment(&id)), &[]).await?;
    let assets = |kind: &'static str| {
        let (ui, s, id) = (&ui, &s, &id);
        async move { ui.api_get(s, "/api/v1/assets", &[("host", id), ("kind", kind), ("limit", "1000")]).await }
    };
    let models = assets("model").await?;
    let frameworks = assets("framework").await?;
    let tooling = assets("tooling").await?;
    let graph = ui.api_get(&s, "/api/v1/graph", &[("host", &id)]).await?;
    let findings = ui.api_get(&s, "/api/v1/findings", &[("host", &id), ("limit", "200")]).await?;
    let models_total = num_at(&models, "/total");
    let (models, frameworks, tooling) =
        (list_at(&models, "/items"), list_at(&frameworks, "/items"), list_at(&tooling, "/items"));
    let mut by_env: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for f in frameworks {
        by_env.entry(at(f, "/columns/environment")).or_default().push(f);
    }
    let index = GraphIndex::new(&graph);
    let processes = index.of_type("process");
    let facts = h.get("facts").unwrap_or(&Value::Null);
    let gpus = list_at(facts, "/gpus");
    let finding_items = list_at(&findings, "/items");
    let title = at(&h, "/hostname");
    let body = html! {
        p { a href=(link("/ui/graph", &[("host", &id)])) { "Graph of this host" } }
        dl.facts {
            dt { "Hostname" } dd data-test="host-hostname" { (title) }
            dt { "Agent id" } dd { code { (id) } }
            dt { "Status" } dd { (at(&h, "/status")) " · identity " (at(&h, "/identity_status")) }
            dt { "OS" } dd { (at(&h, "/os")) " · kernel " (at(&h, "/kernel")) " · " (at(&h, "/arch")) }
            dt { "Agent" } dd { (at(&h, "/agent_version"))
                @if let Some(u) = h.get("update").filter(|u| !u.is_null()) { " · update " (at(u, "/state")) " to " (at(u, "/version")) " (" (at(u, "/channel")) ")" } }
            dt { "Last seen" } dd { (time_at(&h, "/last_seen_ms")) }
            dt { "Risk" } dd { (num_at(&h, "/risk")) " / 100" }
            dt { "Addresses" } dd { (at(&h, "/ip_addresses")) }
            dt { "GPU driver" } dd { (at(facts, "/gpu_drivers/driver_version")) @if let Some(r) = str_at(facts, "/gpu_drivers/reason") { " (" (r) ")" } }
        }
        h2 { "GPUs" }
        table {
            thead { tr { th { "#" } th { "Name" } th { "Memory used / total" } th { "Processes" } } }
            tbody {
                @for g in gpus {
                    tr {
                        td { (at(g, "/index")) } td { (at(g, "/name")) }
                        td { (render::bytes(num_at(g, "/memory_used_bytes"))) " / " (render::bytes(num_at(g, "/memory_total_bytes"))) }
                        td { (g.get("processes").and_then(Value::as_array).map_or(0, Vec::len)) }
                    }
                }
                @if gpus.is_empty() { (render::empty_row(4, "no GPU reported")) }
            }
        }
        h2 { "Running servers and ML processes" }
        table data-test="processes" {
            thead { tr { th { "Process" } th { "Authentication" } th { "Open models" } th { "Listening" } } }
            tbody {
                @for p in &processes {
                    @let pid = str_at(p, "/id").unwrap_or("");
                    tr {
                        td { (at(p, "/label")) }
                        td { (at(p, "/auth")) }
                        td { @for n in index.targets(pid, "has_open") {
                            @match str_at(n, "/asset_id") {
                                Some(asset) => { a href={ "/ui/models/" (segment(asset)) } { (at(n, "/label")) } " " }
                                None => { (at(n, "/label")) " " }
                            }
                        } }
                        td { @for n in index.targets(pid, "listens") {
                            span class={ "badge exposure-" (if n.get("exposed").and_then(Value::as_bool) == Some(true) { "exposed" } else { "loopback" }) } { (at(n, "/label")) " " (at(n, "/exposure")) } " "
                        } }
                    }
                }
                @if processes.is_empty() { (render::empty_row(4, "no inference server or ML process running")) }
            }
        }
        h2 { "Models (" (models_total) ")" }
        @if models_total > models.len() as u64 {
            p.hint { "The first " (models.len()) " are listed: " a href=(link("/ui/models", &[("host", &id)])) { "all of this host's models" } "." }
        }
        table data-test="host-models" {
            thead { tr { th { "Name" } th { "Path" } th { "Format" } th { "Verdict" } } }
            tbody {
                @for m in models {
                    tr {
                        td { a href={ "/ui/models/" (segment(str_at(m, "/id").unwrap_or(""))) } { (model_name(m)) } }
                        td { code { (at(m, "/columns/path")) } }
                        td { (at(m, "/columns/format")) }
                        td { (render::verdict(str_at(m, "/verdict"))) }
                    }
                }
                @if models.is_empty() { (render::empty_row(4, "no model")) }
            }
        }
        h2 { "Frameworks by environment" }
        @for (env, list) in &by_env {
            h3 { code { (env) } }
            p.packages { @for f in list { span.package { (at(f, "/columns/name")) " " (at(f, "/columns/version")) } " " } }
        }
        @if by_env.is_empty() { p { "no ML framework installed" } }
        h2 { "AI tooling" }
        table {
            thead { tr { th { "Kind" } th { "Client or provider" } th { "MCP servers or key name" } th { "File" } } }
            tbody {
                @for t in tooling {
                    tr {
                        td { (at(t, "/columns/kind")) }
                        td { (at(t, "/columns/client")) (str_at(t, "/columns/provider").unwrap_or("")) }
                        td { @if str_at(t, "/columns/variable").is_some() { code { (at(t, "/columns/variable")) } } @else { (at(t, "/columns/servers")) } }
                        td { code { (at(t, "/columns/path")) } }
                    }
                }
                @if tooling.is_empty() { (render::empty_row(4, "no AI tooling configured")) }
            }
        }
        h2 { "Findings" }
        (findings_table(finding_items))
    };
    Ok(html_page(&title, "/ui/hosts", &s, body))
}

// ---- graph ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GraphQuery {
    host: String,
    asset: String,
}

pub async fn graph(
    State(ui): State<Ui>,
    headers: HeaderMap,
    query: Result<Query<GraphQuery>, QueryRejection>,
) -> Result<Html<String>, UiError> {
    let s = ui.session(&headers).await?;
    let q = params(query)?;
    let form = html! {
        form.filters method="get" action="/ui/graph" {
            label { "Host (agent id) " input type="text" name="host" value=(q.host) size="30"; }
            label { "or model (asset id) " input type="text" name="asset" value=(q.asset) size="30"; }
            button type="submit" { "Draw" }
        }
    };
    if q.host.is_empty() == q.asset.is_empty() {
        let body = html! {
            (form)
            p.hint { "Give a host or a model, or open the graph from a host's or a model's page. "
                "It shows which processes have which model open and where they listen: a dangerous model "
                "and a socket beyond loopback are drawn in red." }
        };
        return Ok(html_page("Graph", "/ui/graph", &s, body));
    }
    let g = ui.api_get(&s, "/api/v1/graph", &[("host", &q.host), ("asset", &q.asset)]).await?;
    let body = html! {
        (form)
        div.graph-wrap data-test="graph" { (svg::graph(&g)) }
    };
    Ok(html_page("Graph", "/ui/graph", &s, body))
}

// ---- exports ----

/// The downloads the exports page offers: format, rows, label.
const DOWNLOADS: [(&str, &str, &str); 6] = [
    ("csv", "assets", "Assets (CSV)"),
    ("csv", "sightings", "Sightings (CSV)"),
    ("jsonl", "sightings", "Sightings (JSON lines)"),
    ("cyclonedx", "assets", "CycloneDX 1.6 ML-BOM"),
    ("spdx", "assets", "SPDX 3.0.1 (AI and Software profiles)"),
    ("jsonl", "assets", "Assets (JSON lines)"),
];

pub async fn exports(State(ui): State<Ui>, headers: HeaderMap) -> Result<Html<String>, UiError> {
    let s = ui.session(&headers).await?;
    let pushes = match ui.api_get(&s, "/api/v1/cmdb/last-push", &[]).await {
        Ok(v) => Ok(v),
        Err(UiError::Page(status, message)) => Err((status, message)),
        Err(other) => return Err(other),
    };
    let body = html! {
        h2 { "Download" }
        ul.downloads {
            @for (format, rows, label) in DOWNLOADS {
                li { a href=(link("/ui/export", &[("format", format), ("rows", rows)])) data-test={ "export-" (format) "-" (rows) } download { (label) } }
            }
        }
        p.hint { "Downloads need a token with the export scope. The same exports: "
            code { "aiscout-collector export --format F" } " and " code { "GET /api/v1/export" } " (docs/exports.md)." }
        h2 { "Last CMDB push" }
        @match &pushes {
            Ok(v) => {
                @let list = list_at(v, "/pushes");
                @if list.is_empty() { p { "No push yet (" code { "aiscout-collector push servicenow|webhook" } ")." } }
                @for p in list {
                    h3 { (at(p, "/target")) " — " (time_at(p, "/at_ms")) }
                    pre.report data-test="cmdb-report" { (render::pretty(p.get("report").unwrap_or(&Value::Null))) }
                }
            }
            Err((_, message)) => { p.hint { "Not shown: " (message) } }
        }
    };
    Ok(html_page("Exports", "/ui/exports", &s, body))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DownloadQuery {
    format: String,
    rows: String,
}

/// The API's export, streamed through as it comes (status, type, file name and body).
pub async fn download(
    State(ui): State<Ui>,
    headers: HeaderMap,
    query: Result<Query<DownloadQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let s = ui.session(&headers).await?;
    let q = params(query)?;
    let path = link("/api/v1/export", &[("format", &q.format), ("rows", &q.rows)]);
    let response = ui.api(&s, Method::GET, &path, None).await;
    match response.status() {
        StatusCode::OK => Ok(response),
        status => {
            let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap_or_default();
            Err(api_failure(status, &bytes, || format!("the export failed: {status}")))
        }
    }
}
