//! The dashboard: server-rendered pages under `/ui/` on `api_listen` (docs/dashboard.md).
//!
//! # How it is built
//! Every page is a client of the HTTP API: a handler sends the API router, in process, the
//! request a script would send (with the session's token as its bearer) and renders the JSON it
//! gets. So the dashboard shows exactly what the API says, and the API's scope checks, parameter
//! checks and limits are the dashboard's: a read token sees the pages, acknowledging asks the API
//! for admin, downloading an export asks it for export. Pages are HTML written with maud (every
//! inserted value escaped); the stylesheet and one small script are embedded in the binary, and
//! no page needs anything from another origin.
//!
//! # Headers
//! Every response of `/ui/` carries a Content-Security-Policy that allows only the collector's
//! own stylesheet and script (no inline script, no inline style, no other origin, no framing),
//! `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin` (no address leaves for another site; `no-referrer` would make browsers send `Origin: null` on the dashboard's own forms, which the origin check refuses) and, but for the static
//! files, `Cache-Control: no-store` (pages hold inventory).

mod pages;
mod render;
pub mod session;
mod svg;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::store::Store;

/// What the dashboard's handlers share.
#[derive(Clone)]
pub struct Ui {
    /// The API router the pages are clients of.
    api: Router,
    /// The store, to check a token at sign-in.
    store: Arc<dyn Store>,
    /// Whether the API serves HTTPS (the cookie is `Secure` then).
    tls: bool,
}

impl std::fmt::Debug for Ui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ui").field("tls", &self.tls).finish_non_exhaustive()
    }
}

/// The Content-Security-Policy of every dashboard response (module docs, *Headers*).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let is_static = request.uri().path().starts_with("/ui/static/");
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    if !is_static {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

/// The dashboard's routes over `api` (the router its pages are clients of); `tls`: the API
/// serves HTTPS.
pub fn router(store: Arc<dyn Store>, api: Router, tls: bool) -> Router {
    let ui = Ui { api, store, tls };
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(pages::overview))
        .route("/ui/login", get(pages::login_form).post(pages::login))
        .route("/ui/logout", post(pages::logout))
        .route("/ui/findings", get(pages::findings))
        .route("/ui/findings/{id}", get(pages::finding))
        .route("/ui/findings/{id}/ack", post(pages::acknowledge))
        .route("/ui/models", get(pages::models))
        .route("/ui/models/{id}", get(pages::model))
        .route("/ui/hosts", get(pages::hosts))
        .route("/ui/hosts/{id}", get(pages::host))
        .route("/ui/graph", get(pages::graph))
        .route("/ui/exports", get(pages::exports))
        .route("/ui/export", get(pages::download))
        .route("/ui/static/style.css", get(|| async { static_file("text/css; charset=utf-8", render::STYLE) }))
        .route("/ui/static/favicon.svg", get(|| async { static_file("image/svg+xml", render::FAVICON) }))
        .route("/ui/static/app.js", get(|| async { static_file("text/javascript; charset=utf-8", render::SCRIPT) }))
        .fallback(pages::not_found)
        .layer(middleware::from_fn(security_headers))
        .with_state(ui)
}

/// The API and the dashboard on one router: what `serve` listens with.
pub fn app(store: Arc<dyn Store>, settings: crate::api::ApiSettings, tls: bool) -> Router {
    let api = crate::api::router_with(Arc::clone(&store), settings);
    api.clone().merge(router(store, api, tls))
}

#[cfg(test)]
mod tests;
