//! Redaction: keeps secret values out of everything the agent reports.
//!
//! Command lines, environments, MCP server arguments and URLs are reported so that a security
//! team can see what runs; the secrets in them must never leave the host. Rules, in order:
//! 1. a variable or option whose *name* looks secret ([`is_secret_name`]: `KEY`, `TOKEN`,
//!    `SECRET`, `PASSWORD`, `PASSWD`, `CREDENTIAL`, `AUTH`, `PRIVATE`, `COOKIE`, `SESSION`
//!    as a word of the name) has its value replaced by [`MARKER`]: `NAME=v`, `--api-key v`,
//!    `--api-key=v`, `-Dpassword=v`;
//! 2. a value that looks like a credential whatever its name ([`looks_like_token`]: the
//!    prefixes of well-known key formats such as `sk-`, `hf_`, `ghp_`, `AKIA`, `xoxb-`, or a
//!    JWT) is replaced;
//! 3. the user-info part of a URL (`https://user:pass@host`) and the values of secret-named
//!    query parameters are replaced;
//! 4. an HTTP header argument with a secret name (`Authorization: Bearer x`) keeps its name
//!    only, and a token-shaped word inside an argument with spaces is replaced.
//!
//! Names are always kept: which flags and variables exist is what the inventory needs.

/// What a secret value is replaced with.
pub const MARKER: &str = "<redacted>";

/// Words that make a name secret when they appear as a word of it (split on `_`, `-`, `.`,
/// and lower-to-upper case changes).
const SECRET_WORDS: &[&str] = &[
    "key",
    "apikey",
    "token",
    "secret",
    "password",
    "passwd",
    "pass",
    "pwd",
    "credential",
    "credentials",
    "auth",
    "authorization",
    "private",
    "cookie",
    "session",
    "bearer",
    "signature",
];

/// Words that end a secret name but are not secrets themselves (`KEY_FILE` names a path,
/// `TOKEN_LIMIT` a number).
const NOT_SECRET_SUFFIXES: &[&str] = &["file", "path", "dir", "limit", "length", "len", "count", "type", "mode", "id"];

/// Prefixes of well-known credential formats.
const TOKEN_PREFIXES: &[&str] = &[
    "sk-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "pk_live_",
    "hf_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xapp-",
    "AKIA",
    "ASIA",
    "AIza",
    "ya29.",
    "gsk_",
    "pplx-",
    "r8_",
    "nvapi-",
    "sk-ant-",
    "sk-proj-",
];

fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c == '_' || c == '-' || c == '.' || c == ' ' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Whether a variable, option or parameter named `name` holds a secret (`OPENAI_API_KEY`,
/// `--api-key`, `hfToken`, `DB_PASSWORD`), but not `KEY_FILE`, `TOKENIZERS_PARALLELISM`.
pub fn is_secret_name(name: &str) -> bool {
    let trimmed = name.trim_start_matches('-');
    let w = words(trimmed);
    let Some(last) = w.last() else { return false };
    if NOT_SECRET_SUFFIXES.contains(&last.as_str()) {
        return false;
    }
    w.iter().any(|word| SECRET_WORDS.contains(&word.as_str()))
}

/// Whether `value` looks like a credential whatever it is called.
pub fn looks_like_token(value: &str) -> bool {
    let v = value.trim_matches(|c| c == '"' || c == '\'');
    if v.len() < 12 || v.contains(char::is_whitespace) {
        return false;
    }
    if v.starts_with("eyJ") {
        // A JWT: three base64url parts.
        return v.split('.').count() == 3 && !v.contains('/');
    }
    TOKEN_PREFIXES.iter().any(|p| v.starts_with(p))
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A value as reported under `name`: the [`MARKER`] when the name or the value looks secret,
/// URLs with credentials stripped, else the value.
pub fn value(name: &str, value: &str) -> String {
    if value.is_empty() {
        return String::new();
    }
    if is_secret_name(name) || looks_like_token(value) {
        return MARKER.to_string();
    }
    url(value)
}

/// `text` with URL credentials and secret query values replaced; other text unchanged.
pub fn url(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else { return text.to_string() };
    let (head, rest) = text.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("{MARKER}@{}", authority.get(at + 1..).unwrap_or_default()),
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, v)) if is_secret_name(k) || looks_like_token(v) => format!("{k}={MARKER}"),
                    _ => p.to_string(),
                })
                .collect();
            let mut t = format!("{path}?{}", params.join("&"));
            if let Some(f) = fragment {
                t.push('#');
                t.push_str(f);
            }
            t
        }
        None => tail.to_string(),
    };
    format!("{head}{authority}{tail}")
}

/// One argument of a command line, without context: `NAME=value`, `--opt=value`, an HTTP
/// header `Name: value`, a token (alone or as a word of an argument with spaces) or a URL.
fn argument(arg: &str) -> String {
    if looks_like_token(arg) {
        return MARKER.to_string();
    }
    if let Some((name, value)) = arg.split_once(':') {
        // `Authorization: Bearer x`, `X-Api-Key: x` (but not `https://…`).
        let name = name.trim();
        let header = !name.is_empty() && !name.contains(char::is_whitespace) && !value.starts_with("//");
        if header && !value.trim().is_empty() && is_secret_name(name) {
            return format!("{name}: {MARKER}");
        }
    }
    if arg.contains(char::is_whitespace) && arg.split_whitespace().any(looks_like_token) {
        let words = arg.split_whitespace().map(|w| if looks_like_token(w) { MARKER } else { w });
        return words.collect::<Vec<_>>().join(" ");
    }
    if let Some((name, v)) = arg.split_once('=').filter(|(name, _)| !name.contains("://")) {
        // `--api-key=x`, `API_KEY=x`, `-Dpassword=x`, `--ServerApp.token=x`.
        let bare = name.trim_start_matches('-');
        let bare = bare.strip_prefix('D').filter(|_| name.starts_with("-D")).unwrap_or(bare);
        if !name.contains(char::is_whitespace) && !bare.is_empty() {
            return if is_secret_name(bare) || looks_like_token(v) {
                format!("{name}={MARKER}")
            } else {
                format!("{name}={}", url(v))
            };
        }
    }
    url(arg)
}

/// A command line with secret values replaced: see the module doc. The option that takes the
/// next argument as its value (`--api-key X`) is recognised by its secret name.
pub fn cmdline(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for arg in args {
        if hide_next {
            hide_next = false;
            out.push(MARKER.to_string());
            continue;
        }
        let is_option = arg.starts_with('-') && !arg.contains('=') && arg.len() > 1;
        if is_option && is_secret_name(arg) {
            hide_next = true;
            out.push(arg.clone());
            continue;
        }
        out.push(argument(arg));
    }
    out
}

/// Whether a (`KEY=value`) line of a dotenv file or shell profile sets a variable, and its name:
/// `export OPENAI_API_KEY=...`, `OPENAI_API_KEY="..."`, `set -x OPENAI_API_KEY ...` (fish).
pub fn assigned_name(line: &str) -> Option<&str> {
    let line = line.trim_start();
    if line.starts_with('#') {
        return None;
    }
    let mut line = line;
    for keyword in ["export ", "declare ", "typeset ", "local ", "readonly "] {
        if let Some(rest) = line.strip_prefix(keyword) {
            // `declare -x NAME=…`: options come before the name.
            line = rest.trim_start();
            while let Some(opt) = line.strip_prefix('-') {
                line = opt.split_once(char::is_whitespace).map(|(_, r)| r.trim_start()).unwrap_or("");
            }
        }
    }
    let name = if let Some(fish) = line.strip_prefix("set ") {
        fish.split_whitespace().find(|w| !w.starts_with('-'))?
    } else if let Some(csh) = line.strip_prefix("setenv ") {
        csh.split_whitespace().next()?
    } else {
        line.split_once('=')?.0
    };
    let valid = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.bytes().next().is_some_and(|b| !b.is_ascii_digit());
    valid.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn secret_names() {
        for n in ["OPENAI_API_KEY", "--api-key", "HF_TOKEN", "hfToken", "DB_PASSWORD", "aws_secret_access_key", "token"]
        {
            assert!(is_secret_name(n), "{n}");
        }
        for n in
            ["KEY_FILE", "--api-key-file", "TOKENIZERS_PARALLELISM", "MAX_TOKENS_LIMIT", "--port", "HOME", "keyboard"]
        {
            assert!(!is_secret_name(n), "{n}");
        }
    }

    #[test]
    fn cmdline_hides_option_values_and_assignments() {
        let got = cmdline(&v(&[
            "vllm",
            "serve",
            "m",
            "--api-key",
            "s3cret-value",
            "--port=8000",
            "--token=abc",
            "API_KEY=zzz",
            "--ServerApp.token=tok123",
            "https://u:p4ss@example.com/x?api_key=q1&x=2",
            "-Dpassword=hunter2",
        ]));
        let joined = got.join(" ");
        for secret in ["s3cret-value", "abc", "zzz", "tok123", "p4ss", "q1", "hunter2"] {
            assert!(!joined.contains(secret), "{secret} leaked in {joined}");
        }
        assert!(joined.contains("--port=8000") && joined.contains("x=2") && joined.contains("--api-key"));
    }

    #[test]
    fn headers_and_tokens_inside_arguments_are_hidden() {
        let got = cmdline(&v(&[
            "--header",
            "Authorization: Bearer t0ps3cret",
            "echo sk-test-abcdefghijkl ok",
            "http://h:1/x",
        ]));
        assert_eq!(got, ["--header", "Authorization: <redacted>", "echo <redacted> ok", "http://h:1/x"]);
    }

    #[test]
    fn token_shapes_are_hidden_whatever_their_name() {
        assert_eq!(cmdline(&v(&["run", "sk-ant-api03-abcdefghijklmnop"]))[1], MARKER);
        assert_eq!(value("X", "hf_abcdefghijklmnopqrstuvwxyz"), MARKER);
        assert_eq!(value("CUDA_VISIBLE_DEVICES", "0,1"), "0,1");
        assert!(!looks_like_token("/usr/lib/sk-something/long-path"));
    }

    #[test]
    fn assignments_are_named() {
        assert_eq!(assigned_name("export OPENAI_API_KEY=sk-x"), Some("OPENAI_API_KEY"));
        assert_eq!(assigned_name("  ANTHROPIC_API_KEY=\"x\""), Some("ANTHROPIC_API_KEY"));
        assert_eq!(assigned_name("set -gx GROQ_API_KEY abc"), Some("GROQ_API_KEY"));
        assert_eq!(assigned_name("declare -x HF_TOKEN=abc"), Some("HF_TOKEN"));
        assert_eq!(assigned_name("typeset -x MISTRAL_API_KEY=abc"), Some("MISTRAL_API_KEY"));
        assert_eq!(assigned_name("setenv COHERE_API_KEY abc"), Some("COHERE_API_KEY"));
        assert_eq!(assigned_name("# OPENAI_API_KEY=x"), None);
        assert_eq!(assigned_name("echo hi"), None);
    }
}
