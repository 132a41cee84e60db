//! Signing in and out of the dashboard, and what protects a state change (docs/dashboard.md,
//! *Sessions*).
//!
//! The session is the API token itself, kept in a cookie the page's scripts cannot read
//! (`HttpOnly`), that no other site's request carries (`SameSite=Strict`) and, when the API serves
//! HTTPS, that never travels in clear (`Secure`, with the `__Host-` prefix so no subdomain can
//! set it). Nothing is remembered on the collector: any replica serves any session, and a revoked
//! or expired token ends every session holding it at the next request.
//!
//! A state change (acknowledging, signing out) carries a CSRF token in its form: the HMAC-SHA256
//! of a fixed label keyed by the session's API token, which a page of another origin can neither
//! read nor compute. Each POST is also refused when the browser says it comes from another site
//! (`Sec-Fetch-Site`) or another origin (`Origin` against `Host`).

use axum::http::{header, HeaderMap, HeaderValue};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The cookie's name over plain HTTP (loopback or behind a TLS proxy).
pub const COOKIE_PLAIN: &str = "aiscout_session";

/// The cookie's name over HTTPS: the `__Host-` prefix makes browsers require `Secure`, `Path=/`
/// and no `Domain`.
pub const COOKIE_TLS: &str = "__Host-aiscout_session";

/// What the CSRF token is the HMAC of.
const CSRF_LABEL: &[u8] = b"aiscout dashboard csrf v1";

/// A signed-in browser: its API token, and the CSRF token its forms carry.
#[derive(Clone)]
pub struct Session {
    /// The API token (a secret: never logged, never rendered).
    pub token: String,
    /// The CSRF token of [`Session::token`].
    pub csrf: String,
    /// The token as the store verified it for this request: the pages hand it to the API
    /// (`api::Caller`), which then does not verify it again.
    pub verified: Option<crate::store::ApiToken>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session { token: <redacted> }")
    }
}

fn mac(token: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(token.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(CSRF_LABEL);
    mac
}

impl Session {
    /// The session of `token`.
    pub fn new(token: String) -> Self {
        let csrf = hex::encode(mac(&token).finalize().into_bytes());
        Self { token, csrf, verified: None }
    }

    /// Whether `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_ok(&self, presented: &str) -> bool {
        hex::decode(presented).is_ok_and(|bytes| mac(&self.token).verify_slice(&bytes).is_ok())
    }
}

/// The cookie's name for an API served over HTTPS (`tls`) or not.
pub fn cookie_name(tls: bool) -> &'static str {
    if tls {
        COOKIE_TLS
    } else {
        COOKIE_PLAIN
    }
}

/// Whether `token` can be an API token: 1 to 256 visible ASCII characters, none of which would
/// break a cookie (`;`, `,`, `"`, `\`).
pub fn plausible_token(token: &str) -> bool {
    (1..=256).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'"' | b'\\'))
}

/// The session whose cookie `headers` carry, if any.
pub fn from_headers(headers: &HeaderMap, tls: bool) -> Option<Session> {
    let name = cookie_name(tls);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| plausible_token(v))
        .map(|v| Session::new(v.to_string()))
}

/// The `Set-Cookie` value that keeps `token` for this browser session.
pub fn set_cookie(token: &str, tls: bool) -> Option<HeaderValue> {
    if !plausible_token(token) {
        return None;
    }
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{}={token}; Path=/; HttpOnly; SameSite=Strict{secure}", cookie_name(tls))).ok()
}

/// The `Set-Cookie` value that forgets the session.
pub fn clear_cookie(tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    let value = format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}", cookie_name(tls));
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("aiscout_session=; Max-Age=0"))
}

/// Whether a POST with `headers` may come from the dashboard itself: refused when the browser
/// says it was sent from another site, or from an origin whose host is not the one asked.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    match (text(header::ORIGIN), text(header::HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")).is_some_and(|o| o == host)
        }
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_csrf_token_is_bound_to_the_session_token() {
        let a = Session::new("ais_alpha".into());
        let b = Session::new("ais_beta".into());
        assert_eq!(a.csrf.len(), 64);
        assert!(a.csrf_ok(&a.csrf));
        assert!(!a.csrf_ok(&b.csrf));
        assert!(!b.csrf_ok(&a.csrf));
        assert!(!a.csrf_ok(""));
        assert!(!a.csrf_ok("zz"));
        assert!(!a.csrf_ok(&a.csrf[..62]));
        assert!(!format!("{a:?}").contains("alpha"));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_under_tls() {
        let plain = set_cookie("ais_x", false).unwrap();
        assert_eq!(plain, "aiscout_session=ais_x; Path=/; HttpOnly; SameSite=Strict");
        let tls = set_cookie("ais_x", true).unwrap();
        assert_eq!(tls, "__Host-aiscout_session=ais_x; Path=/; HttpOnly; SameSite=Strict; Secure");
        assert!(clear_cookie(true).to_str().unwrap().contains("Max-Age=0"));
        for bad in ["", "a;b", "a b", "a,b", "é", &"x".repeat(257)] {
            assert!(set_cookie(bad, false).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_session_is_read_from_its_own_cookie_only() {
        let h = headers(&[("cookie", "other=1; aiscout_session=ais_tok; x=2")]);
        assert_eq!(from_headers(&h, false).unwrap().token, "ais_tok");
        assert!(from_headers(&h, true).is_none(), "the plain cookie is not the tls one");
        let h = headers(&[("cookie", "__Host-aiscout_session=ais_tls")]);
        assert_eq!(from_headers(&h, true).unwrap().token, "ais_tls");
        assert!(from_headers(&headers(&[("cookie", "aiscout_session=")]), false).is_none());
        assert!(from_headers(&HeaderMap::new(), false).is_none());
    }

    #[test]
    fn a_post_from_another_site_or_origin_is_refused() {
        assert!(same_origin(&headers(&[("host", "c:7080"), ("origin", "http://c:7080")])));
        assert!(same_origin(&headers(&[("host", "c:7080"), ("sec-fetch-site", "same-origin")])));
        assert!(same_origin(&headers(&[("host", "c:7080")])), "a client that sends neither");
        assert!(!same_origin(&headers(&[("host", "c:7080"), ("origin", "http://evil:7080")])));
        assert!(!same_origin(&headers(&[("host", "c:7080"), ("origin", "null")])));
        assert!(!same_origin(&headers(&[("host", "c:7080"), ("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("host", "c:7080"), ("sec-fetch-site", "same-site")])));
    }
}
