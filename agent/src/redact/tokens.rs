//! Credentials recognised by their shape wherever they appear: the prefixes of well-known key
//! formats, JWTs, and how random a value looks.

use super::Spans;

/// A prefix of a well-known credential format and the least number of characters after it.
struct Prefix(&'static str, usize);

/// Prefixes of well-known credential formats, longest first where one extends another.
const PREFIXES: &[Prefix] = &[
    // OpenAI (project, service account, admin), Anthropic, OpenRouter, DeepSeek…: `sk-…`.
    Prefix("sk-ant-", 16),
    Prefix("sk-proj-", 16),
    Prefix("sk-svcacct-", 16),
    Prefix("sk-admin-", 16),
    Prefix("sk-or-", 16),
    Prefix("sk-", 8),
    // Stripe.
    Prefix("sk_live_", 12),
    Prefix("sk_test_", 12),
    Prefix("rk_live_", 12),
    Prefix("rk_test_", 12),
    Prefix("whsec_", 16),
    // Hugging Face.
    Prefix("hf_", 16),
    Prefix("api_org_", 16),
    // GitHub.
    Prefix("ghp_", 16),
    Prefix("gho_", 16),
    Prefix("ghu_", 16),
    Prefix("ghs_", 16),
    Prefix("ghr_", 16),
    Prefix("github_pat_", 16),
    // GitLab.
    Prefix("glpat-", 16),
    Prefix("gldt-", 16),
    Prefix("glrt-", 16),
    Prefix("glptt-", 16),
    Prefix("glcbt-", 16),
    Prefix("GR1348941", 16),
    // Slack.
    Prefix("xoxb-", 10),
    Prefix("xoxp-", 10),
    Prefix("xoxa-", 10),
    Prefix("xoxr-", 10),
    Prefix("xoxs-", 10),
    Prefix("xoxe-", 10),
    Prefix("xapp-", 10),
    // npm, PyPI, RubyGems, Docker Hub.
    Prefix("npm_", 16),
    Prefix("pypi-", 16),
    Prefix("rubygems_", 16),
    Prefix("dckr_pat_", 16),
    // Google: API keys, OAuth access tokens and client secrets.
    Prefix("AIza", 30),
    Prefix("ya29.", 16),
    Prefix("GOCSPX-", 16),
    // AWS access key ids (long-lived and temporary).
    Prefix("AKIA", 16),
    Prefix("ASIA", 16),
    // AI providers: Groq, Perplexity, Replicate, NVIDIA, xAI, LangSmith, Fireworks.
    Prefix("gsk_", 16),
    Prefix("pplx-", 16),
    Prefix("r8_", 16),
    Prefix("nvapi-", 16),
    Prefix("xai-", 16),
    Prefix("lsv2_pk_", 16),
    Prefix("lsv2_sk_", 16),
    Prefix("fw_", 16),
    // Others often found on hosts: DigitalOcean, SendGrid, Shopify, Vault, Tailscale, Grafana,
    // Databricks, Atlassian, Linear, Notion, PlanetScale, Sentry, Doppler, Pulumi.
    Prefix("dop_v1_", 16),
    Prefix("SG.", 16),
    Prefix("shpat_", 16),
    Prefix("shpss_", 16),
    Prefix("hvs.", 16),
    Prefix("tskey-", 16),
    Prefix("glc_", 16),
    Prefix("glsa_", 16),
    Prefix("dapi", 28),
    Prefix("ATATT", 16),
    Prefix("lin_api_", 16),
    Prefix("ntn_", 16),
    Prefix("secret_", 30),
    Prefix("pscale_tkn_", 16),
    Prefix("sntrys_", 16),
    Prefix("dp.st.", 16),
    Prefix("pul-", 16),
];

/// Characters a credential is made of (base64url, dots of JWTs, dashes of prefixes).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// Longest word looked into for a credential glued after other text.
const MAX_EMBEDDED: usize = 512;

/// Whether `value` (one word, without quotes) is shaped like a credential whatever it is called.
pub fn looks_like_token(value: &str) -> bool {
    let v = value.trim_matches(|c| c == '"' || c == '\'');
    let v = v.trim_end_matches('.');
    if v.len() < 12 || !v.bytes().all(is_token_byte) {
        return false;
    }
    is_jwt(v) || PREFIXES.iter().any(|p| prefixed(v, p))
}

fn prefixed(v: &str, p: &Prefix) -> bool {
    let Some(body) = v.strip_prefix(p.0) else { return false };
    // A credential's body is long and random: digits, mixed case, or one unbroken run;
    // `sk-learn-extension-name` is words.
    let digit = body.bytes().any(|b| b.is_ascii_digit());
    let mixed = body.bytes().any(|b| b.is_ascii_uppercase()) && body.bytes().any(|b| b.is_ascii_lowercase());
    let unbroken = !body.contains(['-', '_', '.']);
    let letter = body.bytes().any(|b| b.is_ascii_alphabetic());
    // A short body (some `sk-` keys) must hold letters and digits or mixed case.
    let random = if body.len() >= 16 { digit || mixed || unbroken } else { digit && letter || mixed };
    body.len() >= p.1 && random
}

/// A JWT (`eyJ…` header, `.`, payload, `.`, signature), or a JWE with five parts.
fn is_jwt(v: &str) -> bool {
    if !v.starts_with("eyJ") {
        return false;
    }
    let parts: Vec<&str> = v.split('.').collect();
    (parts.len() == 3 || parts.len() == 5) && parts.iter().take(2).all(|p| p.len() >= 8)
}

/// Adds the spans of private keys in PEM (`-----BEGIN … PRIVATE KEY-----` to its `-----END
/// …-----`, or to the end of the text) to `spans`.
fn pem_private_keys(s: &str, spans: &mut Spans) {
    let mut from = 0;
    while let Some(found) = s.get(from..).and_then(|r| r.find("-----BEGIN ")) {
        let start = from + found;
        let header_end = s.get(start + 11..).and_then(|r| r.find("-----")).map_or(s.len(), |e| start + 11 + e + 5);
        let header = s.get(start..header_end).unwrap_or_default();
        if !header.contains("PRIVATE KEY") {
            from = header_end.max(start + 1);
            continue;
        }
        let end = s
            .get(header_end..)
            .and_then(|r| r.find("-----END "))
            .and_then(|e| {
                let at = header_end + e + 9;
                s.get(at..).and_then(|r| r.find("-----")).map(|c| at + c + 5)
            })
            .unwrap_or(s.len());
        spans.add(header_end, end);
        from = end.max(start + 1);
    }
}

/// Adds the spans of credential-shaped words of `s` (runs of token characters) and of PEM
/// private keys to `spans`.
pub(super) fn find(s: &str, spans: &mut Spans) {
    pem_private_keys(s, spans);
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes.get(i).copied().is_some_and(is_token_byte) {
            i += 1;
            continue;
        }
        let start = i;
        while bytes.get(i).copied().is_some_and(is_token_byte) {
            i += 1;
        }
        let word = s.get(start..i).unwrap_or_default();
        if looks_like_token(word) {
            spans.add(start, i);
        } else if let Some(off) = embedded_start(word) {
            // `Bearer:sk-…`, `key=hf_…` were split already; a token glued after other text
            // (`prefix_sk-ant-…`) starts at one of its known prefixes.
            spans.add(start + off, i);
        }
    }
}

/// Where a credential starts inside a longer word, after a `-`, `_` or `.`: `x.sk-ant-…`.
fn embedded_start(word: &str) -> Option<usize> {
    // Bounded work: a credential is found after at most a few glued words.
    if word.len() < 24 || word.len() > MAX_EMBEDDED {
        return None;
    }
    word.char_indices()
        .filter(|(i, c)| *i > 0 && matches!(c, '-' | '_' | '.'))
        .map(|(i, _)| i + 1)
        .find(|i| word.get(*i..).is_some_and(|rest| rest.len() >= 20 && looks_like_token(rest)))
}

/// Whether `v` looks random: at least 20 characters of letters and digits (and `+/=_-`), both
/// letters and digits, and a character entropy a word or a number does not reach.
pub fn high_entropy(v: &str) -> bool {
    let v = v.trim_matches(|c| c == '"' || c == '\'');
    if v.len() < 20 || v.len() > 4096 {
        return false;
    }
    if !v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-' | b'.' | b'~')) {
        return false;
    }
    let digits = v.bytes().filter(u8::is_ascii_digit).count();
    let letters = v.bytes().filter(u8::is_ascii_alphabetic).count();
    if digits == 0 || letters == 0 {
        return false;
    }
    let mut counts = [0u32; 256];
    for b in v.bytes() {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c += 1;
        }
    }
    let n = v.len() as f64;
    let entropy: f64 = counts.iter().filter(|c| **c > 0).map(|c| f64::from(*c) / n).map(|p| -p * p.log2()).sum();
    entropy >= 3.5
}
