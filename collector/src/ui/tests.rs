//! The dashboard through its router, in process: sessions, CSRF, headers, escaping, and that the
//! overview's numbers are the API's. The same flows run in a real browser in
//! `tests/browser/dashboard.py` (`tests/tests/dashboard.rs`).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

use crate::store::tests::{delta, registration};
use crate::store::{AssetKind, IngestAsset, NewApiToken, Scope, Store};

const HOSTILE: &str = "<script>alert(1)</script>";
const SHA: &str = "d53ded3de5debad164ac22d3946b5a47d6fb6456f6ca2e412f3245d635eff791";

struct Fixture {
    app: Router,
    store: Arc<dyn Store>,
}

fn asset(kind: AssetKind, key: &str, json: Value) -> IngestAsset {
    IngestAsset { kind, local_key: key.into(), json: json.to_string() }
}

/// Two hosts, one named by a hostile agent; a dangerous pickle served on all interfaces by the
/// hostile host; a framework; the findings evaluated.
fn fixture() -> Fixture {
    let now = crate::now_ms();
    let store: Arc<dyn Store> = crate::store::tests::store().arc();
    store.upsert_agent(&registration("agent-x", HOSTILE, "fp-x", now - 1000)).unwrap();
    store.upsert_agent(&registration("agent-b", "host-b", "fp-b", now - 1000)).unwrap();
    let pickle = serde_json::json!({"path": "/srv/models/evil.pkl", "format": "pickle", "sha256": SHA, "size": 1234,
        "metadata": {"name": HOSTILE},
        "safety": {"verdict": "dangerous", "findings": [{"kind": "import", "subject": "os.system", "detail": "calls os.system when loaded",
            "severity": "critical", "atlas": ["AML.T0011.000"], "owasp": ["LLM03:2025"]}]}});
    let server = serde_json::json!({"pid": 4242, "kind": "vllm", "exe": "/usr/bin/python3",
        "open_models": [{"path": "/srv/models/evil.pkl", "sha256": SHA, "via": ["fd"]}],
        "listening": [{"address": "0.0.0.0", "port": 8000, "exposure": "all_interfaces"}],
        "auth": {"state": "default", "server_default": "none", "evidence": []}});
    let torch = serde_json::json!({"ecosystem": "pypi", "name": "torch", "version": "2.5.1",
        "environment": {"path": "/opt/venv", "kind": "venv"}});
    let upserts = vec![
        asset(AssetKind::Model, "/srv/models/evil.pkl", pickle.clone()),
        asset(AssetKind::Runtime, "vllm:4242", server),
        asset(AssetKind::Framework, "/opt/venv:torch", torch),
    ];
    store.apply_batch("agent-x", &delta(1, now - 500, upserts)).unwrap();
    let other = |sha: &str, verdict: &str| serde_json::json!({"path": format!("/m/{verdict}.gguf"), "format": "gguf", "sha256": sha, "safety": {"verdict": verdict}});
    // A hostile agent's runtime whose arrays hold what no agent writes: every query over them
    // must still answer (a malformed element once made json_extract fail the whole overview).
    let odd =
        serde_json::json!({"pid": 7, "kind": "vllm", "listening": ["x", 1, [2]], "open_models": ["y", {"sha256": 3}]});
    let odd_listening = serde_json::json!({"pid": 8, "kind": "ollama", "listening": "abc", "open_models": "z"});
    let on_b = vec![
        asset(AssetKind::Runtime, "vllm:7", odd),
        asset(AssetKind::Runtime, "ollama:8", odd_listening),
        asset(AssetKind::Model, "/m/evil.pkl", pickle),
        asset(AssetKind::Model, "/m/safe.gguf", other(&"1".repeat(64), "safe")),
        asset(AssetKind::Model, "/m/suspicious.gguf", other(&"2".repeat(64), "suspicious")),
    ];
    store.apply_batch("agent-b", &delta(1, now - 500, on_b)).unwrap();
    crate::findings::evaluate(&*store, &crate::findings::Settings::default(), now).unwrap();
    let app = super::app(Arc::clone(&store), crate::api::ApiSettings::default(), false);
    Fixture { app, store }
}

impl Fixture {
    fn token(&self, scopes: Vec<Scope>) -> String {
        let new = NewApiToken { label: "ui".into(), scopes, expires_at_ms: None, now_ms: crate::now_ms() };
        self.store.create_api_token(&new).unwrap().secret.expose().to_string()
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    async fn page(&self, token: &str, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let request = Request::get(path).header(header::COOKIE, format!("aiscout_session={token}"));
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn api(&self, token: &str, path: &str) -> Value {
        let request = Request::get(path).header(header::AUTHORIZATION, format!("Bearer {token}"));
        let (status, _, body) = self.send(request.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn post(
        &self,
        token: Option<&str>,
        path: &str,
        form: &str,
        origin: Option<&str>,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let mut request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::HOST, "collector:7080");
        if let Some(t) = token {
            request = request.header(header::COOKIE, format!("aiscout_session={t}"));
        }
        if let Some(o) = origin {
            request = request.header(header::ORIGIN, o);
        }
        self.send(request.body(Body::from(form.to_string())).unwrap()).await
    }
}

/// The value of `data-metric="key"` on a page.
fn metric(page: &str, key: &str) -> u64 {
    let marker = format!("data-metric=\"{key}\">");
    let rest = page.split(&marker).nth(1).unwrap_or_else(|| panic!("no metric {key}"));
    rest.split('<').next().unwrap().parse().unwrap()
}

fn csrf_of(session_token: &str) -> String {
    super::session::Session::new(session_token.to_string()).csrf
}

#[tokio::test]
async fn without_a_session_every_page_sends_the_browser_to_sign_in() {
    let f = fixture();
    for path in ["/ui/", "/ui/findings", "/ui/models", "/ui/hosts", "/ui/hosts/agent-x", "/ui/graph", "/ui/exports"] {
        let (status, headers, _) = f.send(Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(headers[header::LOCATION], "/ui/login", "{path}");
        let (status, headers, _) = f.page("ais_not_a_real_token", path).await;
        assert_eq!(
            (status, &headers[header::LOCATION]),
            (StatusCode::SEE_OTHER, &"/ui/login".parse().unwrap()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn signing_in_keeps_a_read_token_in_a_strict_http_only_cookie() {
    let f = fixture();
    let read = f.token(vec![Scope::Read]);
    let (status, headers, _) = f.post(None, "/ui/login", &format!("token={read}"), Some("http://collector:7080")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert_eq!(cookie, format!("aiscout_session={read}; Path=/; HttpOnly; SameSite=Strict"));

    let export_only = f.token(vec![Scope::Export]);
    let (status, headers, body) = f.post(None, "/ui/login", &format!("token={export_only}"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(headers.get(header::SET_COOKIE).is_none());
    assert!(body.contains("does not have the read scope"), "{body}");

    let (status, _, body) = f.post(None, "/ui/login", "token=ais_unknown", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("unknown, expired or revoked"), "{body}");

    let (status, headers, _) = f.post(None, "/ui/login", &format!("token={read}"), Some("http://evil.example")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a sign-in form posted from another origin");
    assert!(headers.get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn every_page_is_served_with_the_policy_and_escapes_agent_strings() {
    let f = fixture();
    let read = f.token(vec![Scope::Read]);
    let models = f.api(&read, "/api/v1/assets?kind=model&verdict=dangerous").await;
    let model_id = models["items"][0]["id"].as_str().unwrap().to_string();
    let findings = f.api(&read, "/api/v1/findings").await;
    let finding_id = findings["items"][0]["id"].as_str().unwrap().to_string();
    for path in [
        "/ui/".to_string(),
        "/ui/findings".into(),
        format!("/ui/findings/{finding_id}"),
        "/ui/models".into(),
        format!("/ui/models/{model_id}"),
        "/ui/hosts".into(),
        "/ui/hosts/agent-x".into(),
        "/ui/graph?host=agent-x".into(),
        format!("/ui/graph?asset={model_id}"),
        "/ui/exports".into(),
    ] {
        let (status, headers, body) = f.page(&read, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], super::CSP, "{path}");
        assert!(!super::CSP.contains("unsafe-inline"));
        assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{path}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        assert!(!body.contains("<script>alert"), "{path} lets an agent's script in");
        assert!(
            !body.contains("<script>") || body.matches("<script").count() == 1,
            "{path}: only the page's own script"
        );
        assert!(!body.contains("style=\""), "{path}: an inline style the policy would block");
        assert!(!read.is_empty() && !body.contains(&read), "{path} shows the session's token");
    }
    let (_, _, host_page) = f.page(&read, "/ui/hosts/agent-x").await;
    assert!(host_page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the hostname is shown as text");
    assert!(host_page.contains("vllm (4242)") && host_page.contains("0.0.0.0:8000"), "the server and its socket");
    assert!(host_page.contains("torch 2.5.1") && host_page.contains("/opt/venv"), "frameworks by environment");
    let (_, _, model_page) = f.page(&read, &format!("/ui/models/{model_id}")).await;
    assert!(model_page.contains("os.system") && model_page.contains("calls os.system when loaded"));
    assert!(model_page.contains("vllm (4242)"), "the process that has it open");
}

#[tokio::test]
async fn the_overview_numbers_are_the_apis() {
    let f = fixture();
    let read = f.token(vec![Scope::Read]);
    let (status, _, page) = f.page(&read, "/ui/").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let total = |v: Value| v["total"].as_u64().unwrap();
    assert_eq!(metric(&page, "hosts.online"), total(f.api(&read, "/api/v1/hosts?status=online").await));
    assert_eq!(metric(&page, "hosts.online"), 2);
    assert_eq!(metric(&page, "hosts.silent"), total(f.api(&read, "/api/v1/hosts?status=silent").await));
    assert_eq!(metric(&page, "models.total"), total(f.api(&read, "/api/v1/assets?kind=model").await));
    assert_eq!(metric(&page, "models.dangerous"), 1);
    for verdict in ["dangerous", "suspicious", "safe"] {
        let listed = total(f.api(&read, &format!("/api/v1/assets?kind=model&verdict={verdict}")).await);
        assert_eq!(metric(&page, &format!("models.{verdict}")), listed, "{verdict}");
        assert_eq!(listed, 1, "{verdict}");
    }
    assert_eq!(metric(&page, "models.total"), 3);
    assert_eq!(
        metric(&page, "servers.exposed"),
        total(f.api(&read, "/api/v1/assets?kind=runtime&exposure=exposed").await)
    );
    assert_eq!(metric(&page, "servers.exposed"), 1);
    let mut open = 0;
    for sev in ["critical", "high", "medium", "low", "info"] {
        let shown = metric(&page, &format!("findings.{sev}"));
        // The card links to exactly the findings it counts.
        let link = format!("/api/v1/findings?severity={sev}&exact_severity=true&state=active");
        assert_eq!(shown, total(f.api(&read, &link).await), "{sev}");
        assert!(page.contains(&format!("/ui/findings?severity={sev}&amp;exact_severity=true&amp;state=active")));
        open += shown;
    }
    let listed = total(f.api(&read, "/api/v1/findings?state=open").await)
        + total(f.api(&read, "/api/v1/findings?state=reopened").await);
    assert_eq!(open, listed);
    assert!(open > 0, "the fixture has open findings");
    let critical = total(f.api(&read, "/api/v1/findings?severity=critical&state=open").await);
    assert_eq!(metric(&page, "findings.critical"), critical);
    assert!(critical > 0 && page.contains("Newest critical findings"));
    let o = f.api(&read, "/api/v1/overview").await;
    assert_eq!(o["trend"].as_array().unwrap().len(), 30);
    assert_eq!(o["spreading"][0]["new_hosts"], 2, "the pickle reached two hosts this week");
}

#[tokio::test]
async fn acknowledging_needs_the_csrf_token_and_the_admin_scope() {
    let f = fixture();
    let read = f.token(vec![Scope::Read]);
    let admin = f.token(vec![Scope::Read, Scope::Admin]);
    let findings = f.api(&read, "/api/v1/findings?state=open").await;
    let id = findings["items"][0]["id"].as_str().unwrap().to_string();
    let path = format!("/ui/findings/{id}/ack");
    let state = |v: Value| v["state"].as_str().unwrap().to_string();

    let (status, _, body) = f.post(Some(&admin), &path, "reason=accepted&expires_days=30", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no csrf token: {body}");
    let (status, _, _) = f.post(Some(&admin), &path, &format!("csrf={}&reason=accepted", csrf_of(&read)), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another session's csrf token");
    let form = format!("csrf={}&reason=accepted", csrf_of(&admin));
    let (status, _, _) = f.post(Some(&admin), &path, &form, Some("https://evil.example")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "from another origin");
    assert_eq!(state(f.api(&read, &format!("/api/v1/findings/{id}")).await), "open");

    let (status, _, body) = f.post(Some(&read), &path, &format!("csrf={}&reason=accepted", csrf_of(&read)), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("does not have the admin scope"), "{body}");
    assert_eq!(state(f.api(&read, &format!("/api/v1/findings/{id}")).await), "open");

    let form = format!("csrf={}&reason=risk+accepted+by+CISO&expires_days=30", csrf_of(&admin));
    let (status, headers, _) = f.post(Some(&admin), &path, &form, Some("http://collector:7080")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], format!("/ui/findings/{id}").as_str());
    let after = f.api(&read, &format!("/api/v1/findings/{id}")).await;
    assert_eq!(after["state"], "acknowledged");
    assert_eq!(after["acknowledgement"]["reason"], "risk accepted by CISO");
    let days = (after["acknowledgement"]["expires_ms"].as_i64().unwrap() - crate::now_ms()) / 86_400_000;
    assert!((29..=30).contains(&days), "{days}");
}

#[tokio::test]
async fn signing_out_needs_the_csrf_token_and_forgets_the_cookie() {
    let f = fixture();
    let read = f.token(vec![Scope::Read]);
    let (status, headers, _) = f.post(Some(&read), "/ui/logout", "csrf=00", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(headers.get(header::SET_COOKIE).is_none());
    let (status, headers, _) = f.post(Some(&read), "/ui/logout", &format!("csrf={}", csrf_of(&read)), None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn a_download_is_the_apis_export_with_its_scope() {
    let f = fixture();
    let read = f.token(vec![Scope::Read]);
    let (status, _, body) = f.page(&read, "/ui/export?format=csv&rows=assets").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("does not have the export scope"), "{body}");
    let exporter = f.token(vec![Scope::Read, Scope::Export]);
    let (status, headers, body) = f.page(&exporter, "/ui/export?format=csv&rows=assets").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(headers[header::CONTENT_DISPOSITION].to_str().unwrap().contains("attachment"));
    assert!(body.contains(SHA), "{body}");
    let (status, _, _) = f.page(&exporter, "/ui/export?format=docx").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_api_keeps_its_plain_not_found_and_the_dashboard_says_which_page() {
    let f = fixture();
    let (status, _, body) = f.send(Request::get("/api/v1/nothing").body(Body::empty()).unwrap()).await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_FOUND, ""));
    let (status, _, body) = f.send(Request::get("/ui/nothing").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("there is no page /ui/nothing"));
    let (status, headers, body) = f.send(Request::get("/ui/static/style.css").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/css"));
    assert!(!body.contains("http"), "the stylesheet loads nothing from elsewhere");
}
